"""Pretrained dense models for the demo and studies, cached on disk keyed by their config."""
from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..archs import build_arch

log = logging.getLogger(__name__)


def cache_key(spec: dict[str, Any]) -> str:
    """A short stable hash of a JSON-serialisable config."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def pretrained(arch: dict[str, Any], train: Callable[[nn.Module], None], cache_dir: str | Path,
               key: dict[str, Any]) -> nn.Module:
    """Build ``arch`` and train it with ``train(model)``, or load the cached weights for ``key``.

    The cache file is ``<cache_dir>/<arch type>-<hash of arch+key>.pt`` (a plain state_dict).
    """
    spec = dict(arch)
    name = spec.pop("type")
    path = Path(cache_dir) / f"{name}-{cache_key({'arch': arch, **key})}.pt"
    model = build_arch(name, **spec)
    if path.exists():
        log.info("reusing pretrained weights %s", path)
        model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
        model.eval()
        return model
    train(model)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # per process: concurrent NNI trials may race
    torch.save(model.state_dict(), tmp)
    tmp.replace(path)  # atomic: a crash never leaves a half-written cache entry
    model.eval()
    return model
