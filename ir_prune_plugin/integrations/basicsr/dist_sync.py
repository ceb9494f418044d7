"""Tiny helpers so a pruning decision is made once (rank 0) and applied identically everywhere."""
from __future__ import annotations

from typing import Any

import torch.distributed as dist


def is_dist() -> bool:
    """True inside an initialised process group with more than one rank."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``obj`` as held by rank ``src`` (picklable objects; identity when not distributed)."""
    if not is_dist():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def barrier() -> None:
    """Wait for every rank (no-op when not distributed)."""
    if is_dist():
        dist.barrier()
