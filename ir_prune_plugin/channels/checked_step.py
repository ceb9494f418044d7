"""One Torch-Pruning step where every group is forward-checked and rolled back if it breaks.

The drop-in for Torch-Pruning users::

    pruner = tp.pruner.MetaPruner(model, x, CompactorMagnitudeImportance(), pruning_ratio=0.5,
                                  **tp_kwargs(model, x))
    report = checked_step(pruner, x)      # instead of pruner.step()

Each group the pruner proposes is removed, then the model runs at ``x`` in eval and train mode;
a group that makes the forward fail or changes an output shape is undone in place (model and
graph) and listed in the report with the layer and operation that failed. The model that
``pruner`` holds always runs afterwards.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from torch import nn

from .deadline import time_limit
from .safety import check_forward, prune_group_checked, reference_shapes

__all__ = ["StepReport", "checked_step"]


@dataclass
class StepReport:
    """What :func:`checked_step` did: group roots removed, and roots left alone with the reason."""

    pruned: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)


def checked_step(pruner: Any, example_inputs: Any, *, strict: bool = False) -> StepReport:
    """Run ``pruner.step()`` (a ``tp.pruner.MetaPruner``) group by group with forward checks.

    ``strict``: raise :class:`~.safety.BrokenForwardError` at the first group that breaks the
    forward (after rolling it back) instead of leaving it alone and going on.
    """
    model = getattr(pruner, "model", None)
    graph = getattr(pruner, "DG", None)
    if not isinstance(model, nn.Module) or graph is None or not callable(getattr(pruner, "step", None)):
        raise TypeError(f"pruner must be a torch_pruning MetaPruner (with .model, .DG, .step), "
                        f"got {type(pruner).__name__}")
    shapes = reference_shapes(model, example_inputs)
    report = StepReport()
    groups = pruner.step(interactive=True)
    while True:
        with time_limit(f"Torch-Pruning's group selection for {type(model).__name__}"):
            group = next(groups, None)
        if group is None:
            break
        root = graph._module2name.get(group[0].dep.target.module, str(group[0].dep.target))
        if not prune_group_checked(model, example_inputs, graph, lambda: group, root, f"removing channels of group {root!r}",
                                   shapes, report.refused, strict=strict):
            continue
        report.pruned.append(root)
    check_forward(model, example_inputs, shapes, change="Torch-Pruning step")
    return report
