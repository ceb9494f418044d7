"""Engine-neutral N:M sparsity: masks, the checker, SLS search, baselines, adaptive inference, export."""
from __future__ import annotations

from ..macs import kept_macs, layer_macs
from ..vocabulary import PLAN_ATTR
from .nm_pruner import FitOptions, NMPrunerBase
from .masks import FixedNMMask, ScoredNMMask, STENMMask, ordered_gate
from .nm import LayerNM, NMReport, apply_nm_plan, check_nm, eligible_layers, group_ranks, nm_mask, to_groups
from .adaptive import AdaptiveRestorer, TileOptions, compare_adaptive, laplacian_difficulty, macs_per_pixel
from .nm_baselines import NMOptions, OneShotNM, SRSTEPruner, n_for_budget
from .schedule import AnnealingSchedule
from .semi_structured import SemiStructuredConv2d, semi_structured_plan, to_semi_structured, why_not_semi_structured
from .sls import SLSOptions, SLSPruner

__all__ = ["PLAN_ATTR", "AdaptiveRestorer", "AnnealingSchedule", "FitOptions", "FixedNMMask",
           "LayerNM", "NMOptions", "NMPrunerBase", "NMReport", "OneShotNM", "SLSOptions",
           "SLSPruner", "SRSTEPruner", "STENMMask", "ScoredNMMask", "SemiStructuredConv2d",
           "TileOptions", "apply_nm_plan", "check_nm", "compare_adaptive", "eligible_layers",
           "group_ranks", "kept_macs", "laplacian_difficulty", "layer_macs", "macs_per_pixel",
           "n_for_budget", "nm_mask", "ordered_gate", "semi_structured_plan", "to_groups",
           "to_semi_structured", "why_not_semi_structured"]
