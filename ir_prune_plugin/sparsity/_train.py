"""A small L1 training loop shared by the N:M pruners' ``fit`` (param groups, tqdm, seeded)."""
from __future__ import annotations

import itertools
from typing import Any, Callable, Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm


def _pair(batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
    if isinstance(batch, dict):
        return batch["lq"], batch["gt"]
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        return batch[0], batch[1]
    raise TypeError("batches must be {'lq': x, 'gt': y} dicts or (x, y) pairs, "
                    f"got {type(batch).__name__}")


def batches(data: Dataset | Iterable, batch_size: int, seed: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Endless (x, y) batches from a map-style dataset (shuffled, seeded) or an iterable of batches."""
    if hasattr(data, "__getitem__") and hasattr(data, "__len__") and not isinstance(data, (list, tuple)):
        g = torch.Generator().manual_seed(seed)
        loader = DataLoader(data, batch_size=batch_size, shuffle=True, generator=g, drop_last=True)
        if len(loader) == 0:
            raise ValueError(f"dataset of {len(data)} items is smaller than batch_size={batch_size}")
        source: Iterable = loader
    else:
        source = list(data)
        if not source:
            raise ValueError("no training batches given")
    while True:
        for b in source:
            yield _pair(b)


def train(model: nn.Module, data: Dataset | Iterable, steps: int, param_groups: list[dict], *,
          batch_size: int = 8, seed: int = 0, extra_loss: Callable[[], torch.Tensor] | None = None,
          after_step: Callable[[], None] | None = None, progress: bool = True, desc: str = "train") -> list[float]:
    """Adam on ``param_groups`` with L1 loss (+ ``extra_loss()``) for ``steps``; returns L1 history."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    device = next(model.parameters()).device
    opt = torch.optim.Adam(param_groups)
    model.train()
    hist: list[float] = []
    it = itertools.islice(batches(data, batch_size, seed), steps)
    bar = tqdm(it, total=steps, desc=desc, disable=not progress, leave=False)
    for x, y in bar:
        loss = F.l1_loss(model(x.to(device)), y.to(device))
        total = loss + extra_loss() if extra_loss is not None else loss
        opt.zero_grad(set_to_none=True)
        total.backward()
        opt.step()
        if after_step is not None:
            after_step()
        hist.append(float(loss.detach()))
    model.eval()
    return hist
