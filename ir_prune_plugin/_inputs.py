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


def parse_wh(text: str, option: str = "--size") -> tuple[int, int]:
    """``'2048x1080'`` (width x height, as image sizes are written) -> ``(height, width)``."""
    m = re.fullmatch(r"\s*(\d+)\s*[xX*,]\s*(\d+)\s*", str(text))
    if not m or int(m.group(1)) == 0 or int(m.group(2)) == 0:
        raise ValueError(f"{option} must be WIDTHxHEIGHT with positive integers, e.g. 2048x1080; got {text!r}")
    return int(m.group(2)), int(m.group(1))
