"""What a finished ``irprune sweep`` shows: the Pareto fronts, a plot and a Markdown report.

Everything here is a pure function of the rows in ``sweep_results.json``, so ``irprune report
SWEEP_DIR`` re-renders ``pareto.png`` and ``report.md`` without running a trial.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Sequence

__all__ = ["describe", "failed_rows", "pareto_front", "plot_fronts", "render_sweep"]

COSTS = (("peak_mb", "peak activation memory (MiB)", 1.0), ("macs", "MACs (G)", 1e-9))


def pareto_front(rows: Sequence[dict[str, Any]], cost: str, score: str = "default") -> list[dict[str, Any]]:
    """Rows not dominated in (lower ``cost``, higher ``score``), sorted by cost."""
    ok = [r for r in rows if isinstance(r.get(cost), (int, float)) and isinstance(r.get(score), (int, float))]
    front = [r for r in ok if not any(
        o[cost] <= r[cost] and o[score] >= r[score] and (o[cost] < r[cost] or o[score] > r[score]) for o in ok)]
    return sorted(front, key=lambda r: (r[cost], -r[score]))


def failed_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Trials that ended without a result (failed, cancelled, or never reported)."""
    return [r for r in rows if not isinstance(r.get("default"), (int, float))]


def _params(r: dict[str, Any]) -> str:
    ratio = r.get("sparse_ratio")
    return f"{r.get('method', '?')} sparse_ratio={ratio:.2f}" if isinstance(ratio, (int, float)) \
        else str(r.get("method", "?"))


def describe(settings: dict[str, Any]) -> str:
    """One line naming the net, task and the input size the costs are measured at."""
    size = settings.get("memory_size") or ("?", "?")
    kwargs = ", ".join(f"{k}={v}" for k, v in (settings.get("arch_kwargs") or {}).items())
    return (f"{settings.get('arch', '?')}({kwargs}), {settings.get('task', '?')}; "
            f"peak memory and MACs at input HxW {size[0]}x{size[1]}")


def plot_fronts(rows: Sequence[dict[str, Any]], path: str | os.PathLike, settings: dict[str, Any] | None = None
                ) -> Path:
    """PSNR vs peak memory and vs MACs: trials per method, the fronts, the dense net, failed trials."""
    import matplotlib  # matplotlib: heavy, imported only when a figure is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    done, failed = [r for r in rows if r not in failed_rows(rows)], failed_rows(rows)
    dense = next((r for r in done if isinstance(r.get("dense_psnr"), (int, float))), None)
    note_h = 0.3 + 0.17 * min(len(failed) + 1, 8) if failed else 0.0
    fig = plt.figure(figsize=(11, 4.6 + note_h), constrained_layout=True)
    grid = fig.add_gridspec(2 if failed else 1, 2, height_ratios=[4.6, note_h] if failed else [1])
    axes = [fig.add_subplot(grid[0, 0]), fig.add_subplot(grid[0, 1])]
    for ax, (cost, label, scale) in zip(axes, COSTS):
        for method in sorted({r.get("method", "?") for r in done}):
            pts = [r for r in done if r.get("method", "?") == method]
            ax.scatter([r[cost] * scale for r in pts], [r["default"] for r in pts], label=method, zorder=3)
        front = pareto_front(done, cost)
        if front:
            ax.step([r[cost] * scale for r in front], [r["default"] for r in front], where="post",
                    color="k", lw=1, label="Pareto front")
        if dense is not None and isinstance(dense.get(f"dense_{cost}"), (int, float)):
            ax.scatter([dense[f"dense_{cost}"] * scale], [dense["dense_psnr"]], marker="*", s=160,
                       color="gold", edgecolor="k", zorder=4, label="dense (unpruned)")
        ax.set_xlabel(label)
        ax.set_ylabel("PSNR on held-out photos (dB)")
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8, loc="lower right")
    title = f"Budget sweep: PSNR vs cost, {len(done)} of {len(rows)} trials finished"
    if settings:
        title += f"\n{describe(settings)}"
    fig.suptitle(title, fontsize=10)
    if failed:
        lines = [f"{len(failed)} trial(s) failed:"] + [
            f"  {_params(r)}: {str(r.get('reason') or r.get('status', '?'))[:110]}" for r in failed[:6]]
        if len(failed) > 6:
            lines.append(f"  ... and {len(failed) - 6} more (see sweep_results.json)")
        note = fig.add_subplot(grid[1, :])
        note.axis("off")
        note.text(0, 1, "\n".join(lines), fontsize=7.5, color="tab:red", va="top", family="monospace",
                  transform=note.transAxes)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _table(rows: Sequence[dict[str, Any]]) -> list[str]:
    out = ["| trial | method | sparse_ratio | lr | status | PSNR (dB) | peak MiB | GMACs | params |",
           "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        def num(key: str, fmt: str, scale: float = 1.0) -> str:
            v = r.get(key)
            return fmt.format(v * scale) if isinstance(v, (int, float)) else "-"
        out.append(f"| {r.get('trial', '?')} | {r.get('method', '?')} | {num('sparse_ratio', '{:.2f}')} | "
                   f"{num('lr', '{:.2g}')} | {r.get('status', '?')} | {num('default', '{:.2f}')} | "
                   f"{num('peak_mb', '{:.3f}')} | {num('macs', '{:.4f}', 1e-9)} | {num('params', '{:,.0f}')} |")
    return out


def render_sweep(run_dir: str | os.PathLike) -> Path:
    """Write ``report.md`` and ``pareto.png`` of a sweep folder from its ``sweep_results.json``."""
    run = Path(run_dir)
    src = run / "sweep_results.json"
    if not src.is_file():
        raise FileNotFoundError(f"{src} not found: not an `irprune sweep` output folder")
    res = json.loads(src.read_text(encoding="utf-8"))
    rows = res.get("trials", [])
    settings = (res.get("options") or {}).get("trial") or {}
    lines = ["# ir-prune-plugin: budget sweep", "",
             f"NNI experiment `{res.get('experiment_id', '?')}`: {res.get('status', '?')}; "
             f"{describe(settings)}.", ""]
    if rows:
        plot_fronts(rows, run / "pareto.png", settings)
        lines += ["![PSNR vs peak memory and MACs](pareto.png)", ""]
    for key, title in (("front_peak_mb", "Pareto front: PSNR vs peak activation memory"),
                       ("front_macs", "Pareto front: PSNR vs MACs")):
        lines += [f"## {title}", ""] + _table(res.get(key, [])) + [""]
    lines += ["## All trials", ""] + _table(rows) + [""]
    failed = failed_rows(rows)
    if failed:
        lines += ["## Failed trials", ""] + [f"- {r.get('trial', '?')} ({_params(r)}): "
                                             f"{r.get('reason') or r.get('status', '?')}" for r in failed] + [""]
    if res.get("search_space"):
        lines += ["## Search space", "", "```json", json.dumps(res["search_space"], indent=1), "```", ""]
    dest = run / "report.md"
    dest.write_text("\n".join(lines), encoding="utf-8")
    return dest
