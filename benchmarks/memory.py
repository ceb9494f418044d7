"""Peak activation memory: estimate (meta, liveness) vs real measurement, and estimate time.

For the reference U-Nets and BasicSR's EDSR, MSRResNet, RCAN and RRDBNet at several input
sizes: the estimate, the measured 'scheduled' peak (exported graph order, values freed after
their last use), the measured 'eager' peak (the module's forward as written), their ratio, and
-- on CUDA -- ``torch.cuda.max_memory_allocated`` of the eager forward minus what was allocated
before it. Also the time to estimate the full SID U-Net at 2048x1080 (a fresh process: first
call, and a warm second call). Prints a table and writes ``memory.json`` into ``--out``.

    python benchmarks/memory.py --out /tmp/bench_mem            # CPU: full U-Nets up to 2048x1080
    python benchmarks/memory.py --out /tmp/bench_mem --quick    # small sizes only (a minute)
"""
from __future__ import annotations

import argparse
import gc
import json
import subprocess
import sys
import time
from pathlib import Path

import torch
from tqdm import tqdm

from ir_prune_plugin.archs import build_arch
from ir_prune_plugin.memory import estimate_peak_memory, measure_peak_memory

MB = 2 ** 20
# (label, arch, kwargs, input sizes as (H, W) of the network input)
CASES = [
    ("SID U-Net", "sid_unet", {}, [(256, 256), (512, 512), (1080, 2048)]),
    ("Res-U-Net", "res_unet", {}, [(256, 256), (512, 512), (1080, 2048)]),
    ("EDSR x2 (64f,16b)", "edsr", {}, [(64, 64), (128, 128), (540, 1024)]),
    ("MSRResNet x4", "msrresnet", {}, [(64, 64), (128, 128), (270, 512)]),
    ("RCAN x4 (10g,20b)", "rcan", {}, [(32, 32), (64, 64), (270, 512)]),
    ("RRDBNet x4 (23b)", "rrdbnet", {}, [(32, 32), (64, 64), (270, 512)]),
]
QUICK = {"sid_unet": [(64, 64), (128, 96)], "res_unet": [(64, 64), (128, 96)],
         "edsr": [(32, 32), (48, 64)], "msrresnet": [(32, 32), (48, 64)],
         "rcan": [(16, 16), (24, 32)], "rrdbnet": [(16, 16), (24, 32)]}

_TIMING = """
import time; t0 = time.perf_counter()
import torch
from ir_prune_plugin.archs import build_arch
from ir_prune_plugin.memory import estimate_peak_memory
t1 = time.perf_counter(); m = build_arch('sid_unet')
t2 = time.perf_counter(); p = estimate_peak_memory(m, (1, 3, 1080, 2048)); t3 = time.perf_counter()
p = estimate_peak_memory(m, (1, 3, 1080, 2048)); t4 = time.perf_counter()
print(t1 - t0, t3 - t2, t4 - t3, p.extra['export_s'], p.extra['analysis_s'], p.peak_bytes)
"""


def time_estimate() -> dict[str, float]:
    """Time to estimate the full SID U-Net at 2048x1080 in a fresh process (cold and warm)."""
    out = subprocess.run([sys.executable, "-c", _TIMING], capture_output=True, text=True, check=True)
    imp, cold, warm, export_s, analysis_s, peak = out.stdout.split()[-6:]
    return {"import_s": float(imp), "first_call_s": float(cold), "warm_call_s": float(warm),
            "warm_export_s": float(export_s), "warm_analysis_s": float(analysis_s), "peak_bytes": int(peak)}


def cuda_eager_peak(model: torch.nn.Module, x: torch.Tensor) -> int:
    """``max_memory_allocated`` during an eager forward, minus what was allocated before it."""
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    with torch.no_grad():
        y = model(x)
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - base
    del y
    return int(peak)


def run_case(label: str, arch: str, kw: dict, hw: tuple[int, int], device: torch.device,
             measure_limit: int, modes: tuple[str, ...] = ("scheduled", "eager")) -> dict:
    """Estimate (and measure, when the input is small enough) one net at one size."""
    model = build_arch(arch, **kw).eval()
    shape = (1, 3, *hw)
    t0 = time.perf_counter()
    prof = estimate_peak_memory(model, shape)
    row = {"net": label, "arch": arch, "input": list(shape), "estimate_bytes": prof.peak_bytes,
           "estimate_s": time.perf_counter() - t0, "peak_op": prof.steps[prof.peak_step].op,
           "params": sum(p.numel() for p in model.parameters())}
    if hw[0] * hw[1] > measure_limit:
        return row
    model = model.to(device)
    x = torch.rand(shape, device=device)
    for mode in modes:
        t0 = time.perf_counter()
        row[f"{mode}_bytes"] = measure_peak_memory(model, x, mode=mode)
        row[f"{mode}_s"] = time.perf_counter() - t0
        gc.collect()
    if "scheduled_bytes" in row:
        row["estimate_over_scheduled"] = row["estimate_bytes"] / row["scheduled_bytes"]
    if device.type == "cuda":
        row["cuda_max_allocated_bytes"] = cuda_eager_peak(model, x)
    return row


def fmt(row: dict, key: str) -> str:
    return f"{row[key] / MB:10.2f}" if key in row else f"{'-':>10}"


def print_table(rows: list[dict]) -> None:
    print(f"{'net':<20} {'input':<16} {'estimate':>10} {'scheduled':>10} {'est/sched':>9} "
          f"{'eager':>10} {'cuda max':>10} {'est s':>6}  (MB)")
    for r in rows:
        ratio = f"{r['estimate_over_scheduled']:9.4f}" if "estimate_over_scheduled" in r else f"{'-':>9}"
        print(f"{r['net']:<20} {'x'.join(map(str, r['input'][2:])):<16} {fmt(r, 'estimate_bytes')} "
              f"{fmt(r, 'scheduled_bytes')} {ratio} {fmt(r, 'eager_bytes')} "
              f"{fmt(r, 'cuda_max_allocated_bytes')} {r['estimate_s']:6.2f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, required=True, help="folder for memory.json")
    ap.add_argument("--quick", action="store_true", help="small sizes only")
    ap.add_argument("--nets", default=",".join(c[1] for c in CASES), help="comma-separated archs")
    ap.add_argument("--largest-only", action="store_true", help="only the largest size of each net")
    ap.add_argument("--modes", default="scheduled,eager", help="measurement modes to run")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--measure-limit", type=int, default=None,
                    help="measure only inputs with at most this many pixels (default: all on CUDA, "
                         "2048*1080 for the U-Nets on CPU and 128*128 for the SR nets)")
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    wanted = set(args.nets.split(","))
    rows = []
    jobs = [(label, arch, kw, hw) for label, arch, kw, sizes in CASES if arch in wanted
            for hw in (QUICK[arch] if args.quick else sizes[-1:] if args.largest_only else sizes)]
    modes = tuple(m for m in args.modes.split(",") if m)
    if not modes or any(m not in ("scheduled", "eager") for m in modes):
        raise ValueError(f"--modes must list scheduled and/or eager, got {args.modes!r}")
    for label, arch, kw, hw in tqdm(jobs, desc="memory benchmark"):
        limit = args.measure_limit
        if limit is None:
            limit = 10 ** 9 if device.type == "cuda" else (1080 * 2048 if "unet" in arch else 128 * 128)
        rows.append(run_case(label, arch, kw, hw, device, limit, modes))
        tqdm.write(json.dumps(rows[-1]))
    timing = time_estimate()
    print_table(rows)
    print(f"SID U-Net 2048x1080 estimate: first call in a fresh process {timing['first_call_s']:.2f} s "
          f"(after {timing['import_s']:.2f} s of imports), warm {timing['warm_call_s']:.2f} s "
          f"(export {timing['warm_export_s']:.2f} s + analysis {timing['warm_analysis_s']:.3f} s)")
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"device": str(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
              "rows": rows, "sid_unet_2k_timing": timing}
    (args.out / "memory.json").write_text(json.dumps(result, indent=2))
    print(f"wrote {args.out / 'memory.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
