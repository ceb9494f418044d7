"""Pretrained weights shipped inside the package (``workloads/weights``), fp16 on disk.

Each file is named like a pretrained-weight cache entry (``<arch>-<hash of arch+key>.pt``, see
``workloads.pretrained.pretrained``), so a shipped file is found by the same key that would train it.
``manifest.json`` records, per file, the arch, the training key, the command that produced it and
the PSNR it reached on the held-out photos (checked by the tests).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..atomic import write_text_atomic

__all__ = ["SHIPPED_DIR", "MANIFEST", "shipped_file", "load_state", "save_fp16", "read_manifest",
           "record", "update_manifest"]

SHIPPED_DIR = Path(__file__).resolve().parent / "weights"
MANIFEST = "manifest.json"


def shipped_file(filename: str, folder: str | Path | None = None) -> Path | None:
    """The shipped weights file ``filename`` (in ``folder``, default the package's), or None."""
    path = Path(folder or SHIPPED_DIR) / filename
    return path if path.is_file() else None


def load_state(model: nn.Module, path: str | Path) -> nn.Module:
    """Load a (possibly fp16) state_dict into ``model``, keeping the model's own dtypes."""
    state = torch.load(path, map_location="cpu", weights_only=True)
    own = model.state_dict()
    model.load_state_dict({k: v.to(own[k].dtype) if k in own else v for k, v in state.items()})
    return model


def save_fp16(model: nn.Module, path: str | Path) -> Path:
    """Save ``model``'s state_dict with floating tensors in fp16 (half the bytes of fp32)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().half() if v.is_floating_point() else v for k, v in model.state_dict().items()}
    torch.save(state, path)
    return path


def read_manifest(folder: str | Path | None = None) -> dict[str, Any]:
    """``{filename: entry}`` of the shipped weights (empty when there is no manifest)."""
    path = Path(folder or SHIPPED_DIR) / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else {}


def record(folder: str | Path, filename: str, entry: dict[str, Any]) -> None:
    """Add or replace ``filename``'s entry in ``folder``'s manifest."""
    update_manifest(folder, {filename: entry})


def update_manifest(folder: str | Path, entries: dict[str, dict[str, Any]], drop: list[str] = ()) -> None:
    """Add or replace ``entries`` and remove the ``drop`` names in ``folder``'s manifest, in one atomic
    write (the weight files themselves are the caller's)."""
    manifest = read_manifest(folder)
    manifest.update(entries)
    for name in drop:
        manifest.pop(name, None)
    write_text_atomic(Path(folder) / MANIFEST, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
