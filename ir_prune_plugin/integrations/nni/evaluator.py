"""An NNI ``TorchEvaluator`` for the plugin's paired restoration datasets (L1 loss, Adam)."""
from __future__ import annotations

import itertools
from typing import Any, Callable

import nni
import torch
import torch.nn.functional as F
from nni.compression.utils import TorchEvaluator
from torch import nn
from torch.utils.data import DataLoader, Dataset


def l1_training_step(batch: dict, model: nn.Module) -> torch.Tensor:
    """NNI training step: L1 between ``model(batch['lq'])`` and ``batch['gt']``."""
    device = next(model.parameters()).device
    return F.l1_loss(model(batch["lq"].to(device)), batch["gt"].to(device))


def _training_func(dataset: Dataset, batch_size: int, seed: int) -> Callable[..., None]:
    def training_func(model: nn.Module, optimizers: Any, training_step: Callable, lr_schedulers: Any = None,
                      max_steps: int | None = None, max_epochs: int | None = None) -> None:
        g = torch.Generator().manual_seed(seed)
        loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=g, drop_last=True)
        if max_steps is None:
            max_steps = len(loader) * (max_epochs or 1)
        opts = optimizers if isinstance(optimizers, (list, tuple)) else [optimizers]
        model.train()
        batches = itertools.chain.from_iterable(itertools.repeat(loader))
        for batch in itertools.islice(batches, max_steps):
            for opt in opts:
                opt.zero_grad(set_to_none=True)
            training_step(batch, model).backward()
            for opt in opts:
                opt.step()
            for sched in (lr_schedulers if isinstance(lr_schedulers, (list, tuple)) else [lr_schedulers]):
                if sched is not None:
                    sched.step()
        model.eval()
    return training_func


def task_evaluator(model: nn.Module, dataset: Dataset, *, lr: float = 1e-3, batch_size: int = 8,
                   seed: int = 0, evaluating_func: Callable[[nn.Module], Any] | None = None) -> TorchEvaluator:
    """A ``TorchEvaluator`` training ``model`` on a dataset of ``{'lq', 'gt'}`` dicts with L1 and Adam(lr)."""
    if not lr > 0:
        raise ValueError(f"lr must be > 0, got {lr!r}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size must be an int >= 1, got {batch_size!r}")
    if len(dataset) < batch_size:
        raise ValueError(f"dataset of {len(dataset)} items is smaller than batch_size={batch_size}")
    optimizer = nni.trace(torch.optim.Adam)(model.parameters(), lr=lr)
    return TorchEvaluator(_training_func(dataset, batch_size, seed), optimizer, l1_training_step,
                          evaluating_func=evaluating_func)
