"""The tiny U-Nets, MOSP options and state comparisons that the MOSP and bad-input tests share.

Not a test module (no ``test_`` prefix): the test files import it as ``tiny_unets``.
"""
from __future__ import annotations

import torch
from torch import nn

from ir_prune_plugin.archs import build_arch
from ir_prune_plugin.channels.mosp import MOSPOptions

#: the profile size of the MOSP tests (small enough for a CPU, large enough for several levels)
SIZE = (1, 3, 32, 48)


def unet(kind: str = "sid_unet", width: float = 0.125, seed: int = 0) -> nn.Module:
    """A seeded reference U-Net in eval mode whose 3-channel head is not zero (a zero-initialised head
    makes every output equal and would hide any change)."""
    torch.manual_seed(seed)
    model = build_arch(kind, width=width)
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and m.out_channels == 3:
            nn.init.normal_(m.weight, std=0.2)
    return model.eval()


def mosp_options(size: tuple[int, ...] = SIZE, **kw) -> MOSPOptions:
    """MOSP options for the tiny nets: no compactors, 1-channel floors, a coarse outer search; ``kw`` override."""
    return MOSPOptions(**{**dict(memory_input_size=size, compactors=False, min_channels=1,
                                 outer_stride=2 ** 13), **kw})


def state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A detached copy of ``model``'s state dict."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    """Whether two state dicts hold the same keys, shapes and values."""
    return a.keys() == b.keys() and all(a[k].shape == b[k].shape and torch.equal(a[k], b[k]) for k in a)
