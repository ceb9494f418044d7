"""MOSP benchmark: the study at a larger scale, evaluated on CBSD68/Kodak24, plus search overhead
and the real process memory (RSS) / CPU latency of each model at 1x3x1080x2048.

    python benchmarks/mosp.py --out /tmp/mosp_bench [--width 0.25] [--pretrain-steps 3000]
        [--finetune-steps 600] [--budgets 0.5 0.25] [--data ../shared/data] [--crop 256]

Writes ``<out>/mosp_benchmark.json`` and the study's plot. RSS/latency run each saved model in
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


def rss_and_latency(path: Path, repeats: int, threads: int) -> dict:
    """Forward RSS rise and median latency of a saved model at 1x3x1080x2048 in a fresh subprocess."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": str(threads)}
    out = subprocess.run([sys.executable, "-c", _CHILD, str(path), str(repeats), str(threads)],
                         capture_output=True, text=True, env=env, check=True, timeout=3600)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--width", type=float, default=0.25)
    parser.add_argument("--pretrain-steps", type=int, default=3000)
    parser.add_argument("--finetune-steps", type=int, default=1000)
    parser.add_argument("--loop-finetune-steps", type=int, default=4)
    parser.add_argument("--budgets", type=float, nargs="+", default=[0.5, 0.35])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--crop", type=int, default=256, help="centre crop of each test image (CPU time)")
    parser.add_argument("--limit", type=int, default=None, help="first N images of each test set")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--no-rss", action="store_true", help="skip the 2048x1080 RSS/latency runs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    logging.getLogger("torch").setLevel(logging.WARNING)
    torch.set_num_threads(args.threads)
    sys.path.insert(0, str(ROOT))
    from ir_prune_plugin.studies.mosp_study import run_mosp_study

    extra = {name: FolderDenoise(args.data / name, 25.0, args.crop, args.limit)
             for name in ("CBSD68", "Kodak24") if (args.data / name).is_dir()}
    if not extra:
        logging.warning("no CBSD68/Kodak24 under %s: evaluating on the embedded photos only", args.data)
    t0 = time.time()
    result = run_mosp_study(args.out, quick=False, seed=args.seed, cache_dir=args.cache_dir or args.out / "cache",
                            progress=True, extra_eval=extra, keep_models=True, width=args.width,
                            pretrain_steps=args.pretrain_steps, finetune_steps=args.finetune_steps,
                            loop_finetune_steps=args.loop_finetune_steps, budgets=tuple(args.budgets))
    models = result.pop("models")
    from ir_prune_plugin.io import save_pruned

    (args.out / "models").mkdir(parents=True, exist_ok=True)
    for row in result["rows"]:
        key = f"{row['method']}@{row['budget']}"
        if key in models:
            row["model_file"] = str(args.out / "models" / f"{key}.pt")
            save_pruned(models[key], row["model_file"])
    if not args.no_rss:
        for row in result["rows"]:
            if "model_file" in row:
                row.update(rss_and_latency(Path(row["model_file"]), args.repeats, args.threads))
                logging.info("%s@%s: RSS +%.0f MB, %.2f s", row["method"], row["budget"],
                             row["rss_forward_mb"], row["latency_s"])
    result["benchmark_seconds"] = round(time.time() - t0, 1)
    result["command"] = " ".join([Path(sys.argv[0]).name, *(argv or sys.argv[1:])])
    (args.out / "mosp_benchmark.json").write_text(json.dumps(result, indent=2))
    cols = ["method", "budget", "psnr", *[f"psnr_{n}" for n in extra], "peak_mb_est", "rss_forward_mb",
            "latency_s", "params", "search_over_finetune"]
    print(" | ".join(cols))
    for row in result["rows"]:
        print(" | ".join(_fmt(row.get(c)) for c in cols))
    return 0


def _fmt(v: object) -> str:
    return f"{v:.3f}" if isinstance(v, float) else str(v)


if __name__ == "__main__":
    raise SystemExit(main())
