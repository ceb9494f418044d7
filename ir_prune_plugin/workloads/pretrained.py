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
from .shipped import load_state, shipped_file

__all__ = ["cache_key", "default_cache_dir", "have_weights", "pretrained", "weights_name"]

log = logging.getLogger(__name__)


def default_cache_dir() -> Path:
    """Where pretrained weights are cached (``IRPRUNE_CACHE`` overrides)."""
    return Path(os.environ.get("IRPRUNE_CACHE", Path.home() / ".cache" / "ir-prune-plugin" / "weights"))


def cache_key(spec: dict[str, Any]) -> str:
    """A short stable hash of a JSON-serialisable config."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def weights_name(arch: dict[str, Any], key: dict[str, Any]) -> str:
    """File name of the weights of ``arch`` trained as ``key``: ``<arch type>-<hash of arch+key>.pt``."""
    return f"{arch['type']}-{cache_key({'arch': arch, **key})}.pt"


def have_weights(filename: str, cache_dir: str | Path) -> bool:
    """Whether :func:`pretrained` would load ``filename`` (shipped, or in ``cache_dir``) rather than train."""
    return shipped_file(filename) is not None or (Path(cache_dir) / filename).exists()


def pretrained(arch: dict[str, Any], train: Callable[[nn.Module], None], cache_dir: str | Path,
               key: dict[str, Any], *, shipped: bool = True) -> nn.Module:
    """Build ``arch`` and train it with ``train(model)``, or load existing weights for ``key``.

    Weights shipped in the package (``workloads/weights``, made by ``irprune pretrain``) come
    first (unless ``shipped=False``), then the cache file ``<cache_dir>/<weights_name(arch, key)>``
    (a plain state_dict).
    """

    spec = dict(arch)
    name = spec.pop("type")
    filename = weights_name(arch, key)
    path = Path(cache_dir) / filename
    model = build_arch(name, **spec)
    packaged = shipped_file(filename) if shipped else None
    if packaged is not None:
        log.info("using shipped pretrained weights %s", packaged.name)
        return load_state(model, packaged).eval()
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
