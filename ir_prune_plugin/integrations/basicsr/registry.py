"""Explicit, idempotent registration of our archs, datasets and model into BasicSR's registries."""
from __future__ import annotations

import logging

from ...compat import apply_basicsr_shims
from .archs import IRPruneResUNet, IRPruneSIDUNet
from .datasets import IRPruneDenoiseDataset, IRPruneSRDataset

log = logging.getLogger(__name__)


def register() -> list[str]:
    """Add IRPrune* archs, datasets and models to BasicSR; safe to call twice. Returns new names."""
    apply_basicsr_shims()  # basicsr (and our model, a BasicSR SRModel) are imported after the shims
    from basicsr.utils.registry import ARCH_REGISTRY, DATASET_REGISTRY, MODEL_REGISTRY

    from .model import IRPruneModel

    added = []
    for registry, objs in ((ARCH_REGISTRY, (IRPruneSIDUNet, IRPruneResUNet)),
                           (DATASET_REGISTRY, (IRPruneDenoiseDataset, IRPruneSRDataset)),
                           (MODEL_REGISTRY, (IRPruneModel,))):
        for obj in objs:
            name = obj.__name__
            if name in registry:
                if registry.get(name) is not obj:
                    log.warning("BasicSR %s registry already holds a different %r; keeping it",
                                registry._name, name)
                continue
            registry.register(obj)
            added.append(name)
    return added
