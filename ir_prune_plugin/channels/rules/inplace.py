"""In-place activations hide the layer before them from dependency tracing.

``nn.ReLU(inplace=True)`` after a conv rewrites the conv's output tensor, so its autograd node
is the ReLU's and Torch-Pruning's graph loses the conv (DRUNet: ``x + self.res(x)`` with an
in-place ReLU inside left a conv out of its residual group; the pruned model failed). Turning
``inplace`` off usually changes no output (only the activation's memory, which the peak-memory
estimate already models as out-of-place) -- but not when the pre-activation tensor is also used
elsewhere (SPAN returns a conv output that an in-place SiLU has overwritten). So with example
inputs the rule checks the output and puts the flags back if it changed.
"""
from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from ...vocabulary import as_tuple

__all__ = ["disable_inplace"]

log = logging.getLogger(__name__)


def disable_inplace(model: nn.Module, example_inputs: Any = None) -> list[str]:
    """Set ``inplace=False`` on every submodule that has a true ``inplace`` flag; their names.

    With ``example_inputs``, the flags are restored (and ``[]`` returned) when the eval-mode
    output changes: the net relies on the aliasing."""
    flagged = [(name, m) for name, m in model.named_modules() if getattr(m, "inplace", None) is True]
    if not flagged:
        return []
    before = _output(model, example_inputs) if example_inputs is not None else None
    for _, m in flagged:
        m.inplace = False
    changed = [name for name, _ in flagged]
    if before is not None and not torch.equal(_output(model, example_inputs), before):
        for _, m in flagged:
            m.inplace = True
        log.debug("in-place ops kept: the output relies on them (%s)", ", ".join(changed))
        return []
    if changed:
        log.debug("in-place ops turned off for dependency tracing: %s", ", ".join(changed))
    return changed


def _output(model: nn.Module, example_inputs: Any) -> torch.Tensor:
    was = model.training
    try:
        with torch.no_grad():
            out = model.eval()(*as_tuple(example_inputs))
    finally:
        model.train(was)
    return (out if isinstance(out, torch.Tensor) else next(t for t in (out.values() if isinstance(out, dict) else out)
                                                            if isinstance(t, torch.Tensor))).detach().clone()
