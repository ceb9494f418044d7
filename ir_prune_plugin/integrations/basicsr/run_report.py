"""A report of a BasicSR run folder (``experiments/<name>/``) trained with ``IRPruneModel``.

Reads what BasicSR and the model already write -- ``train_<name>_<time>.log`` (the training lines
with ``params_m``, ``macs_g``, ``peak_mb`` / ``macs_ratio`` ... and the validation metrics) and the
``irprune`` entry of the latest ``models/net_g_<iter>.pth`` -- and writes ``report.md`` and
``training.png`` beside them. Nothing is re-run.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

__all__ = ["is_basicsr_run", "parse_log", "render_basicsr_run"]

_TRAIN = re.compile(r"\[epoch:\s*\d+, iter:\s*([\d,]+), lr:\([^)]*\)\] (?:\[[^\]]*\] )?(.*)$")
_VALUE = re.compile(r"(\w+): ([-+0-9.eEinfa]+)")
_VALID = re.compile(r"# (\w+): ([-+0-9.eEinfa]+)")


def is_basicsr_run(path: str | os.PathLike) -> bool:
    """True for a BasicSR experiment folder (a ``train_*.log`` and a ``models/`` folder)."""
    p = Path(path)
    return p.is_dir() and any(p.glob("train_*.log")) and (p / "models").is_dir()


def parse_log(text: str) -> tuple[list[dict[str, float]], list[dict[str, float]]]:
    """(training rows ``{'iter', key: value}``, validation rows ``{'iter', metric: value}``) of a log."""
    train, valid, current = [], [], 0
    lines = text.splitlines()
    for i, line in enumerate(lines):
        m = _TRAIN.search(line)
        if m:
            current = int(m.group(1).replace(",", ""))
            train.append({"iter": current, **{k: float(v) for k, v in _VALUE.findall(m.group(2))}})
        elif "Validation " in line:
            row: dict[str, float] = {"iter": current}
            for nxt in lines[i + 1:i + 8]:
                v = _VALID.search(nxt)
                if not v:
                    break
                row[v.group(1)] = float(v.group(2))
            if len(row) > 1:
                valid.append(row)
    return train, valid


def _latest_checkpoint(run: Path) -> tuple[int | str, dict[str, Any]] | None:
    import torch  # torch only when a checkpoint is read: `irprune report` on a log needs none

    found = []
    for f in (run / "models").glob("net_g_*.pth"):
        m = re.fullmatch(r"net_g_(\d+|latest)\.pth", f.name)
        if m:
            found.append((float("inf") if m.group(1) == "latest" else int(m.group(1)), f))
    if not found:
        return None
    _, f = max(found)
    payload = torch.load(f, map_location="cpu", weights_only=True)
    return f.name[len("net_g_"):-len(".pth")], (payload.get("irprune") or {}) if isinstance(payload, dict) else {}


def _plot(train: list[dict], valid: list[dict], path: Path, title: str) -> Path | None:
    keys = [k for k in ("peak_mb", "macs_ratio", "macs_g", "params_m") if any(k in r for r in train)]
    metrics = sorted({k for r in valid for k in r if k != "iter"})
    if not keys and not metrics:
        return None
    import matplotlib  # matplotlib: heavy, imported only when a figure is drawn

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), constrained_layout=True)
    for k in metrics:
        axes[0].plot([r["iter"] for r in valid if k in r], [r[k] for r in valid if k in r], "o-", label=k)
    axes[0].set(xlabel="iteration", ylabel="validation metric (PSNR in dB, SSIM in [0, 1])",
                title="validation (BasicSR val.metrics)")
    labels = {"peak_mb": "peak activation memory (MiB)", "macs_ratio": "kept / dense MACs of N:M layers",
              "macs_g": "GMACs at pruning.input_size", "params_m": "parameters (millions)"}
    for k in keys[:2]:
        axes[1].plot([r["iter"] for r in train if k in r], [r[k] for r in train if k in r], label=labels[k])
    axes[1].set(xlabel="iteration", title="network size during training")
    for ax in axes:
        ax.ticklabel_format(axis="y", useOffset=False)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def render_basicsr_run(run_dir: str | os.PathLike) -> Path:
    """Write ``report.md`` (+ ``training.png``) for a BasicSR experiment folder."""
    run = Path(run_dir)
    if not is_basicsr_run(run):
        raise FileNotFoundError(f"{run} is not a BasicSR experiment folder (no train_*.log and models/)")
    log = max(run.glob("train_*.log"), key=lambda p: p.stat().st_mtime)
    train, valid = parse_log(log.read_text(encoding="utf-8", errors="replace"))
    ckpt = _latest_checkpoint(run)
    meta = ckpt[1] if ckpt else {}
    pruning = meta.get("pruning") or {}
    title = f"BasicSR run {run.name}: {pruning.get('method', 'dense')} at budget {pruning.get('budget', '-')}"
    out = [f"# {title}", "", f"Log: `{log.name}`; {len(train)} training lines, {len(valid)} validations.", ""]
    if ckpt:
        out += [f"## Latest checkpoint: `models/net_g_{ckpt[0]}.pth`", "",
                f"- phase: {meta.get('phase', '-')}", f"- pruning block: `{pruning}`"]
        for k, v in sorted((meta.get("stats") or {}).items()):
            out.append(f"- {k}: {v:.4g}" if isinstance(v, (int, float)) else f"- {k}: {v}")
        out.append("")
    if valid:
        metrics = sorted({k for r in valid for k in r if k != "iter"})
        out += ["## Validation", "", "| iter | " + " | ".join(metrics) + " |", "|---" * (len(metrics) + 1) + "|"]
        out += [f"| {r['iter']} | " + " | ".join(f"{r[m]:.4f}" if m in r else "-" for m in metrics) + " |"
                for r in valid] + [""]
    plot = _plot(train, valid, run / "training.png", title)
    if plot is not None:
        out += ["![validation and network size over iterations](training.png)", ""]
    dest = run / "report.md"
    dest.write_text("\n".join(out), encoding="utf-8")
    return dest
