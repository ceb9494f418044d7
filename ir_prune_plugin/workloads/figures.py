"""Pictures for the demo report: side-by-side image strips and PSNR-vs-cost plots."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn


def finish_figure(fig, axes, path: str | Path, *, legend_size: int | None = 8) -> Path:
    """Grid (and legend) on every axis, tight layout, save ``path`` at 120 dpi, close the figure."""
    import matplotlib.pyplot as plt  # matplotlib: heavy, only when a figure is drawn

    for ax in np.atleast_1d(axes).ravel():
        ax.grid(alpha=0.3)
        if legend_size is not None:
            ax.legend(fontsize=legend_size)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().clamp(0, 1).squeeze(0).permute(1, 2, 0).cpu().numpy()


@torch.no_grad()
def image_strip(path: str | Path, item: dict, panels: Sequence[tuple[str, nn.Module | None]],
                crop: int = 96) -> Path:
    """Save a row of centre crops: the degraded input, each model's output, and the ground truth."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch.nn.functional as F

    lq, gt = item["lq"].unsqueeze(0), item["gt"].unsqueeze(0)
    h, w = gt.shape[-2:]
    c = min(crop, h, w)
    top, left = (h - c) // 2, (w - c) // 2

    def cut(x: torch.Tensor) -> np.ndarray:
        if x.shape[-2:] != gt.shape[-2:]:
            x = F.interpolate(x, size=(h, w), mode="nearest")
        return _np(x)[top:top + c, left:left + c]

    images = [("input", cut(lq))]
    for title, model in panels:
        images.append((title, cut(model(lq) if model is not None else lq)))
    images.append(("ground truth", cut(gt)))
    fig, axes = plt.subplots(1, len(images), figsize=(2.2 * len(images), 2.6))
    for ax, (title, img) in zip(np.atleast_1d(axes), images):
        ax.imshow(img, interpolation="nearest")
        ax.set_title(title, fontsize=8)
        ax.axis("off")
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def tradeoff_plot(path: str | Path, rows: Sequence[dict], x: str, xlabel: str, title: str, *,
                  y: str = "psnr", ylabel: str = "PSNR (dB)") -> Path:
    """Quality (``y``) versus a cost column (peak memory, MACs): a marker per row, a line per method."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    families: dict[str, list[tuple[float, float, str]]] = {}
    for r in rows:
        if r.get(x) is None or r.get(y) is None:
            continue
        families.setdefault(r.get("family", r["method"]), []).append((float(r[x]), float(r[y]), r["method"]))
    for fam, pts in sorted(families.items()):
        pts.sort()
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=fam)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=9)
    ax.ticklabel_format(axis="both", style="plain", useOffset=False)  # 20.38, not "+2.038e1"
    return finish_figure(fig, ax, path)
