"""Plot a profile's live activation memory over execution steps (matplotlib, Agg backend)."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..vocabulary import MIB, format_bytes

if TYPE_CHECKING:
    from .profile import MemoryProfile


def plot_timeline(profile: "MemoryProfile", path: str | Path, *, title: str | None = None) -> Path:
    """Write a PNG of live MiB per step, the peak marked and labelled; returns the path."""
    import matplotlib  # matplotlib: heavy, imported only when a figure is drawn
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"plot path must end in .png, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    mb = [b / MIB for b in profile.timeline]
    fig, ax = plt.subplots(figsize=(9, 4), dpi=110)
    try:
        ax.step(range(len(mb)), mb, where="mid", color="tab:blue", lw=1.4, label="live activations")
        ax.fill_between(range(len(mb)), mb, step="mid", alpha=0.2, color="tab:blue")
        p = profile.peak_step
        s = profile.steps[p]
        ax.plot([p], [mb[p]], "o", color="tab:red",
                label=f"peak {format_bytes(profile.peak_bytes)} at step {p} ({s.op} in '{s.module or '<root>'}')")
        ax.axvline(p, color="tab:red", ls="--", lw=0.8)
        ax.set_xlabel("execution step (exported graph order)")
        ax.set_ylabel("live activation memory (MiB)")
        ax.set_title(title or f"{profile.extra.get('model', 'model')} "
                     f"input {' + '.join('x'.join(map(str, s)) for s in profile.input_shapes)}")
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
        ax.legend(loc="upper left", fontsize=8)
        fig.tight_layout()
        fig.savefig(path)
    finally:
        plt.close(fig)
    return path
