"""Deployment benchmark: ONNX Runtime peak memory dense vs MOSP-50 %, budget-sized tiling, and
MOSP vs tiling vs both at one budget -- all at 2048x1080 on the quick demo's dense SID U-Net x0.25 (``--preset``).

    python benchmarks/deploy.py --out /tmp/bench_deploy [--threads 1] [--repeats 2]

1. Memory: the dense net (pretrained-weights cache, ``irprune demo``'s config) and MOSP at 50 %
   of its estimated peak (compactors, 300 finetune steps, cached in ``--out``) exported to ONNX
   (``export_onnx``, checked against ONNX Runtime); the resident-set rise of one inference in a
   fresh process (``peak_rss``) for ONNX Runtime (arena on; off; off with glibc's mmap threshold
   fixed at 64 KiB, so that RSS = live bytes), the same two under ``MEMORY_PLAN`` (no NCHWc
   layout transform, the exported node order) and PyTorch (eager; and with the fixed threshold),
   beside ``estimate_peak_memory`` (which also counts the input image, the RSS rises do not) and
   ``ort_liveness`` (ONNX Runtime's own plan computed in its execution order, input excluded).
2. ``TiledRestorer`` on the dense net at ``--tile-budget`` (10 %) of the dense estimated peak:
   its plan, the real live activation bytes of the whole tiled run at 2048x1080
   (``LiveBytesTracker``; the caller's input excluded, the output included), PSNR tiled vs
   untiled on the held-out photos (full size), and the latency overhead of the overlaps.
3. At ``--both-budget`` (25 %) of the dense peak: MOSP alone (if reachable), tiling alone
   (dense), MOSP-50 % + tiling: PSNR on the held-out photos and latency at 2048x1080.
4. Latency at 2048x1080 of every variant, interleaved round by round (the per-section latencies
   above are taken minutes apart and swing with the machine's load).

Writes ``deploy.json`` and prints Markdown tables.
"""
from __future__ import annotations

import argparse
import json
import logging
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
MB = 2 ** 20


def _latency(fn, x: torch.Tensor, repeats: int) -> float:
    times = []
    with torch.no_grad():
        for _ in range(repeats):
            t = time.perf_counter()
            fn(x)
            times.append(time.perf_counter() - t)
    return statistics.median(times)


def _mosp50(dense: torch.nn.Module, cfg, out: Path, budget: float) -> torch.nn.Module:
    """MOSP at ``budget`` of the dense peak with compactors and the demo's finetune (cached)."""
    import torch.nn.functional as F

    from ir_prune_plugin import MOSPOptions, MOSPPruner, load_pruned, save_pruned
    from ir_prune_plugin.data import DenoiseDataset
    from ir_prune_plugin.loops import fit

    path = out / f"mosp{int(budget * 100)}.pt"
    if path.exists():
        return load_pruned(path).eval()
    held = DenoiseDataset("train", sigma=cfg.sigma, patch=cfg.patch, seed=cfg.seed + 7919, length=8)
    lq = torch.stack([held[i]["lq"] for i in range(len(held))])
    gt = torch.stack([held[i]["gt"] for i in range(len(held))])

    def heldout(model: torch.nn.Module) -> float:
        with torch.no_grad():
            return float(F.l1_loss(model(lq), gt))

    train = DenoiseDataset("train", sigma=cfg.sigma, patch=cfg.patch, seed=cfg.seed + 1,
                           length=cfg.finetune_steps * cfg.batch_size)
    opts = MOSPOptions(memory_input_size=(1, 3, *cfg.memory_size), outer_stride=2 * MB, min_channels=1, seed=cfg.seed)
    pruned = MOSPPruner(dense, torch.rand(2, 3, cfg.patch, cfg.patch), budget, evaluate=heldout,
                        options=opts).prune(progress=True)
    torch.manual_seed(cfg.seed)
    fit(pruned, train, cfg.finetune_steps, lr=1e-3, batch_size=cfg.batch_size, seed=cfg.seed + 1,
        desc="finetune MOSP")
    pruned.eval()
    save_pruned(pruned, path)
    return pruned


def memory_section(models: dict, files: dict, out: Path, hw: tuple[int, int], args) -> list[dict]:
    """Estimate, PyTorch RSS rise and ONNX Runtime RSS rise (arena on/off) per model."""
    from ir_prune_plugin.deploy.onnx_export import export_onnx
    from ir_prune_plugin.deploy.ort_memory import peak_rss
    from ir_prune_plugin.deploy.ort_options import MEMORY_PLAN
    from ir_prune_plugin.deploy.ort_plan import ort_liveness
    from ir_prune_plugin.memory import estimate_peak_memory

    rows = []
    for name, model in models.items():
        onnx = out / f"{name}.onnx"
        exp = export_onnx(model, onnx, torch.rand(1, 3, 64, 96), exporter=args.exporter)
        row = {"model": name, "estimate_mb": estimate_peak_memory(model, (1, 3, *hw)).peak_bytes / MB,
               "onnx_check_max_abs_diff": max(exp.max_abs_diff.values()), "export_s": round(exp.seconds, 1)}
        # ONNX Runtime's own plan, computed: live bytes in its execution order (default settings, and
        # MEMORY_PLAN: no NCHWc layout transform, the exported file's node order)
        # (+ ONNX Runtime's arena statistics from its profiler: in-use peak, regions held)
        for key, opts in (("ort_order_est", {}), ("ort_plan_est", MEMORY_PLAN)):
            live = ort_liveness(onnx, hw, threads=args.threads, **opts)
            row[f"{key}_mb"] = live.peak_bytes / MB
            if live.arena_in_use_peak is not None:
                row[f"{key}_arena_in_use_mb"] = live.arena_in_use_peak / MB
                row[f"{key}_arena_held_mb"] = live.arena_held / MB
        # ONNX Runtime as shipped (arena + memory pattern), without the arena, and without the arena
        # with every block > 64 KiB mmapped (RSS = live bytes: what its plan really holds), each also
        # under MEMORY_PLAN; PyTorch eager
        for key, engine, path, arena, mmap, opts in (
                ("ort", "onnxruntime", onnx, True, None, {}),
                ("ort_no_arena", "onnxruntime", onnx, False, None, {}),
                ("ort_exact", "onnxruntime", onnx, False, 65536, {}),
                ("ort_plan", "onnxruntime", onnx, True, None, MEMORY_PLAN),
                ("ort_plan_exact", "onnxruntime", onnx, False, 65536, MEMORY_PLAN),
                ("torch", "torch", files[name], True, None, {}),
                ("torch_exact", "torch", files[name], True, 65536, {})):
            r = peak_rss(engine, path, hw, repeats=args.repeats, threads=args.threads, arena=arena,
                         mmap_threshold=mmap, **opts)
            row[f"{key}_first_mb"], row[f"{key}_mb"], row[f"{key}_latency_s"] = r.first_rise / MB, r.rise / MB, r.latency_s
            logging.info("%s %s: first +%.0f MiB, then +%.0f MiB, %.2f s", name, key, r.first_rise / MB,
                         r.rise / MB, r.latency_s)
        rows.append(row)
    for key in ("estimate_mb", "ort_order_est_mb", "ort_plan_est_mb", "ort_order_est_arena_in_use_mb",
                "ort_plan_est_arena_in_use_mb", "ort_mb", "ort_first_mb", "ort_no_arena_mb",
                "ort_no_arena_first_mb", "ort_exact_mb", "ort_plan_first_mb", "ort_plan_exact_mb", "torch_mb",
                "torch_first_mb", "torch_exact_mb"):
        rows[1][f"{key}_ratio"] = rows[1][key] / rows[0][key]
    return rows


def tiled_row(label: str, model: torch.nn.Module, budget_bytes: int, hw: tuple[int, int], val, args,
              untiled: dict | None = None) -> dict:
    """Plan, real live bytes at full size, PSNR on the held-out photos and latency of one tiling."""
    from ir_prune_plugin.deploy import TiledRestorer, WithTiles
    from ir_prune_plugin.loops import evaluate
    from ir_prune_plugin.memory import LiveBytesTracker

    t0 = time.perf_counter()
    r = TiledRestorer(model, budget_bytes, image_size=hw, tolerance=args.tolerance)
    plan = r.plan(*hw)
    plan_s = time.perf_counter() - t0
    x = torch.rand(1, 3, *hw)
    tracker = LiveBytesTracker()
    with torch.no_grad(), tracker:
        y = r(x)
    del y
    # the photos are smaller than 2048x1080: restore them with the 2048x1080 plan's tiles
    q = evaluate(WithTiles(r, plan.tiles), val)
    row = {"method": label, "budget_mb": budget_bytes / MB, "tile": plan.tiles.tile, "margin": r.margin,
           "overlap": plan.tiles.overlap, "n_tiles": plan.n_tiles, "plan_mb": plan.total / MB,
           "measured_mb": tracker.peak / MB, "meets_budget": tracker.peak <= budget_bytes,
           "pixel_overhead": plan.overhead, "psnr": q["psnr"], "ssim": q["ssim"], "plan_s": round(plan_s, 1),
           "latency_s": _latency(r, x, args.repeats)}
    if untiled is not None:
        row["psnr_minus_untiled"] = q["psnr"] - untiled["psnr"]
        row["latency_over_untiled"] = row["latency_s"] / untiled["latency_s"] - 1
    logging.info("%s: %s", label, plan.summary())
    return row


def latency_section(models: dict, dense_peak: int, hw: tuple[int, int], args) -> dict:
    """CPU latency at 2048x1080, untiled and tiled, interleaved round by round so that a changing
    machine load hits every variant alike; medians over ``--rounds``."""
    from ir_prune_plugin.deploy import TiledRestorer

    runs = {"dense": models["dense"], "mosp": models["mosp"],
            f"dense tiled @ {args.tile_budget:.0%}": TiledRestorer(models["dense"], int(args.tile_budget * dense_peak),
                                                                  image_size=hw, tolerance=args.tolerance),
            f"dense tiled @ {args.both_budget:.0%}": TiledRestorer(models["dense"], int(args.both_budget * dense_peak),
                                                                  image_size=hw, tolerance=args.tolerance),
            f"mosp tiled @ {args.both_budget:.0%}": TiledRestorer(models["mosp"], int(args.both_budget * dense_peak),
                                                                 image_size=hw, tolerance=args.tolerance)}
    x = torch.rand(1, 3, *hw)
    times: dict[str, list[float]] = {k: [] for k in runs}
    with torch.no_grad():
        for _ in range(args.rounds):
            for k, m in runs.items():
                t = time.perf_counter()
                m(x)
                times[k].append(time.perf_counter() - t)
            logging.info("latency round: %s", {k: round(v[-1], 2) for k, v in times.items()})
    return {"median_s": {k: statistics.median(v) for k, v in times.items()}, "all_s": times}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved latency rounds (section 4)")
    ap.add_argument("--mosp-budget", type=float, default=0.5)
    ap.add_argument("--tile-budget", type=float, default=0.10)
    ap.add_argument("--both-budget", type=float, default=0.25)
    ap.add_argument("--tolerance", type=float, default=1e-3, help="receptive-field tolerance of TiledRestorer")
    ap.add_argument("--exporter", default="dynamo", choices=("dynamo", "torchscript"))
    ap.add_argument("--preset", default="quick", help="the demo preset whose dense U-Net is used (quick: x0.25)")
    ap.add_argument("--finetune-steps", type=int, default=300, help="finetune steps of the MOSP net")
    ap.add_argument("--skip", nargs="*", default=[], choices=("memory", "tiled", "both", "latency"))
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("torch").setLevel(logging.WARNING)
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT))
    from ir_prune_plugin import save_pruned
    from ir_prune_plugin.data import DenoiseDataset
    from ir_prune_plugin.demo.presets import DemoConfig
    from ir_prune_plugin.workloads.pretrained import default_cache_dir
    from ir_prune_plugin.demo.run import pretrained_unet
    from ir_prune_plugin.loops import evaluate
    from ir_prune_plugin.memory import estimate_peak_memory

    args.out.mkdir(parents=True, exist_ok=True)
    # the quick demo's dense SID U-Net x0.25 (shipped weights), MOSP finetuned --finetune-steps
    cfg = replace(DemoConfig.preset_named(args.preset), finetune_steps=args.finetune_steps)
    hw = tuple(cfg.memory_size)
    dense = pretrained_unet(cfg, default_cache_dir(), progress=True)
    mosp = _mosp50(dense, cfg, args.out, args.mosp_budget)
    files = {"dense": args.out / "dense.pt", "mosp": args.out / f"mosp{int(args.mosp_budget * 100)}.pt"}
    save_pruned(dense, files["dense"])
    models = {"dense": dense, "mosp": mosp}
    val = DenoiseDataset("val", sigma=cfg.sigma, val_size=None, seed=cfg.seed)  # full held-out photos
    dense_peak = estimate_peak_memory(dense, (1, 3, *hw)).peak_bytes
    x = torch.rand(1, 3, *hw)
    previous = json.loads((args.out / "deploy.json").read_text()) if (args.out / "deploy.json").exists() else {}
    untiled = {k: {**evaluate(m, val), "latency_s": _latency(m, x, args.repeats),
                   "peak_mb": estimate_peak_memory(m, (1, 3, *hw)).peak_bytes / MB} for k, m in models.items()} \
        if {"tiled", "both"} - set(args.skip) else previous.get("untiled", {})
    result = {**previous, "config": {**vars(args), "out": str(args.out), "size_hw": list(hw), "dense_peak_mb": dense_peak / MB,
                         "photos": list(val.names), "sigma": cfg.sigma}, "untiled": untiled}
    save = lambda: (args.out / "deploy.json").write_text(json.dumps(result, indent=2, default=str))  # noqa: E731
    if "memory" not in args.skip:
        result["memory"] = memory_section(models, files, args.out, hw, args)
        save()
    if "tiled" not in args.skip:
        result["tiled"] = tiled_row(f"dense tiled @ {args.tile_budget:.0%}", dense, int(args.tile_budget * dense_peak),
                                    hw, val, args, untiled["dense"])
        save()
    if "both" not in args.skip:
        budget = int(args.both_budget * dense_peak)
        rows = []
        try:  # MOSP alone at this budget: the fixed part of the peak (input, output, residual) may be above it
            from ir_prune_plugin import MOSPOptions, MOSPPruner
            MOSPPruner(dense, torch.rand(2, 3, 64, 64), args.both_budget,
                       options=MOSPOptions(memory_input_size=(1, 3, *hw), min_channels=1))
            rows.append({"method": f"MOSP alone @ {args.both_budget:.0%}", "note": "reachable: not run here"})
        except ValueError as exc:
            rows.append({"method": f"MOSP alone @ {args.both_budget:.0%}", "meets_budget": False,
                         "note": str(exc).splitlines()[0]})
        for name in models:
            u = untiled[name]
            rows.append({"method": f"{name} (untiled)", "peak_mb": u["peak_mb"], "meets_budget": u["peak_mb"] * MB <= budget,
                         "psnr": u["psnr"], "latency_s": u["latency_s"]})
        rows.append(tiled_row("tiling alone (dense)", dense, budget, hw, val, args, untiled["dense"]))
        rows.append(tiled_row(f"MOSP {args.mosp_budget:.0%} + tiling", mosp, budget, hw, val, args, untiled["mosp"]))
        result["both"] = {"budget_mb": budget / MB, "rows": rows}
        save()
    if "latency" not in args.skip:
        result["latency"] = latency_section(models, dense_peak, hw, args)
        save()
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
