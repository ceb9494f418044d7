"""Tiny third-party IR nets (spandrel, BasicSR) for the support matrix and the rule tests.

Each entry builds a fresh, randomly initialised net at a CPU-test width and gives the example
input size it runs at. The nets are the packages' own implementations, never copies.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

import torch
from torch import nn


def _spandrel(arch: str, module: str, cls: str, **kw: Any) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        m = importlib.import_module(f"spandrel.architectures.{arch}.__arch.{module}")
        return getattr(m, cls)(**kw)
    build.init_kwargs = kw  # type: ignore[attr-defined]  (for save_pruned(init_kwargs=...))
    return build


def _extra(arch: str, module: str, cls: str, **kw: Any) -> Callable[[], nn.Module]:
    """A net from ``spandrel_extra_arches`` (the non-commercial-licence archs spandrel splits off)."""
    def build() -> nn.Module:
        m = importlib.import_module(f"spandrel_extra_arches.architectures.{arch}.__arch.{module}")
        return getattr(m, cls)(**kw)
    build.init_kwargs = kw  # type: ignore[attr-defined]
    return build


def _basicsr(module: str, cls: str, **kw: Any) -> Callable[[], nn.Module]:
    def build() -> nn.Module:
        from ir_prune_plugin.compat import apply_basicsr_shims
        apply_basicsr_shims()
        return getattr(importlib.import_module(f"basicsr.archs.{module}"), cls)(**kw)
    build.init_kwargs = kw  # type: ignore[attr-defined]
    return build


_RGB = {"num_in_ch": 3, "num_out_ch": 3}
#: name -> (builder, example input size (N, C, H, W))
NETS: dict[str, tuple[Callable[[], nn.Module], tuple[int, int, int, int]]] = {
    "edsr": (_basicsr("edsr_arch", "EDSR", **_RGB, num_feat=16, num_block=2, upscale=2), (1, 3, 16, 16)),
    "rcan": (_basicsr("rcan_arch", "RCAN", **_RGB, num_feat=16, num_group=2, num_block=2, squeeze_factor=4,
                      upscale=2), (1, 3, 16, 16)),
    "rrdbnet": (_basicsr("rrdbnet_arch", "RRDBNet", **_RGB, num_feat=16, num_block=2, num_grow_ch=8, scale=2),
                (1, 3, 16, 16)),
    "msrresnet": (_basicsr("srresnet_arch", "MSRResNet", **_RGB, num_feat=16, num_block=2, upscale=2), (1, 3, 16, 16)),
    "drunet": (_spandrel("DRUNet", "network_unet", "DRUNet", in_nc=3, out_nc=3, nc=[8, 16, 32, 64], nb=1),
               (1, 3, 32, 32)),
    "nafnet": (_spandrel("NAFNet", "NAFNet_arch", "NAFNet", img_channel=3, width=8, middle_blk_num=1,
                         enc_blk_nums=[1, 1], dec_blk_nums=[1, 1]), (1, 3, 32, 32)),
    "safmn": (_spandrel("SAFMN", "safmn", "SAFMN", dim=16, n_blocks=2, ffn_scale=2.0, upscaling_factor=2),
              (1, 3, 32, 32)),
    "span": (_spandrel("SPAN", "span", "SPAN", num_in_ch=3, num_out_ch=3, feature_channels=16, upscale=2),
             (1, 3, 16, 16)),
    "swinir": (_spandrel("SwinIR", "SwinIR", "SwinIR", img_size=16, in_chans=3, embed_dim=12, depths=[2],
                         num_heads=[2], window_size=4, mlp_ratio=2.0, upscale=2, upsampler="pixelshuffle",
                         drop_path_rate=0.0), (1, 3, 16, 16)),
    "hat": (_spandrel("HAT", "HAT", "HAT", img_size=16, in_chans=3, embed_dim=12, depths=[2], num_heads=[2],
                      window_size=4, compress_ratio=3, squeeze_factor=4, mlp_ratio=2.0, upscale=2,
                      drop_path_rate=0.0, num_feat=16), (1, 3, 16, 16)),
    "uformer": (_spandrel("Uformer", "Uformer", "Uformer", img_size=32, embed_dim=8, depths=[1] * 9,
                          num_heads=[1, 1, 2, 2, 2, 2, 2, 1, 1], win_size=4, drop_path_rate=0.0), (1, 3, 32, 32)),
    "scunet": (_spandrel("SCUNet", "SCUNet", "SCUNet", in_nc=3, config=[1] * 7, dim=64, input_resolution=64),
               (1, 3, 64, 64)),
    "retinexformer": (_spandrel("RetinexFormer", "retinexformer_arch", "RetinexFormer", n_feat=8, stage=1,
                                num_blocks=[1, 1, 1]), (1, 3, 32, 32)),
    "plksr": (_spandrel("PLKSR", "PLKSR", "PLKSR", dim=16, n_blocks=2, upscaling_factor=2, kernel_size=7),
              (1, 3, 16, 16)),
    "restormer": (_extra("Restormer", "restormer_arch", "Restormer", dim=8, num_blocks=[1, 1, 1, 1],
                         num_refinement_blocks=1, heads=[1, 1, 2, 2], ffn_expansion_factor=2.0), (1, 3, 16, 16)),
    "omnisr": (_spandrel("OmniSR", "OmniSR", "OmniSR", num_feat=16, block_num=1, window_size=4, res_num=1,
                         up_scale=2), (1, 3, 16, 16)),
    "ditn": (_spandrel("DITN", "DITN_Real", "DITN_Real", dim=12, ITL_blocks=1, SAL_blocks=1, UFONE_blocks=1,
                       patch_size=4, upscale=2), (1, 3, 16, 16)),
}


def build(name: str) -> tuple[nn.Module, torch.Tensor]:
    """A fresh net and a random example input for it."""
    builder, size = NETS[name]
    torch.manual_seed(0)
    return builder(), torch.rand(size)
