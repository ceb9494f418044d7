"""Whole-model MACs and parameter counts, on the ``meta`` device (no real compute at 2K sizes)."""
from __future__ import annotations

import copy
from typing import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_params(model: nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_shape: Sequence[int]) -> int:
    """Dense multiply-accumulates of one forward at ``input_shape`` (PyTorch's FlopCounterMode / 2).

    Runs on a ``meta`` copy of the model, so a 2048x1080 input costs nothing. N:M sparsity is
    not reflected here (see ``ir_prune_plugin.sparsity`` for kept MACs).
    """
    if len(input_shape) < 3 or any(int(s) <= 0 for s in input_shape):
        raise ValueError(f"input_shape must be a positive (N, C, H, W)-like shape, got {tuple(input_shape)}")
    meta = copy.deepcopy(model).to("meta").eval()
    x = torch.empty(*input_shape, device="meta")
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        meta(x)
    return int(counter.get_total_flops() // 2)
