"""Combined pruning (in neither paper): MOSP to a peak-memory budget, then SLS to a MACs budget.

MOSP removes channels in multiples of M so that every conv's reduction size stays divisible by
M, which is what makes the narrowed layers eligible for N:M afterwards. The result is saved
with ``save_pruned`` and reloaded, and both budgets are checked on the reloaded model.
"""
from __future__ import annotations

import logging
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from ..budgets import parse_macs_budget
from ..channels.mosp import MOSPOptions, MOSPPruner
from ..io import load_pruned, save_pruned
from ..loops import evaluate, fit
from ..macs import count_params, kept_macs, layer_macs
from ..memory import estimate_peak_memory, measure_peak_memory
from ..sparsity import FitOptions, SLSOptions, SLSPruner, check_nm

log = logging.getLogger(__name__)


def _peak(model: nn.Module, shape: tuple[int, ...]) -> int:
    return int(estimate_peak_memory(model, torch.empty(shape, device="meta")).peak_bytes)


def _macs(model: nn.Module, shape: tuple[int, ...]) -> float:
    """MACs at ``shape`` with every layer of the model's N:M plan counted at N/M."""
    meta = layer_macs(model, torch.zeros(shape))
    return kept_macs(meta, getattr(model, "irprune_nm_plan", {}))


def combined_prune(dense: nn.Module, train: Dataset, val: Dataset, out: Path, *, memory_budget: float,
                   macs_budget: float, M: int, steps: int, memory_size: tuple[int, int],
                   measure_size: tuple[int, int], batch_size: int, seed: int, progress: bool) -> dict:
    """MOSP then SLS on ``dense``; returns a result row with measured budgets (also saves the model)."""
    big = (1, 3, *memory_size)
    small = (1, 3, *measure_size)
    x = val[0]["lq"][None]
    dense_peak, dense_macs = _peak(dense, big), _macs(dense, small)
    opts = MOSPOptions(memory_input_size=big, outer_stride=4 * 2 ** 20, round_to=M, min_channels=M,
                       sensitivity_points=(1,), seed=seed)
    half = max(steps // 2, 1)
    mosp = MOSPPruner(dense, x, memory_budget, options=opts)
    narrowed = mosp.prune(progress=progress)
    fit(narrowed, train, half, lr=3e-4, batch_size=batch_size, seed=seed, progress=progress,
        desc="finetune MOSP part")
    # SLS's budget is a ratio of its eligible layers' MACs; convert the whole-model target into it.
    sls = SLSPruner(narrowed, torch.zeros(small), 0.5, M=M,
                    options=SLSOptions(search_steps=max(half // 2, 1), refresh_every=max(half // 4, 1)))
    target_total = macs_budget * dense_macs
    other = sls.macs()["model_dense"] - sls.macs()["prunable_dense"]
    ratio = (target_total - other) / sls.macs()["prunable_dense"]
    try:  # the budget >= 1/M rule, as everywhere
        ratio = parse_macs_budget(ratio, M, name="the N:M layers' MACs share")
    except ValueError as exc:
        raise ValueError(f"after MOSP, a MACs budget of {macs_budget} of the dense model needs the N:M layers "
                         f"at {ratio:.3f} of their MACs ({exc}); choose a different macs_budget") from None
    sls = SLSPruner(narrowed, torch.zeros(small), ratio, M=M,
                    options=SLSOptions(search_steps=max(half // 2, 1), refresh_every=max(half // 4, 1)))
    sls.fit(train, half, FitOptions(lr=2e-4, batch_size=batch_size, seed=seed, progress=progress))
    model = sls.finalize().eval()
    path = out / "combined_mosp_sls.pt"
    save_pruned(model, path)
    reloaded = load_pruned(path).eval()
    with torch.no_grad():
        same = bool(torch.allclose(reloaded(x), model(x), atol=1e-6))
    report = check_nm(reloaded)
    peak = _peak(reloaded, big)
    measured_small, est_small = measure_peak_memory(reloaded, torch.rand(small)), _peak(reloaded, small)
    macs = _macs(reloaded, small)
    q = evaluate(reloaded, val)
    return {
        "method": "MOSP+SLS (combined)", "budget": f"mem {memory_budget:g}, MACs {macs_budget:g}",
        "psnr": q["psnr"], "ssim": q["ssim"], "peak_mb_est": peak / 2 ** 20,
        "peak_mb_est_small": est_small / 2 ** 20, "peak_mb_measured_small": measured_small / 2 ** 20,
        "params": count_params(reloaded), "memory_ratio": peak / dense_peak, "macs_ratio": macs / dense_macs,
        "budget_met": bool(peak <= memory_budget * dense_peak and macs <= macs_budget * dense_macs * 1.0001),
        "reload_identical": same, "nm_layers": len(report.plan),
        "file": path.name,
    }
