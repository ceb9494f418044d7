"""Small helpers shared by the reference networks."""
from __future__ import annotations

import torch
import torch.nn.functional as F


def check_width(width: float) -> None:
    """Reject a width multiplier that is not a positive number."""
    if isinstance(width, bool) or not isinstance(width, (int, float)):
        raise TypeError(f"width must be a number, got {type(width).__name__} {width!r}")
    if not 0 < width <= 8:
        raise ValueError(f"width must be in (0, 8], got {width!r} (1.0 is the paper's size)")


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Replicate-pad H and W at the bottom/right up to a multiple (no-op when already aligned)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    return F.pad(x, (0, pw, 0, ph), mode="replicate")
