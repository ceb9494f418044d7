"""Atomic file writes: a crash mid-write keeps the previous file, never a truncated one."""
from __future__ import annotations

import os
from pathlib import Path

__all__ = ["write_text_atomic"]


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` to ``path`` through a per-process temporary file and ``os.replace``."""
    path = Path(path)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")   # per process: concurrent writers may race
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
