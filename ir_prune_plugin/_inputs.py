"""Normalising user arguments shared by every part of the plugin (example inputs, image sizes)."""
from __future__ import annotations

import re
from typing import Any

import torch


def as_tuple(example_inputs: Any) -> tuple[torch.Tensor, ...]:
    """``example_inputs`` as a tuple of tensors (a single tensor is wrapped)."""
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    if (isinstance(example_inputs, (tuple, list)) and example_inputs
            and all(isinstance(t, torch.Tensor) for t in example_inputs)):
        return tuple(example_inputs)
    raise TypeError("example_inputs must be a tensor or a tuple of tensors, got "
                    f"{type(example_inputs).__name__}")


def parse_hw(text: str, option: str = "--size") -> tuple[int, int]:
    """``'1080x2048'`` (HEIGHTxWIDTH, the order of a tensor's ``(..., H, W)``) -> ``(1080, 2048)``.

    The one size convention of the plugin: every ``--size``/``--memory-size`` option and the NNI
    trial command line use it.
    """
    m = re.fullmatch(r"\s*(\d+)\s*[xX*,]\s*(\d+)\s*", str(text))
    if not m or int(m.group(1)) == 0 or int(m.group(2)) == 0:
        raise ValueError(f"{option} must be HEIGHTxWIDTH with positive integers, e.g. 1080x2048; got {text!r}")
    return int(m.group(1)), int(m.group(2))


def format_hw(size: tuple[int, int]) -> str:
    """``(1080, 2048)`` -> ``'1080x2048'``, the inverse of :func:`parse_hw`."""
    return f"{int(size[0])}x{int(size[1])}"
