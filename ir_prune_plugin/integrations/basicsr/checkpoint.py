"""Checkpoints that carry the pruned architecture next to BasicSR's weights.

``net_g_<iter>.pth`` keeps BasicSR's layout (``params`` / ``params_ema`` state dicts, so BasicSR
tools still read the weights) plus an ``irprune`` entry of plain containers (method, phase,
pruning block, statistics, the architecture file name). The architecture itself is written by
:func:`ir_prune_plugin.io.save_pruned` beside it as ``net_g_<iter>.arch.pth``. Everything loads
with ``torch.load(..., weights_only=True)``.
"""
from __future__ import annotations

import os
from typing import Any

import torch
from torch import nn

from ...io import load_pruned, save_pruned

FORMAT_VERSION = 1
META_KEY = "irprune"


def arch_path(weights_path: str) -> str:
    """The architecture file that accompanies ``weights_path``."""
    root, _ = os.path.splitext(weights_path)
    return root + ".arch.pth"


def save_checkpoint(path: str, nets: dict[str, nn.Module], meta: dict[str, Any]) -> None:
    """Write ``{param_key: state_dict, ..., 'irprune': meta}`` and the architecture of the first net."""

    first = next(iter(nets.values()))
    apath = arch_path(path)
    save_pruned(first, apath)
    payload: dict[str, Any] = {k: {n: t.detach().cpu() for n, t in net.state_dict().items()}
                               for k, net in nets.items()}
    payload[META_KEY] = {**meta, "format": FORMAT_VERSION, "arch_file": os.path.basename(apath)}
    tmp = path + ".tmp"
    torch.save(payload, tmp)
    os.replace(tmp, path)


def read_checkpoint(path: str) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` or BasicSR (weights only, on CPU)."""
    if not os.path.isfile(path):
        raise ValueError(f"checkpoint {path!r} does not exist; check path.pretrain_network_g / resume_state")
    return torch.load(path, map_location="cpu", weights_only=True)


def meta_of(ckpt: dict[str, Any]) -> dict[str, Any] | None:
    """The ``irprune`` entry of a loaded checkpoint, or ``None`` for a plain BasicSR one."""
    meta = ckpt.get(META_KEY)
    return dict(meta) if isinstance(meta, dict) else None


def build_from_checkpoint(path: str, ckpt: dict[str, Any], param_key: str) -> nn.Module:
    """Rebuild the (pruned) network of ``path`` and load its ``param_key`` weights (strictly)."""

    meta = meta_of(ckpt)
    if meta is None:
        raise ValueError(f"{path!r} carries no pruned architecture (no '{META_KEY}' entry)")
    apath = os.path.join(os.path.dirname(path), meta["arch_file"])
    if not os.path.isfile(apath):
        raise ValueError(f"architecture file {apath!r} of checkpoint {path!r} is missing; "
                         "copy it together with the .pth")
    net = load_pruned(apath)
    key = param_key if param_key in ckpt else "params"
    net.load_state_dict(ckpt[key], strict=True)
    return net
