"""Small helpers shared by the reference networks."""
from __future__ import annotations


def check_width(width: float) -> None:
    """Reject a width multiplier that is not a positive number."""
    if isinstance(width, bool) or not isinstance(width, (int, float)):
        raise TypeError(f"width must be a number, got {type(width).__name__} {width!r}")
    if not 0 < width <= 8:
        raise ValueError(f"width must be in (0, 8], got {width!r} (1.0 is the paper's size)")


