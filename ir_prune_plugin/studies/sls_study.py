"""SLS vs one-shot N:M vs SR-STE vs L1 filter pruning at equal MACs on the embedded x2 SR task.

A small BasicSR EDSR is pretrained (weights cached by config), then every method prunes a copy
to the same MACs and finetunes it for the same number of steps; PSNR/SSIM (Y, border = scale)
come from ``basicsr.metrics`` through :func:`ir_prune_plugin.loops.evaluate`.
"""
from __future__ import annotations

import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..channels.filter_l1 import l1_filter_prune
from ..data import SRDataset
from ..loops import evaluate, fit
from ..macs import total_macs
from ..sparsity import FitOptions
from ..sparsity.nm_baselines import OneShotNM, SRSTEPruner, n_for_budget
from ..sparsity.sls import SLSOptions, SLSPruner
from ..workloads.figures import tradeoff_plot
from ..workloads.pretrained import pretrained

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class StudyConfig:
    """Sizes of one study run (``QUICK``/``FULL``: the demo; ``DEEP``: ``benchmarks/sls.py``)."""

    num_feat: int = 32
    num_block: int = 4
    M: int = 16
    budget: float = 0.25
    patch: int = 64
    batch_size: int = 8
    pretrain_steps: int = 600
    pretrain_lr: float = 1e-3
    finetune_steps: int = 300
    finetune_lr: float = 2e-4
    search_steps: int = 150
    refresh_every: int = 50
    val_size: int = 128
    macs_input: int = 64
    sls_fixed: bool = True  # also run SLS with the reference's fixed-mask finetuning
    filter_iters: int = 8
    train_names: tuple[str, ...] | None = None  # None: every embedded training photo
    threads: int | None = None  # torch threads during the run (restored after); tiny nets: 1


FULL = StudyConfig()
QUICK = StudyConfig(num_feat=16, num_block=2, M=8, patch=32, batch_size=4, pretrain_steps=50,
                    finetune_steps=16, search_steps=8, refresh_every=8, val_size=48, sls_fixed=False,
                    filter_iters=4, train_names=("astronaut", "coffee"), threads=1)
# the benchmark's deeper net (issue 14: SLS's margin needs depth): EDSR 16x8, sized for a share of 2 busy cores
DEEP = StudyConfig(num_feat=16, num_block=8, patch=48, pretrain_steps=500, finetune_steps=150, search_steps=30,
                   refresh_every=20, sls_fixed=False)

__all__ = ["StudyConfig", "FULL", "QUICK", "DEEP", "NM_METHODS", "pretrained_edsr", "prune_nm", "score_model",
           "run_study", "run_sls_study"]


def pretrained_edsr(cfg: StudyConfig, cache_dir: Path, seed: int, progress: bool) -> nn.Module:
    """The dense BasicSR EDSR of ``cfg`` trained on the embedded photos (cached by config and seed)."""
    key = {"task": "sr_x2", "patch": cfg.patch, "bs": cfg.batch_size, "steps": cfg.pretrain_steps,
           "lr": cfg.pretrain_lr, "seed": seed, **({"names": list(cfg.train_names)} if cfg.train_names else {})}

    def train_fn(model: nn.Module) -> None:
        data = SRDataset("train", scale=2, patch=cfg.patch, seed=seed, names=cfg.train_names)
        fit(model, data, cfg.pretrain_steps, lr=cfg.pretrain_lr, batch_size=cfg.batch_size, seed=seed,
            progress=progress, desc="pretrain")

    torch.manual_seed(seed)
    return pretrained({"type": "edsr", "num_feat": cfg.num_feat, "num_block": cfg.num_block, "upscale": 2},
                      train_fn, cache_dir, key)


def _nonzero_params(model: nn.Module) -> int:
    return int(sum(int((p != 0).sum()) for p in model.parameters()))


def _plan_summary(plan: dict[str, tuple[int, int]]) -> str:
    ns = [n for n, _ in plan.values()]
    return f"N:{next(iter(plan.values()))[1]} per layer " + ",".join(map(str, ns)) if ns else "dense"


def prune_nm(method: str, dense: nn.Module, x: torch.Tensor, budget: float, cfg: StudyConfig, train: Any,
             fopts: FitOptions, *, plan: dict[str, int] | None = None) -> tuple[nn.Module, dict]:
    """Prune a copy of ``dense`` with one N:M ``method`` to ``budget`` and train it ``cfg.finetune_steps``.

    ``sls``: search + SR-STE finetune within the steps; ``sls-fixed``: the same search, the
    reference's fixed-mask finetune; ``sls-plan``: ``plan`` (``{layer: N}``, e.g. a searched one)
    applied to the dense weights, then SR-STE finetuning for all the steps (no search);
    ``sr-ste`` / ``one-shot``: uniform N = ``n_for_budget(budget, M)``. Returns the finalized
    model and a row fragment (MACs, plan, search facts).
    """
    torch.manual_seed(fopts.seed)
    if method in ("sls", "sls-fixed", "sls-plan"):
        if (method == "sls-plan") != (plan is not None):
            raise ValueError(f"plan is required by 'sls-plan' and only by it (method={method!r})")
        p = SLSPruner(dense, x, budget, M=cfg.M, options=SLSOptions(
            search_steps=cfg.search_steps, refresh_every=cfg.refresh_every,
            finetune="fixed" if method == "sls-fixed" else "sr-ste"))
        if plan is not None:
            p.freeze(plan)
    elif method in ("sr-ste", "one-shot"):
        cls = SRSTEPruner if method == "sr-ste" else OneShotNM
        p = cls(dense, x, n_for_budget(budget, cfg.M), cfg.M)
    else:
        raise ValueError(f"unknown N:M method {method!r}; use one of {NM_METHODS}")
    p.fit(train, cfg.finetune_steps, fopts)
    model = p.finalize()
    info: dict[str, Any] = {"macs": p.macs()["model_kept"], "prunable_ratio": p.macs()["ratio"],
                            "plan": _plan_summary(p.plan), "plan_n": {n: nm[0] for n, nm in p.plan.items()}}
    if isinstance(p, SLSPruner):
        info["projected"] = p.projected
        info["search_steps_used"] = len(p.history)
    return model, info


NM_METHODS = ("sls", "sls-fixed", "sls-plan", "sr-ste", "one-shot")


def score_model(model: nn.Module, sets: dict[str, Any], dense_macs: float, macs: float, *,
                named: bool | None = None) -> dict:
    """PSNR/SSIM (Y, border 2) on every set, MACs ratio and non-zero parameters of one model.

    Keys: ``psnr_<set>``/``ssim_<set>`` when ``named`` (default: for several sets), else ``psnr``/``ssim``.
    """
    named = len(sets) > 1 if named is None else named
    row: dict[str, Any] = {"macs": macs, "macs_ratio": macs / dense_macs, "params": _nonzero_params(model)}
    for set_name, ds in sets.items():
        r = evaluate(model, ds, crop_border=2, y_channel=True)
        row[f"psnr_{set_name}" if named else "psnr"] = r["psnr"]
        row[f"ssim_{set_name}" if named else "ssim"] = r["ssim"]
    return row


def run_study(cfg: StudyConfig, out_dir: str | Path, *, seed: int = 0, cache_dir: str | Path | None = None,
              eval_sets: dict[str, Any] | None = None, progress: bool = False, keep_models: bool = False) -> dict:
    """Run every method under ``cfg``; write ``sls_study.json`` and a PSNR-vs-MACs plot in ``out_dir``.

    ``keep_models`` returns the final models under ``result['models']`` (not written to JSON).
    """
    prev = torch.get_num_threads()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    try:
        return _run_study(cfg, out_dir, seed=seed, cache_dir=cache_dir, eval_sets=eval_sets, progress=progress,
                          keep_models=keep_models)
    finally:
        torch.set_num_threads(prev)


def _run_study(cfg: StudyConfig, out_dir: str | Path, *, seed: int, cache_dir: str | Path | None,
               eval_sets: dict[str, Any] | None, progress: bool, keep_models: bool) -> dict:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(cache_dir) if cache_dir is not None else out / "cache"
    t0 = time.time()
    dense = pretrained_edsr(cfg, cache, seed, progress)
    train = SRDataset("train", scale=2, patch=cfg.patch, seed=seed + 1, names=cfg.train_names)
    sets = eval_sets or {"val": SRDataset("val", scale=2, val_size=cfg.val_size)}
    x = torch.zeros(1, 3, cfg.macs_input, cfg.macs_input)
    dense_macs = total_macs(dense, x)
    fopts = FitOptions(lr=cfg.finetune_lr, batch_size=cfg.batch_size, seed=seed, progress=progress)

    models: dict[str, nn.Module] = {}

    def score(name: str, model: nn.Module, macs: float, extra: dict) -> dict:
        if keep_models:
            models[name] = model
        row = {"method": name, **score_model(model, sets, dense_macs, macs), **extra}
        log.info("%s: %s", name, row)
        return row

    rows = [score("dense", dense, dense_macs, {"plan": "dense"})]
    sls_macs = None
    for name in ("sls", "sls-fixed", "one-shot", "sr-ste") if cfg.sls_fixed else ("sls", "one-shot", "sr-ste"):
        model, info = prune_nm(name, dense, x, cfg.budget, cfg, train, fopts)
        sls_macs = info["macs"] if sls_macs is None else sls_macs
        info.pop("plan_n")
        if not name.startswith("sls"):
            info.pop("projected", None)
        rows.append(score(name, model, info.pop("macs"), info))
    torch.manual_seed(seed)
    filt = l1_filter_prune(dense, x, sls_macs, iters=cfg.filter_iters)
    fit(filt, train, cfg.finetune_steps, lr=cfg.finetune_lr, batch_size=cfg.batch_size, seed=seed,
        progress=progress, desc="l1-filter")
    rows.append(score("l1-filter", filt, total_macs(filt, x), {"plan": "channels " + ",".join(
        str(m.out_channels) for m in filt.modules() if isinstance(m, nn.Conv2d))}))
    result = {"config": asdict(cfg), "seed": seed, "macs_input": [1, 3, cfg.macs_input, cfg.macs_input],
              "rows": rows, "seconds": time.time() - t0}
    (out / "sls_study.json").write_text(json.dumps(result, indent=2))
    result["plot"] = str(_plot(rows, out / "sls_psnr_vs_macs.png"))
    if keep_models:
        result["models"] = models
    return result


def _plot(rows: list[dict], path: Path) -> Path:
    key = "psnr" if "psnr" in rows[0] else next(k for k in rows[0] if k.startswith("psnr"))
    return tradeoff_plot(path, [{**r, "macs_m": r["macs"] / 1e6} for r in rows], "macs_m",
                         "MACs (M) per 64x64 LR input", "x2 SR, EDSR: pruning at equal MACs",
                         y=key, ylabel=f"{key} (dB, Y)")


def run_sls_study(out_dir: str | Path, *, quick: bool = False, seed: int = 0,
                  cache_dir: str | Path | None = None, keep_models: bool = False) -> dict:
    """SLS at 25 % MACs vs one-shot N:M, SR-STE and L1 filter pruning; rows + plot (used by ``irprune demo``).

    Rows: ``dense``, ``sls`` (searched N, SR-STE finetuning: the default), ``sls-fixed`` (the
    reference's fixed-mask finetuning; full mode only), ``one-shot`` and ``sr-ste`` (uniform
    N = budget x M), ``l1-filter`` (matched to SLS's total MACs). All pruned models get the same
    number of training steps.
    """
    return run_study(QUICK if quick else FULL, out_dir, seed=seed, cache_dir=cache_dir, keep_models=keep_models)
