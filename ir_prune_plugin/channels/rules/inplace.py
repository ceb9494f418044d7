"""In-place activations hide the layer before them from dependency tracing.

``nn.ReLU(inplace=True)`` after a conv rewrites the conv's output tensor, so its autograd node
is the ReLU's and Torch-Pruning's graph loses the conv (DRUNet: ``x + self.res(x)`` with an
in-place ReLU inside left a conv out of its residual group; the pruned model failed). Turning
``inplace`` off changes no output (only the activation's memory, which the peak-memory
estimate already models as out-of-place), so the rule does it on the model being pruned.
"""
from __future__ import annotations

import logging

from torch import nn

__all__ = ["disable_inplace"]

log = logging.getLogger(__name__)


def disable_inplace(model: nn.Module) -> list[str]:
    """Set ``inplace=False`` on every submodule that has a true ``inplace`` flag; their names."""
    changed = []
    for name, m in model.named_modules():
        if getattr(m, "inplace", None) is True:
            m.inplace = False
            changed.append(name)
    if changed:
        log.debug("in-place ops turned off for dependency tracing: %s", ", ".join(changed))
    return changed
