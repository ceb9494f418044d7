"""Engine-neutral N:M sparsity: masks, the checker, SLS search, baselines, adaptive inference, export."""
from __future__ import annotations

from ._base import PLAN_ATTR, FitOptions, NMPrunerBase
from .macs import kept_macs, layer_macs
from .masks import FixedNMMask, ScoredNMMask, STENMMask, ordered_gate
from .nm import LayerNM, NMReport, check_nm, eligible_layers, group_ranks, nm_mask, to_groups
from .schedule import AnnealingSchedule
from .sls import SLSOptions, SLSPruner

__all__ = ["PLAN_ATTR", "AnnealingSchedule", "FitOptions", "FixedNMMask", "LayerNM", "NMPrunerBase",
           "NMReport", "SLSOptions", "SLSPruner", "STENMMask", "ScoredNMMask", "check_nm",
           "eligible_layers", "group_ranks", "kept_macs", "layer_macs", "nm_mask", "ordered_gate",
           "to_groups"]
