"""MOSP vs uniform width vs memory-blind magnitude pruning at equal peak memory (embedded denoising).

The dense SID U-Net (x0.625: 20 channels at full resolution) is pretrained on the embedded
sigma=25 denoising task; its weights, and those of the uniform-width nets, ship in the package
(``irprune pretrain``) and are otherwise cached by config. Each budget (a fraction of the dense
peak at 1x3x1080x2048) is met by: MOSP with compactors (inserted, then the whole net finetuned
``compactor_finetune_steps`` before pruning starts, as in the paper), optionally MOSP pruning
the compactors straight after insertion (``compactor_ablation``), MOSP without compactors,
memory-blind global magnitude pruning (its ratio bisected to the budget), the same share of
channels cut from every layer of the trained net ("uniform-slice") and the uniformly narrower
U-Net trained from scratch for the dense model's pretraining plus finetuning steps, the best of
``uniform_restarts`` such trainings by a loss on the training photos ("uniform-width"). Every
pruned model gets the same ``finetune_steps``: MOSP's compactor finetune and its short finetunes
between outer steps (``loop_finetune_steps`` each, at most ``loop_finetune_share`` of what is
left) are taken out of that same budget.
"""
from __future__ import annotations

import copy
import functools
import json
import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import nn

from ..archs import build_arch
from ..channels.compactor import insert_compactors
from ..channels.memory_baselines import (BaselineResult, estimate_peak, magnitude_prune_to_budget,
                                        uniform_width_to_budget)
from ..channels.mosp import MOSPOptions, MOSPPruner
from ..data import DenoiseDataset
from ..loops import evaluate, fit
from ..macs import count_macs, count_params
from ..memory import measure_peak_memory
from ..workloads.figures import tradeoff_plot
from ..workloads.pretrained import default_cache_dir, pretrained

log = logging.getLogger(__name__)

__all__ = ["MOSPStudyConfig", "QUICK", "FULL", "RESTART_SEED_STRIDE", "UniformCandidate", "denoise_key",
           "dense_unet", "uniform_unet", "uniform_candidates", "uniform_key", "uniform_training", "uniform_width",
           "selection_set", "selection_loss", "finetune_set", "finetune_model", "memory_blind_baseline",
           "run_study", "run_mosp_study"]


@dataclass(frozen=True)
class MOSPStudyConfig:
    """Sizes and step budgets of one study run."""

    width: float = 0.625                 # 20 channels at full resolution: >= 8 left at 50 % memory
    sigma: float = 25.0
    patch: int = 32
    batch_size: int = 8
    pretrain_steps: int = 2400
    # the dense net (with the He init of ``SIDUNet``; the uniform-width net: ``uniform_lr``). At 1e-3 on 32-px patches
    # some trainings learned bottleneck features that blow up on larger inputs (the net scores well
    # on its patches, under the noisy input on 192-px crops; 1 run in 3, tipped by machine-level
    # float differences); 5e-4 gave smooth held-out curves in every seed and, over 2,400 steps,
    # the 1e-3 nets' quality (benchmarks/results/mosp/INVESTIGATION.md (f))
    pretrain_lr: float = 5e-4
    # the uniform-width baseline's training from scratch (same steps, clip and data otherwise). The
    # rate was lowered to 5e-4 for the dense net's bottleneck blow-up; the narrower net never blew
    # up at 1e-3 (3 seeds), and at 5e-4 it ended 0.34-0.50 dB lower on average (INVESTIGATION (g)):
    # the baseline trains at the rate that serves it
    uniform_lr: float = 1e-3
    # the uniform-width baseline is the best of this many trainings from scratch (restart j: init,
    # batch order and patches of seed ``seed + RESTART_SEED_STRIDE * j``), chosen by
    # :func:`selection_loss` on the training photos, never the test images. One training's draw
    # spread 0.7-1 dB at 50 % over 3 seeds (INVESTIGATION (g), (h)): the baseline is what a careful
    # practitioner keeps, not one draw. The dense net is one training (this favours the baseline)
    uniform_restarts: int = 3
    selection_crops: int = 16            # fresh-noise crops of ``val_size`` px from the training photos
    # global gradient-norm clip of every training run here (pretraining and finetunes): without it one
    # gradient spike (norm 14 against a median of 0.4) collapsed the dense x0.625 net within 600 steps
    grad_clip: float | None = 0.5
    # every pruned model (the paper: 20 epochs after 80 of training, on a converged net; 2,400 steps
    # here are not). Measured over 3 seeds at 50 % (benchmarks/results/mosp/finetune-budget/): at 300
    # steps every pruned net is finetune-limited, at 600 the uniform slice is still 1.6 dB under dense,
    # at 1,200 0.6; with 100 MOSP ended 2.5 dB under dense
    finetune_steps: int = 1200
    # every pruned model (and the dense control) alike. At 5e-4, the pretraining's rate, 600 steps left
    # the uniform slice 3-4 dB under dense (2 seeds): the most heavily cut baseline needs the larger rate
    # to recover (INVESTIGATION (f)); a finetune that collapses is flagged in its row, never averaged
    finetune_lr: float = 1e-3
    loop_finetune_steps: int = 2        # MOSP: steps after each outer step (out of finetune_steps) ...
    loop_finetune_share: float = 0.5    # ... until this share of finetune_steps is used; the rest at the end
    # 0.25 is out of reach for this net at 2048x1080: input, head output and the global-residual
    # sum are live together at the end (3 x 25.3 MiB fp32 = 25.6 % of the width-0.25 peak)
    budgets: tuple[float, ...] = (0.5, 0.35)
    val_size: int = 192
    heldout_patches: int = 8            # MOSP's evaluate batch (train photos, separate seed)
    memory_size: tuple[int, int] = (1080, 2048)
    measure_size: tuple[int, int] = (96, 160)  # real 'scheduled' measurement (CPU-friendly)
    outer_stride_mb: float = 4.0         # the paper: 2 MB on a 768 MB net (1 MB vs 12 MB: -0.09 dB); CPU time
    # every method keeps at least this many channels per layer (MOSP's per-unit floor, the magnitude
    # baselines' per-layer cap): with 1, MOSP could cut a full-resolution tensor to one channel
    min_channels: int = 8
    magnitude_max_ratio: float = 0.95    # Torch-Pruning's per-layer cap for the memory-blind baseline
    magnitude_scan_step: float = 0.1     # ratio grid scanned before bisecting (peak is not monotone)
    magnitude_bisections: int = 6
    sensitivity_points: tuple[int, ...] = (1, 2)
    # compactors are inserted, then the whole net is finetuned this many steps before pruning starts
    # (the paper: 10 epochs); counted in the model's finetune budget like MOSP's in-loop finetunes
    compactor_finetune_steps: int = 30
    compactor_ablation: bool = False     # also prune compactors straight after insertion
    # also score the dense net finetuned the same ``finetune_steps`` as every pruned model (row
    # "dense-finetuned"): a pruned model has had pretraining + finetune steps, so "within x dB of
    # dense" is only about pruning against a dense net given those steps too
    dense_finetune: bool = False
    # the dense net must beat the noisy input by this much before anything is pruned (a failed
    # training would make every comparison against it meaningless); trained rows under the noisy
    # input are marked ``"collapsed": true``
    min_gain_db: float = 1.0

    def __post_init__(self) -> None:
        for name in ("uniform_restarts", "selection_crops"):   # checked before anything trains
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")


FULL = MOSPStudyConfig()
QUICK = MOSPStudyConfig(width=0.25, patch=32, batch_size=4, pretrain_steps=600, pretrain_lr=2e-3, uniform_lr=2e-3,
                        finetune_steps=8, loop_finetune_steps=0, compactor_finetune_steps=2, budgets=(0.5,),
                        val_size=48, heldout_patches=2, measure_size=(32, 48), outer_stride_mb=16.0,
                        sensitivity_points=(1,), magnitude_scan_step=0.25, magnitude_bisections=2,
                        min_channels=2, grad_clip=None, uniform_restarts=1)

#: restart ``j`` of a from-scratch training of seed ``s`` trains with seed ``s + RESTART_SEED_STRIDE * j``
#: (restart 0 is the one training of seed ``s``, under its old key). Study seeds ``s`` and
#: ``s + RESTART_SEED_STRIDE`` therefore share trainings: independent seeds stay below the stride
RESTART_SEED_STRIDE = 1000


def denoise_key(cfg: MOSPStudyConfig, seed: int, steps: int) -> dict[str, Any]:
    """The training key of a U-Net trained ``steps`` on the study's denoising task (weights' name)."""
    # the same key as ``irprune demo``'s dense U-Net, so both share the cached / shipped weights
    return {"task": "denoise", "sigma": cfg.sigma, "patch": cfg.patch, "bs": cfg.batch_size,
            "steps": steps, "lr": cfg.pretrain_lr, "seed": seed, "init": "he",
            **({"clip": cfg.grad_clip} if cfg.grad_clip is not None else {})}


AfterStep = Callable[[nn.Module, int], None]


def _trained_unet(cfg: MOSPStudyConfig, width: float, steps: int, seed: int, cache_dir: Path,
                  progress: bool, desc: str, shipped: bool, after_step: AfterStep | None = None) -> nn.Module:
    def train_fn(model: nn.Module) -> None:
        hook = None if after_step is None else (lambda i: after_step(model, i))
        fit(model, _train_set(cfg, seed, steps), steps, lr=cfg.pretrain_lr, batch_size=cfg.batch_size,
            seed=seed, progress=progress, desc=desc, clip_grad_norm=cfg.grad_clip, after_step=hook)

    torch.manual_seed(seed)   # the initial weights (built inside ``pretrained``) depend on the seed only
    return pretrained({"type": "sid_unet", "width": width}, train_fn, cache_dir, denoise_key(cfg, seed, steps),
                      shipped=shipped)


def dense_unet(cfg: MOSPStudyConfig, cache_dir: str | Path, seed: int = 0, progress: bool = True, *,
               shipped: bool = True, after_step: AfterStep | None = None) -> nn.Module:
    """The study's dense SID U-Net, trained ``cfg.pretrain_steps`` (shipped, cached or trained now;
    ``shipped=False`` ignores the weights shipped in the package). ``after_step(model, i)`` runs
    after each training step when the net is trained now (learning curves)."""
    return _trained_unet(cfg, cfg.width, cfg.pretrain_steps, seed, Path(cache_dir), progress, "pretrain U-Net",
                         shipped, after_step)


def uniform_unet(cfg: MOSPStudyConfig, budget: float, cache_dir: str | Path, seed: int = 0,
                 progress: bool = True, *, shipped: bool = True,
                 after_step: AfterStep | None = None) -> tuple[nn.Module, float]:
    """The widest uniformly narrower U-Net within ``budget`` of the dense peak, trained from scratch
    for the dense net's pretraining plus finetuning steps (the best of ``cfg.uniform_restarts``
    trainings, :func:`uniform_candidates`); returns it and its width factor, and caches it under
    :func:`uniform_key`. ``after_step`` as in :func:`dense_unet` (one training: ``uniform_restarts=1``)."""
    width, factor = uniform_width(cfg, budget)
    if cfg.uniform_restarts == 1:
        ucfg = uniform_training(cfg)
        return _trained_unet(ucfg, width, ucfg.pretrain_steps + ucfg.finetune_steps, seed, Path(cache_dir),
                             progress, f"train uniform x{width:.3f}", shipped, after_step), factor
    if after_step is not None:
        raise ValueError("after_step follows one training; a learning curve of the uniform-width net needs "
                         f"uniform_restarts=1 (got {cfg.uniform_restarts}) and the restart's own seed")

    def keep_the_best(model: nn.Module) -> None:
        best = min(uniform_candidates(cfg, budget, cache_dir, seed, progress, shipped=shipped),
                   key=lambda c: c.loss)
        log.info("uniform width @%g, seed %d: restart seed %d kept (selection L1 %.5f)", budget, seed,
                 best.seed, best.loss)
        model.load_state_dict(best.model.state_dict())

    model = pretrained({"type": "sid_unet", "width": width}, keep_the_best, Path(cache_dir),
                       uniform_key(cfg, seed), shipped=shipped)
    return model, factor


@dataclass(frozen=True)
class UniformCandidate:
    """One from-scratch training of the uniform-width net: its training seed, net and selection L1."""

    seed: int
    model: nn.Module
    loss: float


def uniform_candidates(cfg: MOSPStudyConfig, budget: float, cache_dir: str | Path, seed: int = 0,
                       progress: bool = True, *, shipped: bool = True) -> list[UniformCandidate]:
    """The ``cfg.uniform_restarts`` trainings :func:`uniform_unet` chooses from, each trained (or
    loaded) under its own key, with its :func:`selection_loss` (restart 0 is the one-training net)."""
    width, _ = uniform_width(cfg, budget)
    ucfg = uniform_training(cfg)
    steps = ucfg.pretrain_steps + ucfg.finetune_steps
    loss = selection_loss(cfg, seed)
    out = []
    for j in range(cfg.uniform_restarts):
        s = seed + RESTART_SEED_STRIDE * j
        model = _trained_unet(ucfg, width, steps, s, Path(cache_dir), progress,
                              f"train uniform x{width:.3f} ({j + 1}/{cfg.uniform_restarts})", shipped).eval()
        out.append(UniformCandidate(s, model, loss(model)))
    return out


def uniform_key(cfg: MOSPStudyConfig, seed: int) -> dict[str, Any]:
    """The training key of the study's uniform-width net of seed ``seed`` (its weights' name)."""
    ucfg = uniform_training(cfg)
    key = denoise_key(ucfg, seed, ucfg.pretrain_steps + ucfg.finetune_steps)
    if cfg.uniform_restarts == 1:
        return key   # one training: the key it always had
    return {**key, "restarts": cfg.uniform_restarts, "stride": RESTART_SEED_STRIDE,
            "select": f"l1-train-crops-{cfg.selection_crops}x{cfg.val_size}"}


def selection_set(cfg: MOSPStudyConfig, seed: int) -> DenoiseDataset:
    """``cfg.selection_crops`` crops of ``cfg.val_size`` px from the training photos with fresh noise
    (crop places and noise of their own seed), on which :func:`uniform_unet` ranks its trainings
    without looking at a test image. Whole-size crops, not training patches: a net can score well
    on its patches and fail on larger inputs (INVESTIGATION (e))."""
    return DenoiseDataset("train", sigma=cfg.sigma, patch=cfg.val_size, seed=seed + 104729,
                          length=cfg.selection_crops)


def selection_loss(cfg: MOSPStudyConfig, seed: int) -> Callable[[nn.Module], float]:
    """Mean L1 of a net on :func:`selection_set` (lower is better)."""
    data = selection_set(cfg, seed)
    items = [data[i] for i in range(len(data))]

    @torch.no_grad()
    def loss(model: nn.Module) -> float:
        model.eval()
        return float(sum(F.l1_loss(model(it["lq"][None]), it["gt"][None]) for it in items) / len(items))
    return loss


def uniform_training(cfg: MOSPStudyConfig) -> MOSPStudyConfig:
    """The settings the uniform-width nets train under (and are keyed by): the pretraining's, at
    ``cfg.uniform_lr``."""
    return replace(cfg, pretrain_lr=cfg.uniform_lr)


@functools.lru_cache(maxsize=16)
def uniform_width(cfg: MOSPStudyConfig, budget: float) -> tuple[float, float]:
    """The width of the study's uniform-width net at ``budget`` of the dense peak, and its factor
    relative to the dense width (the widest uniformly narrower U-Net within the budget). Memoised:
    a pure function of the (frozen) config, found by ``torch.export`` profiles, asked per seed."""
    dense_peak = estimate_peak(build_arch("sid_unet", width=cfg.width), (1, 3, *cfg.memory_size))
    uni = uniform_width_to_budget({"type": "sid_unet", "width": cfg.width}, int(budget * dense_peak),
                                  (1, 3, *cfg.memory_size))
    return float(uni.model.width), uni.knob


def finetune_set(cfg: MOSPStudyConfig, seed: int, steps: int | None = None) -> DenoiseDataset:
    """The patches every model of study seed ``seed`` is finetuned on, enough for ``steps`` (default
    ``cfg.finetune_steps``). The set, and so the shuffled batch stream, depends only on
    ``max(steps, cfg.finetune_steps)``: ``replace(cfg, finetune_steps=600)`` and ``steps=600`` agree."""
    return _train_set(cfg, seed + 1, max(steps or 0, cfg.finetune_steps))


def finetune_model(cfg: MOSPStudyConfig, model: nn.Module, data: DenoiseDataset, seed: int, steps: int, *,
                   progress: bool = True, desc: str = "finetune",
                   after_step: AfterStep | None = None) -> nn.Module:
    """Finetune ``model`` in place as the study finetunes every model of seed ``seed``: ``steps`` of
    Adam at ``cfg.finetune_lr`` (cosine to a tenth), the study's gradient clip, on ``data``
    (:func:`finetune_set`); returns it in eval mode. ``after_step`` as in :func:`dense_unet`."""
    if steps > 0:
        torch.manual_seed(seed)
        hook = None if after_step is None else (lambda i: after_step(model, i))
        fit(model, data, steps, lr=cfg.finetune_lr, batch_size=cfg.batch_size, seed=seed + 1,
            progress=progress, desc=desc, clip_grad_norm=cfg.grad_clip, after_step=hook)
    return model.eval()


def memory_blind_baseline(cfg: MOSPStudyConfig, dense: nn.Module, example_inputs: Any, budget_bytes: int, *,
                          uniform: bool) -> BaselineResult:
    """The study's memory-blind L2 baseline within ``budget_bytes`` of peak at ``cfg.memory_size``:
    global magnitude pruning, or (``uniform``) the same share of every layer ("uniform-slice"),
    each layer keeping at least ``cfg.min_channels`` of the narrowest full-resolution width.
    ValueError when the budget is out of reach; ``dense`` is not changed."""
    narrowest = _full_res_channels(dense)   # the cap keeps min_channels of the narrowest layers
    cap = min(cfg.magnitude_max_ratio, (narrowest - cfg.min_channels) / narrowest)
    return magnitude_prune_to_budget(dense, example_inputs, budget_bytes, (1, 3, *cfg.memory_size), max_ratio=cap,
                                     scan_step=cfg.magnitude_scan_step, iterations=cfg.magnitude_bisections,
                                     uniform=uniform)


def _train_set(cfg: MOSPStudyConfig, seed: int, steps: int):
    return DenoiseDataset("train", sigma=cfg.sigma, patch=cfg.patch, seed=seed,
                          length=max(steps, 1) * cfg.batch_size)


def _heldout_loss(cfg: MOSPStudyConfig, seed: int):
    """MOSP's ``evaluate``: L1 on a fixed batch of train-photo patches unseen in training (other seed)."""
    data = DenoiseDataset("train", sigma=cfg.sigma, patch=cfg.patch, seed=seed + 7919,
                          length=cfg.heldout_patches)
    lq = torch.stack([data[i]["lq"] for i in range(len(data))])
    gt = torch.stack([data[i]["gt"] for i in range(len(data))])

    def loss(model: nn.Module) -> float:
        return float(F.l1_loss(model(lq), gt))
    return loss


def _measure(model: nn.Module, size: tuple[int, int]) -> int:
    result = measure_peak_memory(model, torch.rand(1, 3, *size), mode="scheduled")
    return int(getattr(result, "peak_bytes", result))


def run_study(cfg: MOSPStudyConfig, out_dir: str | Path, *, seed: int = 0, cache_dir: str | Path | None = None,
              progress: bool = True, extra_eval: dict[str, Any] | None = None,
              keep_models: bool = False, pretrain_seed: int | None = None) -> dict[str, Any]:
    """Run every method under ``cfg``; write ``mosp_study.json`` and a PSNR-vs-peak plot in ``out_dir``.

    ``extra_eval`` adds ``psnr_<name>``/``ssim_<name>`` columns from more paired datasets;
    ``keep_models`` returns the final models under ``result['models']`` (not written to JSON).
    ``pretrain_seed`` (default ``seed``) trains the dense and uniform-width nets: several seeds can
    share one pretrained net while the pruning, finetuning and noise vary with ``seed``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    t0 = time.time()
    torch.manual_seed(seed)
    val = DenoiseDataset("val", sigma=cfg.sigma, val_size=cfg.val_size, seed=seed)
    pseed = seed if pretrain_seed is None else pretrain_seed
    dense = dense_unet(cfg, cache, pseed, progress)
    big = (1, 3, *cfg.memory_size)
    x = torch.rand(2, 3, cfg.patch, cfg.patch)
    dense_peak = estimate_peak(dense, big)
    heldout = _heldout_loss(cfg, seed)
    ft_set = finetune_set(cfg, seed)

    timing = {"finetune_s": 0.0}

    def finetune(model: nn.Module, steps: int, desc: str) -> nn.Module:
        t = time.time()
        finetune_model(cfg, model, ft_set, seed, steps, progress=progress, desc=desc)
        if steps > 0:
            timing["finetune_s"] = (time.time() - t) * cfg.finetune_steps / steps  # per full pass
        return model

    models: dict[str, nn.Module] = {}
    noisy: float | None = None   # the noisy input's PSNR, once the dense row is scored

    def score(method: str, budget: float | None, model: nn.Module, steps: int, extra: dict | None = None) -> dict:
        q = evaluate(model, val)
        small = (1, 3, *cfg.measure_size)
        row = {"method": method, "budget": budget, "psnr": q["psnr"], "ssim": q["ssim"],
               "peak_mb_est": estimate_peak(model, big) / 2 ** 20,
               "peak_mb_est_small": estimate_peak(model, small) / 2 ** 20,
               "peak_mb_measured_small": _measure(model, cfg.measure_size) / 2 ** 20,
               "params": count_params(model), "macs_g": count_macs(model, big) / 1e9,
               "finetune_steps": steps, **(extra or {})}
        for name, data in (extra_eval or {}).items():
            more = evaluate(model, data)
            row[f"psnr_{name}"], row[f"ssim_{name}"] = more["psnr"], more["ssim"]
        if keep_models:
            models[f"{method}@{budget}"] = model
        log.info("%s @ %s: %.2f dB, %.1f MiB", method, budget, row["psnr"], row["peak_mb_est"])
        if noisy is not None and row["psnr"] < noisy:
            row["collapsed"] = True
            log.warning("%s @ %s scores %.2f dB, under the noisy input's %.2f dB: its training collapsed",
                        method, budget, row["psnr"], noisy)
        return row

    rows = [score("dense", None, dense, 0)]
    noisy = evaluate(None, val)["psnr"]
    if rows[0]["psnr"] < noisy + cfg.min_gain_db:
        raise RuntimeError(
            f"the dense net (pretrain seed {pseed}, {cfg.pretrain_steps} steps, cached in {cache}) scores "
            f"{rows[0]['psnr']:.2f} dB on the held-out photos against {noisy:.2f} dB for the noisy input "
            f"itself: its training failed, so no comparison against it would mean anything. Delete its "
            f"weights and train with another seed or a lower pretrain_lr (a U-Net trained on {cfg.patch}-px "
            f"patches can learn bottleneck features that blow up on whole images; "
            f"benchmarks/results/mosp/INVESTIGATION.md (e), (f))")
    if cfg.dense_finetune:
        rows.append(score("dense-finetuned", None,
                          finetune(copy.deepcopy(dense), cfg.finetune_steps, "finetune dense"), cfg.finetune_steps))
    variants = [("mosp", True, cfg.compactor_finetune_steps), ("mosp-no-compactor", False, 0)]
    if cfg.compactor_ablation:   # the pre-paper protocol: compactors pruned right after insertion
        variants.insert(1, ("mosp-compactor-no-prefinetune", True, 0))
    starts: dict[int, nn.Module] = {}

    def with_compactors(pre: int) -> nn.Module:
        """The dense net with identity compactors on its long skips, finetuned ``pre`` steps (the
        paper finetunes after insertion, before pruning); built once per seed and reused."""
        if pre not in starts:
            starts[pre] = finetune(insert_compactors(dense, x), pre, "finetune with compactors")
        return starts[pre]

    for budget in cfg.budgets:
        budget_bytes = int(budget * dense_peak)   # bytes: a compactor adds a tensor to the dense peak
        for name, compactors, pre in variants:
            used = {"steps": pre}

            def loop_ft(model: nn.Module, _used=used, _pre=pre) -> nn.Module:
                cap = _pre + int(cfg.loop_finetune_share * (cfg.finetune_steps - _pre))
                steps = min(cfg.loop_finetune_steps, cap - _used["steps"])
                _used["steps"] += max(steps, 0)
                return finetune(model, max(steps, 0), "MOSP loop finetune")

            opts = MOSPOptions(memory_input_size=big, outer_stride=int(cfg.outer_stride_mb * 2 ** 20),
                               compactors=compactors, min_channels=cfg.min_channels,
                               sensitivity_points=cfg.sensitivity_points, seed=seed)
            t1 = time.time()
            start = with_compactors(pre) if compactors else dense
            pruner = MOSPPruner(start, x, budget_bytes, evaluate=heldout, finetune=loop_ft, options=opts)
            pruned = pruner.prune(progress=progress)
            search_s = sum(r.seconds for r in pruner.history.records)
            prune_s = time.time() - t1
            final = cfg.finetune_steps - used["steps"]
            pruned = finetune(pruned, final, f"finetune {name}")
            rows.append(score(name, budget, pruned, cfg.finetune_steps,
                              {"search_s": round(search_s, 2), "prune_s": round(prune_s, 2),
                               "prefinetune_steps": pre,
                               "finetune_pass_s": round(timing["finetune_s"], 2),
                               "search_over_finetune": round(search_s / max(timing["finetune_s"], 1e-9), 3),
                               "inner_steps": len(pruner.history.records),
                               "full_res_channels": _full_res_channels(pruned),
                               "widths": _widths(pruned)}))
        # memory-blind global magnitude pruning, and the same share cut from every layer
        # ("uniform-slice": a uniformly narrower net that keeps the trained weights)
        for method, uniform in (("global-magnitude", False), ("uniform-slice", True)):
            try:
                blind = memory_blind_baseline(cfg, dense, x, budget_bytes, uniform=uniform)
            except ValueError as exc:   # the budget may be out of reach for these rules
                rows.append({"method": method, "budget": budget, "unreachable": str(exc)})
            else:
                model = finetune(blind.model, cfg.finetune_steps, f"finetune {method}")
                rows.append(score(method, budget, model, cfg.finetune_steps,
                                  {"ratio": round(blind.knob, 4), "full_res_channels": _full_res_channels(model),
                                   "widths": _widths(model)}))
        uni, knob = uniform_unet(cfg, budget, cache, pseed, progress)
        rows.append(score("uniform-width", budget, uni.eval(), cfg.pretrain_steps + cfg.finetune_steps,
                          {"width_factor": round(knob, 4), "restarts": cfg.uniform_restarts,
                           "full_res_channels": _full_res_channels(uni),
                           "widths": _widths(uni)}))
    result = {"config": _cfg_dict(cfg), "seed": seed, "pretrain_seed": pseed,
              "dense_peak_mb": dense_peak / 2 ** 20, "noisy_psnr": noisy, "rows": rows,
              "memory_note": (f"peak_mb_est: liveness estimate at 1x3x{cfg.memory_size[0]}x{cfg.memory_size[1]}; "
                              f"peak_mb_measured_small: measured ('scheduled') at 1x3x{cfg.measure_size[0]}x"
                              f"{cfg.measure_size[1]}, next to its estimate peak_mb_est_small"),
              "seconds": round(time.time() - t0, 1)}
    (out / "mosp_study.json").write_text(json.dumps(result, indent=2))
    result["plot"] = str(_plot(rows, out / "mosp_psnr_vs_peak.png"))
    if keep_models:
        result["models"] = models
    return result


def _full_res_channels(model: nn.Module) -> int:
    """Fewest channels of any full-resolution feature map (encoder/decoder level 1, incl. its skip)."""
    w = _widths(model)
    full = [c for n, c in w.items() if n.split(".")[0] in ("enc1", "dec1", "up1")
            or (n.startswith("compactors.") and "enc1" in n)]
    return min(full) if full else 0


def _widths(model: nn.Module) -> dict[str, int]:
    return {n: int(m.weight.shape[1 if isinstance(m, nn.ConvTranspose2d) else 0])
            for n, m in model.named_modules() if isinstance(m, nn.Conv2d | nn.ConvTranspose2d)
            or type(m).__name__ == "Compactor"}


def _cfg_dict(cfg: MOSPStudyConfig) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()}


def _plot(rows: list[dict], path: Path) -> Path:
    return tradeoff_plot(path, rows, "peak_mb_est", "peak activation memory at 2048x1080 (MiB, estimate)",
                         "MOSP: PSNR at equal peak memory")


def run_mosp_study(out_dir: str | Path, *, quick: bool = False, seed: int = 0,
                   cache_dir: str | Path | None = None, progress: bool = True,
                   extra_eval: dict[str, Any] | None = None, keep_models: bool = False,
                   pretrain_seed: int | None = None, **overrides: Any) -> dict:
    """MOSP (with/without compactors) vs global magnitude vs uniform width at equal peak memory.

    ``overrides`` replace fields of the ``QUICK``/``FULL`` :class:`MOSPStudyConfig`.
    """
    cfg = replace(QUICK if quick else FULL, **overrides)
    return run_study(cfg, out_dir, seed=seed, cache_dir=cache_dir, progress=progress,
                     extra_eval=extra_eval, keep_models=keep_models, pretrain_seed=pretrain_seed)
