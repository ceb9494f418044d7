"""Minimal training and evaluation loops used by the demo, studies and examples.

They are conveniences, not a framework: users with their own loop call the pruners' hooks
(`regularization()`, `step()`) themselves. PSNR/SSIM come from ``basicsr.metrics``.
"""
from __future__ import annotations

import itertools
import logging
from typing import Callable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

log = logging.getLogger(__name__)


def _batches(dataset: Dataset, batch_size: int, seed: int) -> Iterator[dict]:
    g = torch.Generator().manual_seed(seed)
    loader = DataLoader(dataset, batch_size=batch_size, shuffle=True, generator=g, drop_last=True)
    if len(loader) == 0:
        raise ValueError(f"dataset of {len(dataset)} items is smaller than batch_size={batch_size}")
    while True:
        yield from loader


def fit(model: nn.Module, dataset: Dataset, steps: int, *, lr: float = 1e-3, batch_size: int = 8,
        extra_loss: Callable[[], torch.Tensor] | None = None,
        after_step: Callable[[int], None] | None = None,
        grad_hook: Callable[[], None] | None = None,
        seed: int = 0, progress: bool = True, desc: str = "train") -> list[float]:
    """Train ``model`` with L1 loss and Adam for ``steps`` iterations; returns the loss history.

    ``extra_loss()`` is added to the task loss (e.g. a pruner's regularisation), ``grad_hook()``
    runs between backward and the optimizer step (e.g. SR-STE), ``after_step(i)`` after it.
    """
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    device = next(model.parameters()).device
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(steps, 1), eta_min=lr * 0.1)
    model.train()
    losses: list[float] = []
    bar = tqdm(itertools.islice(_batches(dataset, batch_size, seed), steps), total=steps,
               desc=desc, disable=not progress, leave=False)
    for i, batch in enumerate(bar):
        lq, gt = batch["lq"].to(device), batch["gt"].to(device)
        loss = F.l1_loss(model(lq), gt)
        total = loss + extra_loss() if extra_loss is not None else loss
        opt.zero_grad(set_to_none=True)
        total.backward()
        if grad_hook is not None:
            grad_hook()
        opt.step()
        sched.step()
        if after_step is not None:
            after_step(i)
        losses.append(float(loss.detach()))
        if i % 10 == 0:
            bar.set_postfix(l1=f"{losses[-1]:.4f}")
    model.eval()
    return losses


def _to_img(t: torch.Tensor):
    from basicsr.utils import tensor2img

    return tensor2img(t.detach().cpu(), rgb2bgr=True)


@torch.no_grad()
def evaluate(model: nn.Module | None, dataset: Dataset, *, crop_border: int = 0,
             y_channel: bool = False) -> dict[str, float]:
    """Mean PSNR/SSIM (``basicsr.metrics``) of ``model`` on a paired dataset.

    ``model=None`` scores the degraded input itself (e.g. the noisy image vs clean).
    """
    from .compat import apply_basicsr_shims

    apply_basicsr_shims()
    from basicsr.metrics import calculate_psnr, calculate_ssim

    was_training = model.training if model is not None else False
    if model is not None:
        model.eval()
    device = next(model.parameters()).device if model is not None else torch.device("cpu")
    psnrs, ssims = [], []
    for i in range(len(dataset)):
        item = dataset[i]
        lq = item["lq"].unsqueeze(0).to(device)
        if model is None:
            if lq.shape != item["gt"].unsqueeze(0).shape:
                lq = F.interpolate(lq, size=item["gt"].shape[-2:], mode="bicubic", align_corners=False)
            out = lq
        else:
            out = model(lq)
        sr, gt = _to_img(out), _to_img(item["gt"].unsqueeze(0))
        psnrs.append(calculate_psnr(sr, gt, crop_border=crop_border, test_y_channel=y_channel))
        ssims.append(calculate_ssim(sr, gt, crop_border=crop_border, test_y_channel=y_channel))
    if model is not None and was_training:
        model.train()
    return {"psnr": float(sum(psnrs) / len(psnrs)), "ssim": float(sum(ssims) / len(ssims))}
