"""Orchestration of ``irprune demo``: pretrain, run each study, write results and the report."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import torch

from ..data import DenoiseDataset
from ..loops import evaluate, fit
from ..macs import count_macs, count_params
from .config import DemoConfig, default_cache_dir
from .figures import image_strip
from .pretrain import pretrained
from .report import render

log = logging.getLogger(__name__)


def denoise_task(cfg: DemoConfig) -> tuple[DenoiseDataset, DenoiseDataset]:
    """The embedded denoising task (train patches, held-out photos) of a demo config."""
    train = DenoiseDataset("train", sigma=cfg.sigma, patch=cfg.patch, seed=cfg.seed,
                           length=max(cfg.pretrain_steps, 1) * cfg.batch_size)
    val = DenoiseDataset("val", sigma=cfg.sigma, val_size=cfg.val_size, seed=cfg.seed)
    return train, val


def pretrained_unet(cfg: DemoConfig, cache_dir: Path, progress: bool = True) -> torch.nn.Module:
    """The demo's dense SID U-Net trained on the embedded denoising task (cached by config)."""
    train, _ = denoise_task(cfg)
    arch = {"type": "sid_unet", "width": cfg.width}
    key = {"task": "denoise", "sigma": cfg.sigma, "patch": cfg.patch, "bs": cfg.batch_size,
           "steps": cfg.pretrain_steps, "seed": cfg.seed}

    def train_fn(model: torch.nn.Module) -> None:
        torch.manual_seed(cfg.seed)
        fit(model, train, cfg.pretrain_steps, lr=1e-3, batch_size=cfg.batch_size, seed=cfg.seed,
            progress=progress, desc="pretrain U-Net")

    return pretrained(arch, train_fn, cache_dir, key)


def dense_section(cfg: DemoConfig, out: Path, model: torch.nn.Module) -> dict:
    """The unpruned baseline: PSNR/SSIM against the noisy input, params, MACs, peak memory."""
    from ..memory import estimate_peak_memory

    _, val = denoise_task(cfg)
    shape = (1, 3, *cfg.memory_size)
    noisy = evaluate(None, val)
    dense = evaluate(model, val)
    peak = estimate_peak_memory(model, torch.empty(shape, device="meta")).peak_bytes
    rows = [
        {"method": f"noisy input (sigma={cfg.sigma:g})", "psnr": noisy["psnr"], "ssim": noisy["ssim"]},
        {"method": f"SID U-Net x{cfg.width:g} (dense)", "psnr": dense["psnr"], "ssim": dense["ssim"],
         "params": count_params(model), "macs_g": count_macs(model, shape) / 1e9, "peak_mb": peak / 2 ** 20},
    ]
    strip = image_strip(out / "denoise_dense.png", val[0], [("dense U-Net", model)])
    h, w = cfg.memory_size
    return {"title": "Dense denoising baseline", "rows": rows,
            "text": (f"Held-out photos {', '.join(val.names)} (centre {cfg.val_size}px), Gaussian noise "
                     f"sigma={cfg.sigma:g}. MACs and peak activation memory at 1x3x{h}x{w}, fp32."),
            "images": [{"file": strip.name, "caption": "noisy / dense U-Net / clean"}]}


def run_demo(cfg: DemoConfig, out_dir: str | Path, *, cache_dir: str | Path | None = None,
             progress: bool = True) -> dict:
    """Run the whole demo into ``out_dir``; returns the results dict also saved as results.json."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    t0 = time.time()
    torch.manual_seed(cfg.seed)
    timings: dict[str, float] = {}
    model = pretrained_unet(cfg, cache, progress)
    timings["pretrain_s"] = time.time() - t0
    sections = [dense_section(cfg, out, model)]
    timings["total_s"] = time.time() - t0
    results = {
        "title": f"demo ({cfg.preset})",
        "summary": "Pruning image-restoration networks to a peak-memory budget (MOSP) and a MACs budget "
                   "(SLS), side by side with the methods people would otherwise use.",
        "config": cfg.to_dict(), "sections": sections,
        "timings": {k: round(v, 1) for k, v in timings.items()},
    }
    (out / "results.json").write_text(json.dumps(results, indent=2, sort_keys=True))
    render(out)
    return results
