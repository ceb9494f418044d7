"""How the MOSP benchmark's margins move with the finetune budget: one line per method, PSNR minus
the dense net's (paired per seed, mean +- std) against the finetune steps every pruned model got.

    python benchmarks/mosp_finetune_budget.py RUN [RUN ...] --out DIR [--budget 0.5]

Each RUN is an output folder of ``benchmarks/mosp.py`` (its ``seed*/mosp_study.json``, or
``parts/*/seed*/mosp_study.json``) or a results folder holding ``seed<S>.json`` copies; the runs
differ in ``--finetune-steps`` and share everything else. Writes ``DIR/finetune_budget.md`` (the
table) and ``DIR/finetune_budget.png``. Nothing is trained here.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from mosp import _best, merge_runs  # noqa: E402
from ir_prune_plugin.workloads.figures import finish_figure  # noqa: E402

#: the rows compared with dense, in table order
METHODS = ("dense-finetuned", "mosp", "mosp-no-compactor", "global-magnitude", "uniform-slice", "uniform-width")


def load_runs(folder: Path) -> list[dict]:
    """The per-seed study results of one benchmark run (merged per seed, ascending)."""
    paths = [*folder.glob("seed*/mosp_study.json"), *folder.glob("parts/*/seed*/mosp_study.json"),
             *folder.glob("seed*.json")]
    if not paths:
        raise SystemExit(f"{folder}: no seed*/mosp_study.json, parts/*/seed*/mosp_study.json or seed*.json")
    return merge_runs([json.loads(p.read_text()) for p in sorted(paths)])


#: config keys that may differ between the compared runs
FREE_KEYS = ("finetune_steps", "budgets")


def finetune_steps(runs: list[dict], folder: Path) -> int:
    """The one finetune budget of a run's seeds (refuses a folder that mixes budgets)."""
    steps = {int(r["config"]["finetune_steps"]) for r in runs}
    if len(steps) != 1:
        raise SystemExit(f"{folder}: its seeds used different finetune budgets {sorted(steps)}")
    return steps.pop()


def recipe_mismatch(a: dict, b: dict) -> dict:
    """The study settings, other than :data:`FREE_KEYS`, in which two runs' configs differ (a run
    from before ``uniform_lr`` existed trained its uniform-width net at ``pretrain_lr``)."""
    a, b = ({"uniform_lr": c.get("pretrain_lr"), **c} for c in (a, b))
    return {k: (a.get(k), b.get(k)) for k in sorted({*a, *b} - set(FREE_KEYS)) if a.get(k) != b.get(k)}


def margins_vs_dense(runs: list[dict], budget: float) -> dict[str, dict]:
    """Per method, the paired (method - dense) PSNR on the held-out photos: mean, sample std, seeds."""
    out = {}
    for method in METHODS:
        diffs = []
        for run in runs:
            a, b = _best(run, (method,), budget, "psnr"), _best(run, ("dense",), budget, "psnr")
            if a is not None and b is not None:
                diffs.append(a - b)
        if diffs:
            out[method] = {"mean": float(np.mean(diffs)), "n": len(diffs),
                           "std": float(np.std(diffs, ddof=1)) if len(diffs) > 1 else 0.0}
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="benchmark output or results folders")
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--budget", type=float, default=0.5, help="fraction of the dense peak (default 0.5)")
    args = parser.parse_args(argv)
    points: dict[int, dict] = {}
    first: dict | None = None
    for folder in args.runs:
        runs = load_runs(folder)
        steps = finetune_steps(runs, folder)
        for run in runs:
            first = first or run["config"]
            if diff := recipe_mismatch(first, run["config"]):
                raise SystemExit(f"{folder} (seed {run['seed']}) was run with other settings than "
                                 f"{args.runs[0]}: {diff}; compare runs that differ only in --finetune-steps")
        if steps in points:
            raise SystemExit(f"{folder}: a second run with {steps} finetune steps; give one folder per budget")
        points[steps] = margins_vs_dense(runs, args.budget)
    steps = sorted(points)
    args.out.mkdir(parents=True, exist_ok=True)
    head = ["method − dense (dB)", *[f"{s} steps" for s in steps]]
    lines = [f"Held-out photos, {args.budget:g} of the dense peak, paired per seed, mean ± std (seeds).", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method in METHODS:
        cells = [f"{points[s][method]['mean']:+.2f} ± {points[s][method]['std']:.2f} ({points[s][method]['n']})"
                 if method in points[s] else "–" for s in steps]
        lines.append("| " + " | ".join([method, *cells]) + " |")
    md = "\n".join(lines) + "\n"
    (args.out / "finetune_budget.md").write_text(md)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.2))
    for method in METHODS:
        pts = [(s, points[s][method]) for s in steps if method in points[s]]
        if pts:
            ax.errorbar([s for s, _ in pts], [p["mean"] for _, p in pts], yerr=[p["std"] for _, p in pts],
                        marker="o", capsize=3, label=method)
    ax.axhline(-1.0, color="grey", linestyle=":", linewidth=1)
    ax.axhline(0.0, color="black", linewidth=0.8)
    ax.set_xscale("log", base=2)
    ax.set_xticks(steps, [str(s) for s in steps])
    ax.set_xlabel("finetune steps of every pruned model")
    ax.set_ylabel("PSNR − dense, held-out photos (dB)")
    ax.set_title(f"MOSP benchmark at {args.budget:g} of the dense peak: margins vs finetune budget", fontsize=9)
    finish_figure(fig, ax, args.out / "finetune_budget.png", legend_size=7)
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
