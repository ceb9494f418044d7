"""NNI masks -> a physically smaller model, through Torch-Pruning (works where NNI's ModelSpeedup does not).

NNI pruners return masks as ``{module_name: {'weight': mask, 'bias': mask}}``. :func:`speedup`
first bakes every mask into its parameter (so fine-grained and N:M masks are kept exactly), then
removes each output channel that is masked in *every* layer that Torch-Pruning couples with it
(a residual add, a concat skip, a compactor, the r*r channels of a pixel-shuffle block ...).
Removing such a channel changes nothing: its activation is exactly zero, provided the element-wise
ops after it map 0 to 0 (ReLU, LeakyReLU, GELU, tanh -- not sigmoid; a BatchNorm is a coupled
producer and must be masked too). A channel masked in only some of its coupled producers stays
(zeroed), and channels that reach the network output are never removed, so the result has the
same output shape and computes what the masked model computes.

Every group removal is a checked change (:func:`~ir_prune_plugin.channels.safety.prune_group_checked`,
the same check MOSP and ``checked_step`` use): the copy runs at the example inputs in eval and
train mode after it, and a removal that breaks the forward or changes an output shape is rolled
back in place -- its channels stay, zeroed, so the result still computes the masked model -- and
logged with the layer and operation that failed (``strict=True`` raises
:class:`~ir_prune_plugin.channels.safety.BrokenForwardError` instead). The finished copy is
checked once more before it is returned. Groups whose channels pass through channel-mixing ops
(attention q/k/v, see :mod:`ir_prune_plugin.channels.rules.mixing`) keep their masked channels
(zeroed) instead of refusing the network, as MOSP does.
"""
from __future__ import annotations

import copy
import logging
from typing import Any, Iterator, Mapping

import torch
from torch import nn

from ...channels.rules.mixing import mixing_ops
from ...channels.safety import check_forward, prune_group_checked, reference_shapes
from ...channels.tp_graph import build_dependency_graph, output_layers, requires_grad_kept
from ...channels.tp_rules import ROOT_MODULE_TYPES

_log = logging.getLogger(__name__)

Masks = Mapping[str, Mapping[str, "torch.Tensor | None"]]


def _is_transposed(module: nn.Module) -> bool:
    return isinstance(module, nn.modules.conv._ConvTransposeNd)


def _out_channel_masked(module: nn.Module, target_masks: Mapping[str, torch.Tensor | None]) -> set[int]:
    """Output channels of ``module`` whose weight (and bias, if any) are masked to zero."""
    weight = getattr(module, "weight", None)
    wmask = target_masks.get("weight")
    if not isinstance(weight, torch.Tensor) or wmask is None:
        return set()
    wmask = wmask.to(torch.bool)
    if _is_transposed(module):
        # (in, out / groups, k...) -- only the groups == 1 layout maps dim 1 to output channels
        if getattr(module, "groups", 1) != 1:
            return set()
        alive = wmask.transpose(0, 1).reshape(wmask.shape[1], -1).any(dim=1)
    else:
        alive = wmask.reshape(wmask.shape[0], -1).any(dim=1)
    bias = getattr(module, "bias", None)
    if isinstance(bias, torch.Tensor):
        bmask = target_masks.get("bias")
        if bmask is None:
            return set()
        alive = alive | bmask.to(torch.bool).reshape(-1)
    return {int(i) for i in torch.nonzero(~alive).flatten()}


def _validate(model: nn.Module, masks: Masks) -> dict[str, nn.Module]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
    if not isinstance(masks, Mapping):
        raise TypeError(f"masks must be a dict {{module_name: {{'weight': mask, ...}}}}, got {type(masks).__name__}")
    wrapped = [n for n, m in model.named_modules() if hasattr(m, "_nni_wrapper")]
    if wrapped:
        raise ValueError(f"model is still wrapped by an NNI compressor (e.g. {wrapped[0]!r}); "
                         "call pruner.unwrap_model() before speedup()")
    modules = dict(model.named_modules())
    for name, targets in masks.items():
        if name not in modules:
            close = [n for n in modules if n and (n.endswith(name) or name.endswith(n))][:3]
            raise ValueError(f"masks name module {name!r}, which is not in the model"
                             + (f" (did you mean {close}?)" if close else ""))
        if not isinstance(targets, Mapping):
            raise TypeError(f"masks[{name!r}] must be a dict {{target_name: mask}}, got {type(targets).__name__}")
        for tname, mask in targets.items():
            if mask is None:
                continue
            param = getattr(modules[name], tname, None)
            if not isinstance(param, torch.Tensor):
                raise ValueError(f"masks[{name!r}] has a mask for {tname!r}, which module {name!r} does not have")
            if tuple(mask.shape) != tuple(param.shape):
                raise ValueError(f"masks[{name!r}][{tname!r}] has shape {tuple(mask.shape)}, "
                                 f"the parameter has {tuple(param.shape)}")
    return modules


def apply_masks(model: nn.Module, masks: Masks) -> None:
    """Multiply every masked parameter of ``model`` by its mask, in place (NNI's mask format)."""
    modules = _validate(model, masks)
    with torch.no_grad():
        for name, targets in masks.items():
            for tname, mask in targets.items():
                if mask is not None:
                    param = getattr(modules[name], tname)
                    param.mul_(mask.to(device=param.device, dtype=param.dtype))


def _plan(work: nn.Module, masks: Masks, example_inputs: Any):
    """Build the dependency graph of ``work`` and pick, per group root, the removable channels."""
    modules = dict(work.named_modules())
    masked = {n: _out_channel_masked(modules[n], t) for n, t in masks.items()}
    dg = build_dependency_graph(work, example_inputs, check=False)
    # Channels that reach the network output are never removed: that would change its shape.
    fixed = set(output_layers(work, example_inputs, graph=dg))
    mod2name = {m: n for n, m in modules.items()}

    def producers(group: Any) -> Iterator[tuple[str | None, Any]]:
        """(name, item) of the group's layers that lose output channels and own parameters."""
        for item in group:
            module, fn = item.dep.target.module, item.dep.handler
            if isinstance(module, nn.Module) and dg.is_out_channel_pruning_fn(fn) \
                    and next(module.parameters(recurse=False), None) is not None:
                yield mod2name.get(module), item

    def exact(group: Any) -> bool:
        """Every layer losing output channels in ``group`` has exactly those channels masked."""
        return all(name not in fixed and set(item.idxs) <= masked.get(name, set())
                   for name, item in producers(group))

    plan: dict[str, tuple[nn.Module, list[int]]] = {}
    for group in dg.get_all_groups(root_module_types=ROOT_MODULE_TYPES):
        root, fn = group[0].dep.target.module, group[0].dep.handler
        name = mod2name[root]
        mixing = mixing_ops(group)
        if mixing:   # attention q/k/v and the like: their masked channels stay (zeroed), as in MOSP
            _log.info("speedup leaves the channels of %r alone: they pass through %s", name, mixing)
            continue
        # A root channel (for a pixel shuffle: a block of its producer's channels) is a candidate
        # when every coupled producer has all of its channels for that root index masked.
        per_root: dict[int, bool] = {}
        for lname, item in producers(group):
            dead = masked.get(lname, set()) if lname not in fixed else set()
            for i, r in zip(item.idxs, item.root_idxs):
                per_root[r] = per_root.get(r, True) and i in dead
        candidates = sorted(r for r, ok in per_root.items() if ok)
        if candidates and not exact(dg.get_pruning_group(root, fn, candidates)):
            candidates = [c for c in candidates if exact(dg.get_pruning_group(root, fn, [c]))]
        if len(candidates) >= len(group[0].idxs):  # never empty a layer: keep one (zeroed) channel
            _log.warning("every channel of the group rooted at %r is masked; keeping one zero channel", name)
            candidates = candidates[1:]
        if candidates:
            plan[name] = (root, candidates)
    return plan, dg


def removable_channels(model: nn.Module, masks: Masks, example_inputs: Any) -> dict[str, list[int]]:
    """Per group root layer, the output channels :func:`speedup` would remove (the model is not changed)."""
    _validate(model, masks)
    plan, _ = _plan(copy.deepcopy(model), masks, example_inputs)
    return {name: idxs for name, (_, idxs) in plan.items()}


def speedup(model: nn.Module, masks: Masks, example_inputs: Any, *, strict: bool = False) -> nn.Module:
    """Return a physically smaller copy of ``model`` that computes what ``model`` with ``masks`` computes.

    ``masks`` is NNI's format ``{module_name: {'weight': mask, 'bias': mask}}`` (from ``compress()`` or
    ``get_masks()`` of any NNI pruner, ours included); the model must be unwrapped first
    (``pruner.unwrap_model()``). ``example_inputs`` (a tensor or tuple) is used to trace the model
    and to forward-check every removal in eval and train mode. A removal that breaks the forward
    is rolled back and its channels are kept (zeroed), or with ``strict`` raises
    :class:`~ir_prune_plugin.channels.safety.BrokenForwardError` naming the layer and operation.
    The caller's model is never modified.
    """
    _validate(model, masks)
    work = copy.deepcopy(model)
    apply_masks(work, masks)
    expected = reference_shapes(work, example_inputs)
    plan, dg = _plan(work, masks, example_inputs)
    removed, refused = 0, {}
    with requires_grad_kept(work):
        for name, (root, idxs) in plan.items():
            def group(root: nn.Module = root, idxs: list[int] = idxs) -> Any:
                return dg.get_pruning_group(root, dg.get_pruner_of_module(root).prune_out_channels, idxs)
            if prune_group_checked(work, example_inputs, dg, group, name,
                                   f"speedup removing {len(idxs)} masked channels of group {name!r}",
                                   expected, refused, strict=strict):
                removed += len(idxs)
    check_forward(work, example_inputs, expected, change="speedup")
    _log.info("speedup removed %d output channels in %d groups%s", removed, len(plan) - len(refused),
              f"; kept (zeroed) the masked channels of {sorted(refused)}: removing them broke the forward"
              if refused else "")
    return work
