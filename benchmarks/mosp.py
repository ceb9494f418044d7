"""MOSP benchmark: the demo's study over several seeds (mean +- std), evaluated on the held-out
photos and CBSD68/Kodak24, with the compactor ablation, search overhead and the real process
memory (RSS) / CPU latency of each model at 1x3x1080x2048.

    python benchmarks/mosp.py --out /tmp/mosp_bench [--seeds 0 1 2] [--budgets 0.5 0.43]
        [--compactor-ablation] [--data ../shared/data] [--crop 256] [--no-rss]

Defaults are the default demo's net and pretraining (SID U-Net x0.625; seed 0's dense weights
ship in the package) and its finetune budget: 1,200 steps for every pruned model
(``--finetune-steps``; at 300, and for the uniform slice still at 600, the pruned nets are far
from converged, ``benchmarks/results/mosp/INVESTIGATION.md``), and the uniform-width net trains from
scratch for the pretraining plus that budget. Seed S trains its own dense and uniform-width nets
with seed S (init and batches), then re-runs the pruning, the finetuning, the held-out batch and the test
noise with S; ``--pretrain-seed P`` shares one pretrained pair across the seeds instead (P=0: the
shipped weights; then only pruning, finetuning and noise vary). Writes ``<out>/seed<S>/`` (each
seed's study), ``<out>/mosp_benchmark.json``, ``<out>/mosp_benchmark.md`` (mean +- std tables,
then the per-seed paired margins: MOSP vs dense, vs the best uniform baseline, compactors on vs
off) and ``<out>/mosp_benchmark.png`` (PSNR vs peak memory, mean +- std). 0.43 is the tightest
budget the x0.625 net reaches with every layer at >= 8 channels (``--min-channels``).
Each seed also scores the dense net finetuned the same steps as every pruned model
("dense-finetuned"; ``--no-dense-finetune`` skips it), the fair control for "within x dB of dense".
Budgets of one seed may run as separate processes (``--out <out>/parts/<name>``); ``--aggregate``
merges them per seed. ``benchmarks/mosp_curves.py`` records the learning curves of the same dense / uniform-width nets.
RSS/latency run each saved model in
a fresh subprocess (``save_pruned``/``load_pruned``), so allocator state does not leak between
models. Per forward, the resident set is sampled every 0.5 ms from /proc/self/statm; the reported
``rss_forward_mb`` is the median over ``--repeats`` forwards (after one warm-up) of its rise
above the level before the forward (input, weights and libraries excluded; output included);
latency is the median of the same forwards.
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from ir_prune_plugin.studies.mosp_study import FULL  # noqa: E402
from ir_prune_plugin.workloads.figures import finish_figure  # noqa: E402
DEFAULT_DATA = ROOT.parent / "shared" / "data"

_CHILD = r"""
import os, statistics, sys, threading, time, json, torch
torch.set_num_threads(int(sys.argv[3]))
from ir_prune_plugin.io import load_pruned
PAGE = os.sysconf("SC_PAGE_SIZE")
def rss():
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * PAGE
model = load_pruned(sys.argv[1]).eval()
x = torch.rand(1, 3, 1080, 2048)
times, peaks = [], []
with torch.no_grad():
    for i in range(int(sys.argv[2]) + 1):
        base, peak, stop = rss(), [0], threading.Event()
        def poll():
            while not stop.is_set():
                peak[0] = max(peak[0], rss()); time.sleep(0.0005)
        th = threading.Thread(target=poll); th.start()
        t = time.perf_counter(); y = model(x); times.append(time.perf_counter() - t)
        stop.set(); th.join(); del y
        peaks.append(max(peak[0], rss()) - base)
print(json.dumps({"rss_forward_mb": statistics.median(peaks[1:]) / 2 ** 20,
                  "latency_s": statistics.median(times[1:])}))
"""


class FolderDenoise(Dataset):
    """Centre crops of a folder of clean images with fixed Gaussian noise (sigma on 0-255)."""

    def __init__(self, folder: Path, sigma: float, crop: int, limit: int | None) -> None:
        from ir_prune_plugin.data.degrade import add_noise
        from ir_prune_plugin.data.images import load_folder

        imgs = load_folder(folder)[:limit]
        self.items = []
        for i, img in enumerate(imgs):
            h, w = img.shape[:2]
            c = min(crop, h, w)
            top, left = (h - c) // 2, (w - c) // 2
            gt = img[top:top + c, left:left + c].astype(np.float32) / 255.0
            lq = add_noise(gt, sigma, 1000 + i)
            self.items.append({"lq": torch.from_numpy(np.ascontiguousarray(lq.transpose(2, 0, 1))).float(),
                               "gt": torch.from_numpy(np.ascontiguousarray(gt.transpose(2, 0, 1))).float()})

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> dict:
        return self.items[i]


TEST_SETS = ("CBSD68", "Kodak24")


def standard_test_sets(data: Path, sigma: float, crop: int, limit: int | None) -> dict[str, FolderDenoise]:
    """The benchmark's extra test sets found under ``data`` (CBSD68, Kodak24), by name."""
    return {name: FolderDenoise(data / name, sigma, crop, limit) for name in TEST_SETS if (data / name).is_dir()}


def rss_and_latency(path: Path, repeats: int, threads: int) -> dict:
    """Forward RSS rise and median latency of a saved model at 1x3x1080x2048 in a fresh subprocess."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(repeats), str(threads)],
                         capture_output=True, text=True, env=env, check=True, timeout=3600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--width", type=float, default=FULL.width)
    parser.add_argument("--pretrain-steps", type=int, default=FULL.pretrain_steps)
    parser.add_argument("--patch", type=int, default=FULL.patch,
                        help="training patch of every net (pretraining, finetunes, uniform width)")
    parser.add_argument("--batch-size", type=int, default=FULL.batch_size)
    parser.add_argument("--pretrain-lr", type=float, default=FULL.pretrain_lr,
                        help="rate of the dense net's pretraining")
    parser.add_argument("--uniform-lr", type=float, default=FULL.uniform_lr,
                        help="rate of the uniform-width nets' training from scratch")
    parser.add_argument("--uniform-restarts", type=int, default=FULL.uniform_restarts,
                        help="the uniform-width net is the best of this many trainings from scratch, chosen "
                             "on the training photos (1: one training, the recipe before this option)")
    parser.add_argument("--finetune-lr", type=float, default=FULL.finetune_lr, help="rate of every finetune")
    parser.add_argument("--finetune-steps", type=int, default=FULL.finetune_steps,
                        help="finetune steps of every pruned model (and of the dense-finetuned control); "
                             "fewer leave the pruned nets finetune-limited")
    parser.add_argument("--compactor-finetune-steps", type=int, default=FULL.compactor_finetune_steps)
    parser.add_argument("--loop-finetune-steps", type=int, default=FULL.loop_finetune_steps)
    parser.add_argument("--budgets", type=float, nargs="*", default=[0.5, 0.43],
                        help="fractions of the dense peak; none: only the dense (and dense-finetuned) rows")
    parser.add_argument("--min-channels", type=int, default=FULL.min_channels,
                        help="every method keeps at least this many channels per layer")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--pretrain-seed", type=int, default=None,
                        help="one seed for every run's dense and uniform-width nets (0: the shipped "
                             "weights); default: each seed trains its own (seed S trains them with seed S)")
    parser.add_argument("--compactor-ablation", action="store_true",
                        help="also prune compactors straight after insertion (no finetune before pruning)")
    parser.add_argument("--no-dense-finetune", action="store_true",
                        help="skip the 'dense-finetuned' row (the dense net finetuned the same --finetune-steps "
                             "as every pruned model, the fair control for 'within x dB of dense')")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--crop", type=int, default=256, help="centre crop of each test image (CPU time)")
    parser.add_argument("--limit", type=int, default=None, help="first N images of each test set")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--no-rss", action="store_true", help="skip the 2048x1080 RSS/latency runs")
    parser.add_argument("--aggregate", action="store_true",
                        help="run nothing: summarise the <out>/seed*/mosp_study.json and "
                             "<out>/parts/*/seed*/mosp_study.json already there (seeds, or budgets of one "
                             "seed, run as separate processes; per seed the rows are merged)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("torch").setLevel(logging.WARNING)
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT))
    from ir_prune_plugin.studies.mosp_study import run_mosp_study

    extra = {} if args.aggregate else standard_test_sets(args.data, 25.0, args.crop, args.limit)
    if not extra and not args.aggregate:
        logging.warning("no CBSD68/Kodak24 under %s: evaluating on the embedded photos only", args.data)
    t0 = time.time()
    runs = []
    if args.aggregate:
        runs = merge_runs([json.loads(p.read_text()) for p in [*sorted(args.out.glob("seed*/mosp_study.json")),
                                                               *sorted(args.out.glob("parts/*/seed*/mosp_study.json"))]])
        if not runs:
            raise SystemExit(f"no {args.out}/seed*/mosp_study.json or {args.out}/parts/*/seed*/mosp_study.json "
                             "to aggregate")
        args.seeds = [r["seed"] for r in runs]
    for seed in [] if args.aggregate else args.seeds:
        out = args.out / f"seed{seed}"
        result = run_mosp_study(out, quick=False, seed=seed, cache_dir=args.cache_dir or args.out / "cache",
                                progress=True, extra_eval=extra, keep_models=not args.no_rss,
                                pretrain_seed=args.pretrain_seed, width=args.width, patch=args.patch,
                                batch_size=args.batch_size, pretrain_lr=args.pretrain_lr,
                                uniform_lr=args.uniform_lr, uniform_restarts=args.uniform_restarts,
                                finetune_lr=args.finetune_lr,
                                pretrain_steps=args.pretrain_steps, finetune_steps=args.finetune_steps,
                                compactor_finetune_steps=args.compactor_finetune_steps,
                                loop_finetune_steps=args.loop_finetune_steps, budgets=tuple(args.budgets),
                                compactor_ablation=args.compactor_ablation, min_channels=args.min_channels,
                                dense_finetune=not args.no_dense_finetune)
        if not args.no_rss:
            _rss_columns(result, out, args)
        runs.append(result)
    extra_cols = sorted({k for r in runs[0]["rows"] for k in r if k.startswith("psnr_")})
    summary = aggregate(runs, ["psnr", *extra_cols])
    report = {"command": " ".join(["python benchmarks/mosp.py", *(argv or sys.argv[1:])]),
              "seeds": args.seeds,
              "pretrain_seeds": [r.get("pretrain_seed") for r in runs], "config": runs[0]["config"],
              "summary": summary, "margins": margins(runs, ["psnr", *extra_cols]), "runs": runs,
              "benchmark_seconds": round(time.time() - t0, 1)}
    (args.out / "mosp_benchmark.json").write_text(json.dumps(report, indent=2, default=str))
    md = markdown(summary, ["psnr", *extra_cols], report["command"], len(runs))
    md += "\n" + margins_markdown(report["margins"], ["psnr", *extra_cols])
    (args.out / "mosp_benchmark.md").write_text(md)
    plot(summary, args.out / "mosp_benchmark.png")
    print(md)
    return 0


def _rss_columns(result: dict, out: Path, args: argparse.Namespace) -> None:
    """Save each model and add its forward RSS rise / latency at 2048x1080 (fresh subprocess)."""
    from ir_prune_plugin.io import save_pruned

    models = result.pop("models")
    (out / "models").mkdir(parents=True, exist_ok=True)
    for row in result["rows"]:
        key = f"{row['method']}@{row['budget']}"
        if key in models:
            row["model_file"] = str(out / "models" / f"{key}.pt")
            save_pruned(models[key], row["model_file"])
            row.update(rss_and_latency(Path(row["model_file"]), args.repeats, args.threads))
            logging.info("%s: RSS +%.0f MB, %.2f s", key, row["rss_forward_mb"], row["latency_s"])


def merge_runs(runs: list[dict]) -> list[dict]:
    """One run per seed: the rows of several runs of the same seed (e.g. one process per budget)
    concatenated in order, the first row of each (method, budget) kept; seeds in ascending order."""
    merged: dict[int, dict] = {}
    for run in runs:
        into = merged.setdefault(run["seed"], {**run, "rows": []})
        seen = {(r["method"], r["budget"]) for r in into["rows"]}
        into["rows"] += [r for r in run["rows"] if (r["method"], r["budget"]) not in seen]
    return [merged[s] for s in sorted(merged)]


def collapsed(run: dict, row: dict) -> bool:
    """A row whose training collapsed: under the noisy input's PSNR on the held-out photos (older
    runs without ``noisy_psnr``: under the noise level's 20 log10(255 / sigma))."""
    noisy = run.get("noisy_psnr")
    if noisy is None and "sigma" in run.get("config", {}):
        noisy = 20 * np.log10(255 / run["config"]["sigma"])
    return bool(row.get("collapsed")) or (noisy is not None and "psnr" in row and row["psnr"] < noisy)


def aggregate(runs: list[dict], columns: list[str]) -> list[dict]:
    """Per (method, budget): mean and sample std over the runs of each column (rows in first-run order).
    Rows that did not reach the budget or whose training :func:`collapsed` are counted, not averaged."""
    groups: dict[tuple, list[dict]] = {}
    for run in runs:
        for row in run["rows"]:
            row = {**row, "collapsed": True} if collapsed(run, row) else row
            groups.setdefault((row["method"], row["budget"]), []).append(row)
    summary = []
    for (method, budget), rows in groups.items():
        entry: dict = {"method": method, "budget": budget, "n": len(rows)}
        if any("unreachable" in r for r in rows):
            entry["unreachable"] = next(r["unreachable"] for r in rows if "unreachable" in r)
            entry["unreachable_n"] = sum("unreachable" in r for r in rows)   # the means are over the rest
        if any(r.get("collapsed") for r in rows):
            entry["collapsed_n"] = sum(bool(r.get("collapsed")) for r in rows)
            rows = [r for r in rows if not r.get("collapsed")]
        for col in columns + ["peak_mb_est", "macs_g", "params", "full_res_channels"]:
            vals = [float(r[col]) for r in rows if r.get(col) is not None]
            if vals:
                entry[col] = float(np.mean(vals))
                entry[f"{col}_std"] = float(np.std(vals, ddof=1)) if len(vals) > 1 else 0.0
        summary.append(entry)
    return summary


#: paired margins, per seed then mean +- std: (name, minuend methods, subtrahend methods); where
#: several methods are named, the best of them in that seed is used
MARGINS = (("MOSP − dense", ("mosp",), ("dense",)),
           ("MOSP − dense finetuned the same steps", ("mosp",), ("dense-finetuned",)),
           ("MOSP − best uniform", ("mosp",), ("uniform-width", "uniform-slice")),
           ("compactors on − off", ("mosp",), ("mosp-no-compactor",)),
           ("compactor pre-finetune on − off", ("mosp",), ("mosp-compactor-no-prefinetune",)),
           ("best uniform − dense", ("uniform-width", "uniform-slice"), ("dense",)),
           ("best uniform − dense finetuned the same steps", ("uniform-width", "uniform-slice"),
            ("dense-finetuned",)))


def _best(run: dict, methods: tuple[str, ...], budget: float, col: str) -> float | None:
    vals = [r[col] for r in run["rows"] if r["method"] in methods and col in r and r["budget"] in (budget, None)
            and not collapsed(run, r)]
    return max(vals) if vals else None


def margins(runs: list[dict], columns: list[str]) -> list[dict]:
    """Per budget, the :data:`MARGINS` as per-seed paired differences: mean and sample std (dB)."""
    out = []
    budgets = sorted({r["budget"] for run in runs for r in run["rows"] if r["budget"] is not None}, reverse=True)
    for budget in budgets:
        for name, left, right in MARGINS:
            entry: dict = {"margin": name, "budget": budget}
            for col in columns:
                pairs = [(_best(run, left, budget, col), _best(run, right, budget, col)) for run in runs]
                diffs = [a - b for a, b in pairs if a is not None and b is not None]
                if diffs:
                    entry[col] = float(np.mean(diffs))
                    entry[f"{col}_std"] = float(np.std(diffs, ddof=1)) if len(diffs) > 1 else 0.0
                    entry["n"] = len(diffs)
            if "n" in entry:
                out.append(entry)
    return out


def margins_markdown(rows: list[dict], columns: list[str]) -> str:
    """The paired margins as a Markdown table."""
    names = {"psnr": "held-out photos"} | {c: c.removeprefix("psnr_") for c in columns if c != "psnr"}
    head = ["paired margin (dB)", "budget", *[names[c] for c in columns], "seeds"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for e in rows:
        cells = [e["margin"], f"{e['budget']:g}"]
        cells += [f"{e[c]:+.2f} ± {e[c + '_std']:.2f}" if c in e else "-" for c in columns]
        lines.append("| " + " | ".join(cells + [str(e["n"])]) + " |")
    return "\n".join(lines) + "\n"


def plot(summary: list[dict], path: Path) -> Path:
    """PSNR on the held-out photos (mean +- std over seeds) vs estimated peak memory, a line per method."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for method in dict.fromkeys(e["method"] for e in summary if "psnr" in e):
        pts = sorted((e["peak_mb_est"], e["psnr"], e["psnr_std"]) for e in summary
                     if e["method"] == method and "psnr" in e)
        ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], marker="o",
                    capsize=3, label=method)
    ax.set_xlabel("peak activation memory at 2048x1080 (MiB, estimate)")
    ax.set_ylabel("PSNR, held-out photos (dB)")
    ax.set_title("MOSP vs baselines at equal peak memory (mean ± std over seeds)", fontsize=9)
    return finish_figure(fig, ax, path, legend_size=7)


def markdown(summary: list[dict], columns: list[str], command: str, seeds: int) -> str:
    """The summary as a Markdown table: mean +- std over seeds of each PSNR column."""
    names = {"psnr": "held-out photos"} | {c: c.removeprefix("psnr_") for c in columns if c != "psnr"}
    head = ["method", "budget", *[f"PSNR {names[c]} (dB)" for c in columns], "peak MiB", "GMACs",
            "min full-res ch."]
    lines = [f"`{command}` ({seeds} seeds, mean ± std)", "", "| " + " | ".join(head) + " |",
             "|" + "---|" * len(head)]
    for e in summary:
        if e.get("collapsed_n") == e["n"]:
            lines.append(f"| {e['method']} | {'-' if e['budget'] is None else format(e['budget'], 'g')} | "
                         "collapsed under the noisy input in every seed |" + " |" * (len(head) - 3))
            continue
        if "unreachable" in e and "psnr" not in e:
            lines.append(f"| {e['method']} | {e['budget']:g} | cannot reach the budget |" + " |" * (len(head) - 3))
            continue
        cells = [e["method"], "-" if e["budget"] is None else f"{e['budget']:g}"]
        cells += [f"{e[c]:.2f} ± {e[c + '_std']:.2f}" if c in e else "-" for c in columns]
        if e.get("unreachable_n"):   # reached in some seeds only: say over how many the mean is
            cells[2] += f" ({e['n'] - e['unreachable_n']} of {e['n']} seeds reach the budget)"
        if e.get("collapsed_n"):
            cells[2] += (f" ({e['collapsed_n']} of {e['n']} seeds collapsed under the noisy input, "
                         "not averaged)")
        cells += [f"{e['peak_mb_est']:.1f}", f"{e['macs_g']:.1f}",
                  f"{e['full_res_channels']:.0f}" if "full_res_channels" in e else "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    raise SystemExit(main())
