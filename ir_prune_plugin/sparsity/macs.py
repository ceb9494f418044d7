"""MACs per prunable layer from real output sizes (forward hooks on one no-grad run)."""
from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from .._inputs import as_tuple
from .nm import is_prunable


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
    wanted = [n for n, m in modules.items() if is_prunable(m)] if names is None else list(names)
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



def kept_params(model: nn.Module, plan: dict[str, tuple[int, int]]) -> float:
    """N:M-effective parameters: an N:M layer of ``plan`` counts N/M of its weight, the rest in full.

    Search scores (parameters named ``*.scores``) are pruner state, not model parameters.
    """
    from .masks import original

    modules = dict(model.named_modules())
    total = sum(p.numel() for n, p in model.named_parameters() if not n.endswith(".scores"))
    pruned = sum(original(modules[k]).numel() * (1 - n / m) for k, (n, m) in plan.items() if k in modules)
    return float(total - pruned)
