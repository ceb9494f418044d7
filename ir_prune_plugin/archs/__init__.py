"""Reference image-restoration networks and a name -> builder registry.

``build_arch(name, **kwargs)`` builds our own nets (``sid_unet``, ``res_unet``) and BasicSR's
(``edsr``, ``msrresnet``, ``rcan``, ``rrdbnet``, ``srvgg``); the returned module remembers its
spec (``model.irprune_arch``) so pruned copies can be saved and rebuilt (see ``save_pruned``).
"""
from __future__ import annotations

from ._registry import ARCHS, arch_spec, build_arch, list_archs
from .res_unet import ResConvBlock, ResUNet
from .sid_unet import SIDUNet

__all__ = ["ARCHS", "ResConvBlock", "ResUNet", "SIDUNet", "arch_spec", "build_arch", "list_archs"]
