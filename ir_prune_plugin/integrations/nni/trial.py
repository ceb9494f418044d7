"""NNI trial: prune + fine-tune a small net on an embedded task, report PSNR, peak memory and MACs.

Run by ``irprune sweep`` as ``python -m ir_prune_plugin.integrations.nni.trial [--arch ...]``; the
hyperparameters (``method``, ``sparse_ratio``, ``lr``) come from ``nni.get_next_parameter()``
(outside an experiment, from ``--params '{"method": "sls", ...}'``). The fixed settings (task, arch,
step counts, memory size) are command-line options. Reported: ``{'default': psnr, 'psnr', 'ssim',
'peak_mb', 'macs', 'params'}`` and the same for the dense net (``dense_psnr``, ``dense_peak_mb``,
``dense_macs``); peak memory is the liveness estimate at ``--memory-size`` (HEIGHTxWIDTH). A
failing trial ends with one line ``irprune-trial failed: <error>`` on stderr and exit code 1.

Methods: ``sls`` (:class:`NNISLSPruner`, N:M masks; MACs count kept weights only), ``mosp``
(:class:`NNIMOSPPruner`, then :func:`speedup`), ``l1`` (NNI's own ``L1NormPruner`` on Conv2d, then
:func:`speedup`): all through NNI's config_list / compress() / masks path, all trained for the same
number of steps after pre-training.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from dataclasses import dataclass, field
from typing import Any

import nni
import torch
from nni.compression.pruning import L1NormPruner
from torch import nn

from ...archs import build_arch
from ...channels.mosp import MOSPOptions
from ...channels.tp_graph import output_layers
from ...data import DenoiseDataset, SRDataset
from ...loops import evaluate, fit
from ...macs import count_macs, count_params
from ...memory import estimate_peak_memory
from ...sparsity import SLSOptions
from ...vocabulary import MIB, format_hw, parse_hw
from ...workloads.pretrained import pretrained
from .evaluator import task_evaluator
from .mask_speedup import apply_masks, speedup
from .mosp_pruner import NNIMOSPPruner
from .sls_pruner import NNISLSPruner

_log = logging.getLogger(__name__)

METHODS = ("sls", "mosp", "l1")
FAIL_MARK = "irprune-trial failed:"  #: prefix of the one stderr line a failing trial ends with
DEFAULT_PARAMS = {"method": "sls", "sparse_ratio": 0.5, "lr": 1e-3}


@dataclass(frozen=True)
class TrialSettings:
    """Fixed settings of every trial in a sweep (the tuner varies only the hyperparameters)."""

    task: str = "denoise"                      #: 'denoise' (sigma 25) or 'sr' (x2)
    arch: str = "sid_unet"
    arch_kwargs: dict = field(default_factory=lambda: {"width": 0.125})
    patch: int = 32
    val_size: int = 64
    batch_size: int = 4
    pretrain_steps: int = 200
    train_steps: int = 60                      #: optimizer steps after pre-training, for every method
    M: int = 4                                 #: SLS group size
    memory_size: tuple[int, int] = (256, 256)  #: H, W the peak memory and MACs are reported at
    seed: int = 0
    threads: int = 0                           #: torch CPU threads per trial (0: torch's default)
    cache_dir: str | None = None               #: pre-trained weights shared by the trials of a sweep

    def __post_init__(self) -> None:
        if self.task not in ("denoise", "sr"):
            raise ValueError(f"task must be 'denoise' or 'sr', got {self.task!r}")
        for name in ("patch", "val_size", "batch_size", "M"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)!r}")
        for name in ("pretrain_steps", "train_steps", "threads"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)!r}")


def check_params(params: dict[str, Any]) -> dict[str, Any]:
    """Merge tuner parameters over the defaults and validate them."""
    unknown = sorted(set(params) - set(DEFAULT_PARAMS))
    if unknown:
        raise ValueError(f"unknown trial parameter(s) {unknown}; known: {sorted(DEFAULT_PARAMS)}")
    p = {**DEFAULT_PARAMS, **params}
    if p["method"] not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {p['method']!r}")
    if not 0 < float(p["sparse_ratio"]) < 1:
        raise ValueError(f"sparse_ratio must be in (0, 1), got {p['sparse_ratio']!r}")
    if not float(p["lr"]) > 0:
        raise ValueError(f"lr must be > 0, got {p['lr']!r}")
    return p


def task_datasets(s: TrialSettings) -> tuple[Any, Any]:
    """The (train, val) datasets of the trial's embedded task."""
    if s.task == "denoise":
        return (DenoiseDataset("train", 25.0, s.patch, seed=s.seed),
                DenoiseDataset("val", 25.0, s.patch, val_size=s.val_size, seed=s.seed))
    return (SRDataset("train", 2, s.patch, seed=s.seed), SRDataset("val", 2, s.patch, val_size=s.val_size, seed=s.seed))


def _memory_input(s: TrialSettings, example: torch.Tensor) -> tuple[int, ...]:
    return (1, example.shape[1], *s.memory_size)


def _pretrained(settings: TrialSettings, train: Any) -> nn.Module:
    """Build and pre-train the model, reusing weights cached by an earlier trial with equal settings."""
    def train_fn(model: nn.Module) -> None:
        fit(model, train, settings.pretrain_steps, lr=1e-3, batch_size=settings.batch_size,
            seed=settings.seed, progress=False, desc="pretrain")

    if not settings.cache_dir:
        model = build_arch(settings.arch, **settings.arch_kwargs)
        train_fn(model)
        return model
    key = {k: v for k, v in dataclasses.asdict(settings).items()
           if k not in ("threads", "cache_dir", "train_steps", "M", "arch", "arch_kwargs")}
    return pretrained({"type": settings.arch, **settings.arch_kwargs}, train_fn, settings.cache_dir, key)


def run_trial(settings: TrialSettings, params: dict[str, Any]) -> dict[str, float]:
    """Pre-train, prune with ``params['method']`` to ``sparse_ratio``, train, and measure."""
    p = check_params(params)
    if settings.threads:
        torch.set_num_threads(settings.threads)
    torch.manual_seed(settings.seed)
    train, val = task_datasets(settings)
    model = _pretrained(settings, train)
    x = train[0]["lq"].unsqueeze(0)
    size = _memory_input(settings, x)
    last = output_layers(model, x)
    crop = 2 if settings.task == "sr" else 0
    dense = {"dense_psnr": evaluate(model, val, crop_border=crop)["psnr"],
             "dense_peak_mb": estimate_peak_memory(model, torch.empty(size, device="meta")).peak_bytes / MIB,
             "dense_macs": float(count_macs(model, size))}
    ratio, steps, lr = float(p["sparse_ratio"]), settings.train_steps, float(p["lr"])
    evaluator = task_evaluator(model, train, lr=lr, batch_size=settings.batch_size, seed=settings.seed)
    kept_macs_ratio = 1.0
    if p["method"] == "sls":
        cfg = [{"op_types": ["Conv2d", "ConvTranspose2d"], "exclude_op_names": last, "sparse_ratio": ratio}]
        opts = SLSOptions(search_steps=max(1, steps // 2), refresh_every=max(1, steps // 4))
        pruner = NNISLSPruner(model, cfg, evaluator if steps else None, example_inputs=x, M=settings.M,
                              training_steps=steps, options=opts)
        _, masks = pruner.compress()
        pruner.unwrap_model()
        apply_masks(model, masks)
        final = model
        kept_macs_ratio = pruner.macs["model_kept"] / pruner.macs["model_dense"]
    else:
        if p["method"] == "mosp":
            cfg = [{"op_types": ["Conv2d", "ConvTranspose2d"], "exclude_op_names": last, "sparse_ratio": ratio}]
            peak0 = estimate_peak_memory(model, torch.empty(size, device="meta")).peak_bytes
            opts = MOSPOptions(outer_stride=max(1024, int(peak0 * ratio / 4)), min_channels=1, seed=settings.seed)
            pruner = NNIMOSPPruner(model, cfg, example_inputs=x, memory_input_size=size, options=opts)
        else:  # NNI's own L1NormPruner: ConvTranspose2d masks break in NNI 3.0, so Conv2d only
            cfg = [{"op_types": ["Conv2d"], "exclude_op_names": last, "sparse_ratio": ratio}]
            pruner = L1NormPruner(model, cfg)
        _, masks = pruner.compress()
        pruner.unwrap_model()
        final = speedup(model, masks, x)
        fit(final, train, steps, lr=lr, batch_size=settings.batch_size, seed=settings.seed,
            progress=False, desc="finetune")
    scores = evaluate(final, val, crop_border=crop)
    peak = estimate_peak_memory(final, torch.empty(size, device="meta")).peak_bytes
    result = {"default": scores["psnr"], "psnr": scores["psnr"], "ssim": scores["ssim"],
              "peak_mb": peak / MIB, "macs": count_macs(final, size) * kept_macs_ratio,
              "params": float(count_params(final)), **dense}
    _log.info("trial %s -> %s", p, result)
    return result


def _parser() -> argparse.ArgumentParser:
    d = TrialSettings()
    ap = argparse.ArgumentParser(prog="python -m ir_prune_plugin.integrations.nni.trial", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", default=d.task, choices=("denoise", "sr"))
    ap.add_argument("--arch", default=d.arch)
    ap.add_argument("--arch-kwargs", default=json.dumps(d.arch_kwargs), help="JSON dict for build_arch")
    for name in ("patch", "val_size", "batch_size", "pretrain_steps", "train_steps", "M", "seed", "threads"):
        ap.add_argument(f"--{name.replace('_', '-')}", type=int, default=getattr(d, name))
    ap.add_argument("--cache-dir", default=None, help="folder for pre-trained weights shared across trials")
    ap.add_argument("--memory-size", default=format_hw(d.memory_size),
                    help="HEIGHTxWIDTH the peak memory and MACs are reported at, e.g. 256x512")
    ap.add_argument("--params", default=None, help="JSON hyperparameters when run outside NNI")
    return ap


def settings_from_args(args: argparse.Namespace) -> TrialSettings:
    """Build :class:`TrialSettings` from parsed command-line options."""
    h, w = parse_hw(args.memory_size, "--memory-size")
    kw = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrialSettings)
          if f.name not in ("arch_kwargs", "memory_size")}
    return TrialSettings(**kw, arch_kwargs=json.loads(args.arch_kwargs), memory_size=(h, w))


def main(argv: list[str] | None = None) -> int:
    """Trial entry point: read parameters, run, report the final result to NNI."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    args = _parser().parse_args(argv)
    settings = settings_from_args(args)
    params = nni.get_next_parameter() or (json.loads(args.params) if args.params else {})
    try:
        result = run_trial(settings, params)
    except Exception as exc:  # the sweep shows this line as the trial's reason (launcher.failure_reason)
        _log.exception("trial %s failed", params)
        print(f"{FAIL_MARK} {type(exc).__name__}: {' '.join(str(exc).split())}", file=sys.stderr)
        return 1
    nni.report_final_result(result)
    print(json.dumps({"params": params, "result": result}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
