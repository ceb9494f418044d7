"""The plugin's shared vocabulary, the leaf every other module imports (it imports none of them).

* the layer types the pruners act on (:data:`CHANNEL_PRUNABLE_TYPES` for channel pruning,
  :data:`NM_PRUNABLE_TYPES` for N:M sparsity) and the :class:`Compactor` layer itself;
* the names of the attributes the plugin stores on a model (arch spec, compactor sites, N:M plan);
* byte units and the one formatter of sizes in reports (:func:`format_bytes`, MiB);
* normalising user arguments: example inputs (:func:`as_tuple`) and ``HxW`` sizes (:func:`parse_hw`, :func:`format_hw`);
* :func:`pad_to_multiple`, the shape-dependent padding tracers must keep opaque.
"""
from __future__ import annotations

import re
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "CHANNEL_PRUNABLE_TYPES", "Compactor", "MIB", "NM_PRUNABLE_TYPES", "PLAN_ATTR", "SITES_ATTR",
    "SPEC_ATTR", "TokenCompactor", "as_tuple", "channel_dim", "format_bytes", "format_hw", "in_channels",
    "is_nm_prunable", "out_channels", "pad_to_multiple", "parse_hw",
]

# --------------------------------------------------------------------------- model attributes
SPEC_ATTR = "irprune_arch"          #: ``{'type': arch name, **kwargs}`` of a registered arch
SITES_ATTR = "irprune_compactors"   #: compactor sites (``SkipSite`` dicts) for replay on load
PLAN_ATTR = "irprune_nm_plan"       #: the N:M plan ``{layer: (N, M)}`` of a sparsified model


# --------------------------------------------------------------------------- layers
class Compactor(nn.Module):
    """1x1 conv (no bias) initialised to the identity; its output channels prune on their own.

    ``weight`` has shape ``(out_channels, in_channels, 1, 1)``; at insertion
    ``out_channels == in_channels == channels`` and the output equals the input.
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        if isinstance(channels, bool) or not isinstance(channels, int) or channels <= 0:
            raise ValueError(f"channels must be a positive int, got {channels!r}")
        self.weight = nn.Parameter(torch.eye(channels).reshape(channels, channels, 1, 1))

    @property
    def in_channels(self) -> int:
        """Channels of the skip tensor it reads."""
        return self.weight.shape[1]

    @property
    def out_channels(self) -> int:
        """Channels it passes on (fewer once pruned)."""
        return self.weight.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight)

    def extra_repr(self) -> str:
        return f"{self.in_channels} -> {self.out_channels}"


class TokenCompactor(Compactor):
    """A :class:`Compactor` on a channels-last token tensor ``(B, L, C)`` (Uformer's skips): the
    same identity weight, applied to the last dimension (``F.linear``)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # with a (zero, constant) bias ``linear`` runs as ``addmm``: graph tools then read it as a
        # Linear on tokens, not as a product of two activations (``mm``) that mixes channels
        return F.linear(x, self.weight.flatten(1), self.weight.new_zeros(self.out_channels))


#: layers whose output channels channel pruning (MOSP, the memory model) can shrink
CHANNEL_PRUNABLE_TYPES: tuple[type[nn.Module], ...] = (
    nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d,
    nn.Linear, Compactor)
#: layers whose weight carries an N:M reduction axis (SLS and the N:M baselines)
NM_PRUNABLE_TYPES: tuple[type[nn.Module], ...] = (nn.Conv2d, nn.ConvTranspose2d, nn.Linear, Compactor)


def is_nm_prunable(module: nn.Module) -> bool:
    """True for the layer types whose weight carries an N:M reduction axis."""
    return isinstance(module, NM_PRUNABLE_TYPES)


def channel_dim(module: nn.Module) -> int:
    """The dimension of a prunable layer's output that holds its channels (features)."""
    return -1 if isinstance(module, (nn.Linear, TokenCompactor)) else 1


def out_channels(module: nn.Module) -> int:
    """Number of output channels (features) of a prunable layer."""
    return int(module.out_features if isinstance(module, nn.Linear) else module.out_channels)


def in_channels(module: nn.Module) -> int:
    """Number of input channels (features) of a prunable layer."""
    return int(module.in_features if isinstance(module, nn.Linear) else module.in_channels)


# --------------------------------------------------------------------------- bytes
MIB = 2 ** 20  #: one mebibyte, the unit of every size the plugin reports


def format_bytes(nbytes: float) -> str:
    """Human-readable size in MiB (``'12.50 MiB'``), the unit used in reports."""
    return f"{nbytes / MIB:.2f} MiB"


# --------------------------------------------------------------------------- user arguments
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


def pad_to_multiple(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """Replicate-pad H and W at the bottom/right up to a multiple (no-op when already aligned)."""
    h, w = x.shape[-2:]
    ph, pw = (-h) % multiple, (-w) % multiple
    if ph == 0 and pw == 0:
        return x
    return F.pad(x, (0, pw, 0, ph), mode="replicate")
