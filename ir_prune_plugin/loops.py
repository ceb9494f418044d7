"""Minimal training and evaluation loops used by the demo, studies and examples.

They are conveniences, not a framework: users with their own loop call the pruners' hooks
(`regularization()`, `step()`) themselves. PSNR/SSIM come from ``basicsr.metrics``.
"""
from __future__ import annotations

import itertools
import logging
from typing import Any, Callable, Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from .inputs import primary_output
from .compat import apply_basicsr_shims

log = logging.getLogger(__name__)


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


def fit(model: nn.Module, data: Dataset | Iterable, steps: int, *, lr: float = 1e-3, batch_size: int = 8,
        param_groups: list[dict] | None = None, cosine: bool = True,
        extra_loss: Callable[[], torch.Tensor] | None = None,
        after_step: Callable[[int], None] | None = None,
        seed: int = 0, progress: bool = True, desc: str = "train",
        clip_grad_norm: float | None = None) -> list[float]:
    """Train ``model`` with L1 loss and Adam for ``steps`` iterations; returns the L1 history.

    ``data`` is a paired dataset ({'lq','gt'} items) or an iterable of batches ((x, y) pairs or
    dicts). A model returning a tuple or dict is scored on its first tensor. ``param_groups`` (default: every trainable parameter at ``lr``) go to Adam; with
    ``cosine`` the rate decays to lr/10. ``extra_loss()`` is added to the task loss (e.g. a
    pruner's regularisation), ``after_step(i)`` runs after each optimizer step.
    ``clip_grad_norm`` clips the global gradient norm before each step (one spike of the gradient
    otherwise throws Adam far off: the He-initialised SID U-Net x0.625 collapsed to the identity).
    """
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be an int >= 0, got {steps!r}")
    if clip_grad_norm is not None and not (isinstance(clip_grad_norm, (int, float)) and clip_grad_norm > 0):
        raise ValueError(f"clip_grad_norm must be None or a positive number, got {clip_grad_norm!r}")
    device = next(model.parameters()).device
    if param_groups is None:
        param_groups = [{"params": [p for p in model.parameters() if p.requires_grad], "lr": lr}]
    opt = torch.optim.Adam(param_groups, lr=lr)
    sched = (torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1), eta_min=lr * 0.1)
             if cosine else None)
    was_training = model.training
    model.train()
    losses: list[float] = []
    bar = tqdm(itertools.islice(batches(data, batch_size, seed), steps), total=steps,
               desc=desc, disable=not progress, leave=False)
    for i, (x, y) in enumerate(bar):
        loss = F.l1_loss(primary_output(model(x.to(device))), y.to(device))  # a tuple/dict: its first tensor
        total = loss + extra_loss() if extra_loss is not None else loss
        opt.zero_grad(set_to_none=True)
        total.backward()
        if clip_grad_norm is not None:
            torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], clip_grad_norm)
        opt.step()
        if sched is not None:
            sched.step()
        if after_step is not None:
            after_step(i)
        losses.append(float(loss.detach()))
        if i % 10 == 0:
            bar.set_postfix(l1=f"{losses[-1]:.4f}")
    model.train(was_training)
    return losses


def _to_img(t: torch.Tensor):
    from basicsr.utils import tensor2img  # basicsr: heavy, imported on first use

    return tensor2img(t.detach().cpu(), rgb2bgr=True)


@torch.no_grad()
def evaluate(model: nn.Module | None, dataset: Dataset, *, crop_border: int = 0,
             y_channel: bool = False) -> dict[str, float]:
    """Mean PSNR/SSIM (``basicsr.metrics``) of ``model`` on a paired dataset.

    ``model=None`` scores the degraded input itself (e.g. the noisy image vs clean).
    """
    apply_basicsr_shims()
    from basicsr.metrics import calculate_psnr, calculate_ssim  # basicsr: heavy, imported on first use

    was_training = model.training if model is not None else False
    if model is not None:
        model.eval()
    device = next(model.parameters()).device if model is not None else torch.device("cpu")
    psnrs, ssims = [], []
    try:
        for i in range(len(dataset)):
            item = dataset[i]
            lq = item["lq"].unsqueeze(0).to(device)
            if model is None:
                if lq.shape != item["gt"].unsqueeze(0).shape:
                    lq = F.interpolate(lq, size=item["gt"].shape[-2:], mode="bicubic", align_corners=False)
                out = lq
            else:
                out = primary_output(model(lq))
            sr, gt = _to_img(out), _to_img(item["gt"].unsqueeze(0))
            psnrs.append(calculate_psnr(sr, gt, crop_border=crop_border, test_y_channel=y_channel))
            ssims.append(calculate_ssim(sr, gt, crop_border=crop_border, test_y_channel=y_channel))
    finally:
        if model is not None:
            model.train(was_training)
    return {"psnr": float(sum(psnrs) / len(psnrs)), "ssim": float(sum(ssims) / len(ssims))}
