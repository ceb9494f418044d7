"""NNI 3.0 adapters: SLS and MOSP as NNI pruners, masks -> smaller models, budget sweeps.

Importing this package needs ``nni`` (``pip install ir-prune-plugin[nni]``); the core does not.
"""
from __future__ import annotations

from .config import register_compactor, validate_config_list
from .evaluator import l1_training_step, task_evaluator
from .mosp_pruner import NNIMOSPPruner
from .sls_pruner import NNISLSPruner
from .speedup import apply_masks, removable_channels, speedup

__all__ = ["NNIMOSPPruner", "NNISLSPruner", "apply_masks", "l1_training_step", "register_compactor",
           "removable_channels", "speedup", "task_evaluator", "validate_config_list"]
