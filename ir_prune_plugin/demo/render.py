"""Render a finished run's ``results.json`` into ``report.md`` and plots, deterministically.

``irprune report RUN_DIR`` calls :func:`render` again, so figures and tables are reproducible
without retraining (the Markdown is a pure function of the JSON).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from ..workloads.figures import tradeoff_plot

COLUMNS = (("method", "method", "{}"), ("budget", "budget", "{}"), ("psnr", "PSNR (dB)", "{:.2f}"),
           ("ssim", "SSIM", "{:.4f}"), ("peak_mb_est", "peak MiB @2K (est.)", "{:.1f}"),
           ("peak_mb_est_small", "peak MiB small (est.)", "{:.2f}"),
           ("peak_mb_measured_small", "peak MiB small (measured)", "{:.2f}"),
           ("memory_ratio", "memory / dense", "{:.3f}"), ("macs_g", "GMACs", "{:.3f}"),
           ("macs_m", "MMACs", "{:.2f}"), ("macs_ratio", "MACs / dense", "{:.3f}"),
           ("prunable_ratio", "prunable MACs kept", "{:.3f}"),
           ("params", "params", "{:,}"), ("plan", "N:M plan", "{}"), ("budget_met", "budget met", "{}"),
           ("tiles", "tiles @2K", "{}"), ("note", "note", "{}"))  # the last two: the deploy section


def _fmt(fmt: str, v: Any) -> str:
    if v is None:
        return "-"
    try:
        return fmt.format(v)
    except (ValueError, TypeError):
        return str(v)


def table(rows: Sequence[dict]) -> str:
    """A Markdown table of result rows with the columns that at least one row has."""
    cols = [c for c in COLUMNS if any(c[0] in r for r in rows)]
    lines = ["| " + " | ".join(c[1] for c in cols) + " |", "|" + "---|" * len(cols)]
    for r in rows:
        lines.append("| " + " | ".join(_fmt(f, r.get(k)) for k, _, f in cols) + " |")
    return "\n".join(lines)


def render(run_dir: str | Path) -> Path:
    """Write ``report.md`` and the trade-off plots of ``run_dir`` from its ``results.json``."""
    run = Path(run_dir)
    src = run / "results.json"
    if not src.is_file():
        raise FileNotFoundError(f"{src} not found: RUN_DIR must be a finished `irprune demo` (or sweep) folder")
    res = json.loads(src.read_text())
    out = [f"# ir-prune-plugin: {res.get('title', 'run report')}", ""]
    if res.get("summary"):
        out += [res["summary"], ""]
    for section in res.get("sections", []):
        out += [f"## {section['title']}", ""]
        if section.get("text"):
            out += [section["text"], ""]
        rows = section.get("rows", [])
        if rows:
            out += [table(rows), ""]
        for plot in section.get("plots", []):
            title = plot.get("title") or f"{section['title']}\nPSNR vs {plot['xlabel']}"
            tradeoff_plot(run / plot["file"], rows, plot["x"], plot["xlabel"], title)
            out += [f"![{plot['xlabel']}]({plot['file']})", ""]
        for image in section.get("images", []):
            out += [f"![{image['caption']}]({image['file']})", ""]
    if res.get("config"):
        out += ["## Configuration", "", "```json", json.dumps(res["config"], indent=2, sort_keys=True), "```", ""]
    dest = run / "report.md"
    dest.write_text("\n".join(out))
    return dest
