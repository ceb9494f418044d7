"""NNI 3.0 adapters: SLS and MOSP as NNI pruners, masks -> smaller models, budget sweeps.

Needs ``nni`` (``pip install ir-prune-plugin[nni]``); the core does not. Names are imported on
first use, so ``irprune --help`` and the trial entry do not pay for importing NNI up front.
"""
from __future__ import annotations

import importlib
from typing import Any

_NAMES = {
    "NNIMOSPPruner": "mosp_pruner", "NNISLSPruner": "sls_pruner",
    "apply_masks": "mask_speedup", "removable_channels": "mask_speedup", "speedup": "mask_speedup",
    "register_compactor": "config_list", "validate_config_list": "config_list",
    "l1_training_step": "evaluator", "task_evaluator": "evaluator",
    "SweepOptions": "launcher", "SweepResult": "launcher", "run_sweep": "launcher",
    "pareto_front": "launcher", "local_only_nni": "launcher",
    "TrialSettings": "trial", "run_trial": "trial",
}
__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name not in _NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_NAMES[name]}", __name__), name)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
