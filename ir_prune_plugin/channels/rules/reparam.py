"""Re-parameterised convs (SPAN's ``Conv3XC``, RepVGG-style blocks): fused to deploy form first.

Such a block trains several branches and, in eval mode, *rebuilds* a single conv's weights from
them inside ``forward`` (``self.update_params()``). Channel pruning then fails to trace (weights
written during the forward) and N:M masks do not survive: the next forward overwrites the sparse
weights with dense ones (SLS on SPAN was silently undone on 19 convs). The plugin therefore
prunes the *deploy form*: :func:`fuse_reparam` computes the fused conv once and turns the block
into one that always runs its deploy path and never recomputes it. Branch convs the deploy path
does not use are removed. Eval-mode outputs are unchanged; train-mode forwards then train the
fused conv directly (as the deploy network would), which is what finetuning a pruned net needs.

Recognised: modules with a ``switch_to_deploy()`` / ``reparameterize()`` method (RepVGG,
MobileOne, ...) -- called as is -- and modules with ``update_params()`` plus an ``eval_conv``
child (SPAN, and nets built from its ``Conv3XC``). Blocks that compute conv weights in forward
without such a method (BasicSR's ECBSR: ``rep_params()``) are not fused; their convs are left
alone by the forward check.
"""
from __future__ import annotations

import logging
import torch
from torch import nn

__all__ = ["FUSED_ATTR", "fuse_reparam"]

log = logging.getLogger(__name__)

#: model attribute listing the fused blocks (for save/load replay)
FUSED_ATTR = "irprune_fused"
_SWITCH_METHODS = ("switch_to_deploy", "reparameterize")
_DEPLOYED: dict[type, type] = {}


def _deployed_class(cls: type) -> type:
    """A subclass of ``cls`` that stays in eval mode and never recomputes its fused conv."""
    if cls not in _DEPLOYED:
        def update_params(self: nn.Module) -> None:   # the fused weights are the parameters now
            return None

        def train(self: nn.Module, mode: bool = True) -> nn.Module:
            return nn.Module.train(self, False)

        _DEPLOYED[cls] = type(f"{cls.__name__}Deployed", (cls,), {
            "update_params": update_params, "train": train, "__module__": cls.__module__,
            "__doc__": f"{cls.__name__} fused to its deploy form by ir_prune_plugin."})
    return _DEPLOYED[cls]


def _fuse_one(module: nn.Module) -> bool:
    for meth in _SWITCH_METHODS:
        if callable(getattr(module, meth, None)):
            with torch.no_grad():
                getattr(module, meth)()
            return True
    if callable(getattr(module, "update_params", None)) and isinstance(getattr(module, "eval_conv", None), nn.Module):
        module.eval()
        with torch.no_grad():
            module.update_params()
        module.__class__ = _deployed_class(type(module))
        for name in [n for n, _ in module.named_children() if n != "eval_conv"]:
            delattr(module, name)   # the training branches: unused by the deploy path
        return True
    return False


def fuse_reparam(model: nn.Module) -> list[str]:
    """Fuse every recognised re-parameterised block of ``model`` in place; their names.

    Idempotent (fused blocks are recorded in ``model.irprune_fused``).
    """
    done: list[str] = list(getattr(model, FUSED_ATTR, None) or [])
    fused = []
    for name, m in list(model.named_modules()):
        if m is model or name in done or type(m) in _DEPLOYED.values():
            continue
        if _fuse_one(m):
            fused.append(name)
    if fused:
        log.info("fused %d re-parameterised block(s) to deploy form: %s", len(fused), ", ".join(fused))
        setattr(model, FUSED_ATTR, done + fused)
    return fused
