"""Res-U-Net: the convolutional UNet baseline of the Uformer paper (dim = 32)."""
from __future__ import annotations

import torch
from torch import nn

from ..vocabulary import pad_to_multiple
from ._common import check_width


class ResConvBlock(nn.Module):
    """Two 3x3 conv + LeakyReLU, plus a 1x1 conv shortcut added to the output."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.Conv2d(cin, cout, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(cout, cout, 3, padding=1), nn.LeakyReLU(0.2))
        self.shortcut = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.block(x) + self.shortcut(x)


class ResUNet(nn.Module):
    """Five-level U-Net of residual blocks, strided 4x4 conv down, transposed conv up,
    concat skips, 3x3 output conv, input added back. ``width=1.0`` is dim 32 (~9.5M params)."""

    def __init__(self, in_ch: int = 3, out_ch: int = 3, width: float = 1.0) -> None:
        super().__init__()
        check_width(width)
        c = [max(1, round(32 * width * 2 ** i)) for i in range(5)]
        self.width = width
        self.block1, self.down1 = ResConvBlock(in_ch, c[0]), nn.Conv2d(c[0], c[0], 4, 2, 1)
        self.block2, self.down2 = ResConvBlock(c[0], c[1]), nn.Conv2d(c[1], c[1], 4, 2, 1)
        self.block3, self.down3 = ResConvBlock(c[1], c[2]), nn.Conv2d(c[2], c[2], 4, 2, 1)
        self.block4, self.down4 = ResConvBlock(c[2], c[3]), nn.Conv2d(c[3], c[3], 4, 2, 1)
        self.block5 = ResConvBlock(c[3], c[4])
        self.up4, self.block6 = nn.ConvTranspose2d(c[4], c[3], 2, 2), ResConvBlock(2 * c[3], c[3])
        self.up3, self.block7 = nn.ConvTranspose2d(c[3], c[2], 2, 2), ResConvBlock(2 * c[2], c[2])
        self.up2, self.block8 = nn.ConvTranspose2d(c[2], c[1], 2, 2), ResConvBlock(2 * c[1], c[1])
        self.up1, self.block9 = nn.ConvTranspose2d(c[1], c[0], 2, 2), ResConvBlock(2 * c[0], c[0])
        self.out = nn.Conv2d(c[0], out_ch, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        xp = pad_to_multiple(x, 16)
        e1 = self.block1(xp)
        e2 = self.block2(self.down1(e1))
        e3 = self.block3(self.down2(e2))
        e4 = self.block4(self.down3(e3))
        b = self.block5(self.down4(e4))
        d4 = self.block6(torch.cat([self.up4(b), e4], 1))
        d3 = self.block7(torch.cat([self.up3(d4), e3], 1))
        d2 = self.block8(torch.cat([self.up2(d3), e2], 1))
        d1 = self.block9(torch.cat([self.up1(d2), e1], 1))
        return self.out(d1)[..., :h, :w] + x
