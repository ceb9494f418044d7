"""The demo's deploy section: MOSP alone vs tiling alone vs MOSP + tiling at one memory budget.

Cheap by design: peaks are estimates (``TiledRestorer``'s plan, ``estimate_peak_memory``), cost is
MACs with the overlaps' extra pixels, PSNR is on the full-size held-out photos restored with the
2048x1080 plan's tiles. ``benchmarks/deploy.py`` measures the same table (real live bytes, CPU
latency) and ONNX Runtime's peak.
"""
from __future__ import annotations

import logging

import torch

from ..data import DenoiseDataset
from ..loops import evaluate
from ..macs import count_macs
from ..memory import estimate_peak_memory

__all__ = ["deploy_section"]

log = logging.getLogger(__name__)
MB = 2 ** 20


def _mosp_floor(dense: torch.nn.Module, budget: float, shape: tuple[int, ...]) -> str | None:
    """``None`` when MOSP alone can reach ``budget`` of the dense peak, else why not (its floor)."""
    from ..channels.mosp import MOSPOptions, MOSPPruner

    try:
        MOSPPruner(dense, torch.rand(1, *shape[1:2], 64, 64), budget,
                   options=MOSPOptions(memory_input_size=shape, min_channels=1))
    except ValueError as exc:
        return str(exc).splitlines()[0]
    return None


def deploy_section(dense: torch.nn.Module, pruned: dict[str, torch.nn.Module], *, sigma: float, seed: int,
                   memory_size: tuple[int, int], budget: float = 0.25, val_size: int | None = None,
                   alone: torch.nn.Module | None = None) -> dict:
    """A report section: for a budget of ``budget`` x the dense net's estimated peak at
    ``memory_size``, each of {MOSP alone, each model of ``pruned`` untiled, tiling alone on the
    dense net, each pruned model tiled}: estimated peak, budget met, PSNR/SSIM on the held-out
    photos (full size, or centre ``val_size`` crops) and GMACs at ``memory_size`` counting the
    tiles' overlaps. ``alone``: a MOSP net pruned to ``budget`` itself, if the run has one."""
    from ..deploy import TiledRestorer, WithTiles

    if not 0 < budget < 1:
        raise ValueError(f"budget must be a ratio in (0, 1) of the dense peak, got {budget!r}")
    h, w = memory_size
    shape = (1, 3, h, w)
    models = {"dense": dense, **pruned}
    peaks = {name: estimate_peak_memory(model, shape).peak_bytes for name, model in models.items()}
    dense_peak = peaks["dense"]
    budget_bytes = int(budget * dense_peak)
    photos = DenoiseDataset("val", sigma=sigma, val_size=val_size, seed=seed)
    label = f"{budget:.0%} of dense"
    if alone is not None:
        peak = estimate_peak_memory(alone, shape).peak_bytes
        rows = [{"method": "MOSP alone", "budget": label, "peak_mb_est": peak / MB, "budget_met": peak <= budget_bytes,
                 "macs_g": count_macs(alone, shape) / 1e9, **evaluate(alone, photos)}]
    else:
        floor = _mosp_floor(dense, budget, shape)
        rows = [{"method": "MOSP alone", "budget": label, "budget_met": False if floor else None,
                 "note": floor or f"reachable; not run (add {budget:g} to the demo's budgets, as the full preset does)"}]
    tiled = []
    for name, model in models.items():
        peak = peaks[name]
        macs = count_macs(model, shape) / 1e9
        rows.append({"method": f"{name}, untiled", "budget": label, "peak_mb_est": peak / MB,
                     "budget_met": peak <= budget_bytes, "macs_g": macs, **evaluate(model, photos)})
        restorer = TiledRestorer(model, budget_bytes, image_size=(h, w), scheduled=False)
        plan = restorer.plan(h, w)
        what = "tiling alone (dense)" if name == "dense" else f"{name} + tiling"
        tiled.append({"method": what, "budget": label, "peak_mb_est": plan.total / MB,
                      "budget_met": plan.total <= budget_bytes, "macs_g": macs * (1 + plan.overhead),
                      "tiles": f"{plan.n_tiles} x {plan.tiles.tile}px, overlap {plan.tiles.overlap}",
                      **evaluate(WithTiles(restorer, plan.tiles), photos)})
    rows += tiled
    text = (f"Budget: {budget:.0%} of the dense net's estimated peak at 1x3x{h}x{w} ({budget_bytes / MB:.1f} MiB). "
            "Tiled rows: TiledRestorer's largest tile whose estimated peak (the full-size output included, "
            "the caller's input not) fits, with the measured receptive field as overlap; GMACs count the "
            f"overlaps' extra pixels. PSNR on the {'full-size' if val_size is None else f'{val_size}px centres of the'} held-out photos ({', '.join(photos.names)}) restored "
            "with the 2048x1080 plan's tiles. Measured peaks (live bytes), CPU latency and ONNX Runtime's "
            "peak: `python benchmarks/deploy.py --out DIR` (README, Deploy).")
    return {"title": f"Deploy: MOSP vs tiling vs both at {budget:.0%} of the dense peak", "text": text,
            "rows": rows}
