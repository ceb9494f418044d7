"""The MOSP compactor: a 1x1 convolution on a skip connection, identity at insertion."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


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
        return self.weight.shape[1]

    @property
    def out_channels(self) -> int:
        return self.weight.shape[0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight)

    def extra_repr(self) -> str:
        return f"{self.in_channels} -> {self.out_channels}"
