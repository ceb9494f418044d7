"""Counting MACs and parameters: whole models on the ``meta`` device (no real compute at 2K sizes),
per prunable layer from real output sizes (forward hooks), and what an N:M plan keeps."""
from __future__ import annotations

import copy
from typing import Any, Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from .vocabulary import as_tuple, is_nm_prunable

__all__ = ["count_macs", "count_params", "kept_macs", "layer_macs", "total_macs"]


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


def _layer_macs(m: nn.Module, inp: torch.Tensor, out: torch.Tensor) -> int:
    w = m.weight
    if isinstance(m, nn.ConvTranspose2d):
        # every input pixel scatters a (Cout/g, kh, kw) kernel
        return inp.numel() * w.shape[1] * w.shape[2] * w.shape[3]
    if isinstance(m, nn.Linear):
        return out.numel() * w.shape[1]
    return out.numel() * w.shape[1] * w.shape[2] * w.shape[3]  # Conv2d / Compactor


def layer_macs(model: nn.Module, example_inputs: Any, names: Sequence[str] | None = None) -> dict[str, int]:
    """Dense MACs of each prunable layer (or of ``names``) for one forward of ``example_inputs``.

    Keys come in execution order (first call); layers that never run are absent. Counts multiply-accumulates of the layer's weight only (bias and activations excluded), per
    call, summed when a layer runs several times. The model's train/eval mode is restored.
    """
    modules = dict(model.named_modules())
    wanted = [n for n, m in modules.items() if is_nm_prunable(m)] if names is None else list(names)
    counts: dict[str, int] = {}  # filled in execution order
    hooks = []
    for n in wanted:
        def hook(m: nn.Module, args: tuple, out: torch.Tensor, n: str = n) -> None:
            counts[n] = counts.get(n, 0) + _layer_macs(m, args[0], out)
        hooks.append(modules[n].register_forward_hook(hook))
    was_training = model.training
    try:
        model.eval()
        with torch.no_grad():
            model(*as_tuple(example_inputs))
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    return counts


def kept_macs(dense: dict[str, int], plan: dict[str, tuple[int, int]]) -> float:
    """Effective MACs when the layers of ``plan`` keep N of every M weights."""
    return float(sum(v * (plan[n][0] / plan[n][1] if n in plan else 1.0) for n, v in dense.items()))



def total_macs(model: nn.Module, example_inputs: Any) -> float:
    """MACs of every Conv/ConvTranspose/Linear/Compactor weight for one forward."""
    return float(sum(layer_macs(model, example_inputs).values()))
