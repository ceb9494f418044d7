"""The channel engine's group model on Torch-Pruning: build a ``tp.DependencyGraph`` with our rules,
list coupled channel groups, find the layers that feed the output, and remove channels.

Torch-Pruning reads the network from autograd, so on a frozen model (``requires_grad=False``
everywhere) build and step a pruner inside ``with requires_grad_kept(model, trace=True):``;
the helpers here do so themselves, and the pruned layers keep the caller's flags.

A Torch-Pruning user adds one call::

    pruner = tp.pruner.MetaPruner(model, x, CompactorMagnitudeImportance(), pruning_ratio=0.5,
                                  **tp_kwargs(model, x))

``tp_kwargs`` registers the customized pruners (:mod:`.tp_rules`), makes Compactor / PixelShuffle
group roots and ignores the layers that produce the network output.
"""
from __future__ import annotations

import contextlib
import copy
import logging
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Mapping, Sequence

import torch
import torch_pruning as tp
from torch import nn
from torch_pruning import ops
from torch_pruning.dependency import index_mapping as _tp_index_mapping
from torch_pruning.dependency import shape_infer as _tp_shape_infer

from ..inputs import check_example_inputs
from ..vocabulary import as_tuple
from .deadline import time_limit
from .rules import prepare_model
from .rules.mixing import op_name, unsafe_layers
from .tp_rules import ROOT_MODULE_TYPES, customized_pruners, install_index_mapping_rule

__all__ = ["ChannelGroup", "UnsupportedArchitectureError", "build_dependency_graph", "channel_groups",
           "output_layers", "prune_channels", "read_group", "requires_grad_kept", "tp_kwargs"]

_log = logging.getLogger(__name__)

ExampleInputs = Any  # a tensor, or a tuple of tensors passed positionally


class UnsupportedArchitectureError(ValueError):
    """The traced graph contains operations the channel-dependency rules do not model."""


# --------------------------------------------------------------------------- graph helpers
def _resolve_layers(model: nn.Module, layers: Iterable[nn.Module | str] | None) -> list[nn.Module]:
    named = dict(model.named_modules())
    out = []
    for layer in layers or ():
        if isinstance(layer, str):
            if layer not in named:
                raise ValueError(f"ignored layer {layer!r} is not a module of the model; "
                                 f"examples of valid names: {list(named)[1:6]}")
            out.append(named[layer])
        elif isinstance(layer, nn.Module):
            out.append(layer)
        else:
            raise TypeError(f"ignored_layers entries must be modules or names, got {layer!r}")
    return out


def _check_supported(graph: tp.DependencyGraph) -> None:
    """Raise UnsupportedArchitectureError for channel-mixing ops fed by prunable layers."""
    bad = []
    for node in graph.module2node.values():
        name = op_name(node.module, node.grad_fn)
        if name is None:
            continue
        if any(_tp_shape_infer.infer_out_channels_recursively(graph, n, [0]) for n in node.inputs):
            bad.append(name)
    if bad:
        raise UnsupportedArchitectureError(
            "Torch-Pruning dependency rules cannot prune this network safely: the operation(s) "
            f"{sorted(set(bad))} mix or move channels of a prunable layer's output or weights "
            "(attention, token reshapes, functional pixel (un)shuffle, conv weights computed in "
            "forward as in re-parameterised blocks like ECBSR). Supported: conv/linear nets with "
            "concat and add skips, nn.PixelShuffle upsamplers and Compactors. Use the nn.PixelShuffle "
            "module instead of F.pixel_shuffle, or pass check=False to skip this check.")


@contextlib.contextmanager
def requires_grad_kept(model: nn.Module, *, trace: bool = False) -> Iterator[None]:
    """Give every parameter back its ``requires_grad`` flag (by name) on exit.

    Torch-Pruning reads the network from the autograd graph (module outputs' ``grad_fn``,
    parameters' ``AccumulateGrad``), which autograd records only for tensors that require grad:
    on a frozen model it sees almost nothing. ``trace=True`` makes every floating parameter
    require grad inside the block, so a frozen model traces like the trainable one. Its pruning
    functions also create fresh ``nn.Parameter``s (``requires_grad=True``); leaving the block
    restores the caller's flags on them.
    """
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    try:
        if trace:
            for p in model.parameters():
                if p.is_floating_point() or p.is_complex():
                    p.requires_grad_(True)
        yield
    finally:
        for n, p in model.named_parameters():
            if n in flags and p.requires_grad != flags[n]:
                p.requires_grad_(flags[n])


def build_dependency_graph(model: nn.Module, example_inputs: ExampleInputs, *,
                           check: bool = True) -> tp.DependencyGraph:
    """Build a ``tp.DependencyGraph`` with our rules; keeps the model's train/eval mode.

    Every layer is traced (as MetaPruner does): ignore layers when choosing groups, not here.
    ``check`` raises :class:`UnsupportedArchitectureError` for channel-mixing ops (attention).
    """
    inputs = as_tuple(example_inputs)
    install_index_mapping_rule()
    prepare_model(model, inputs, fuse=False)   # in-place activations off (same outputs)
    was_training = model.training
    try:
        with torch.enable_grad(), requires_grad_kept(model, trace=True), \
                time_limit(f"Torch-Pruning's dependency graph of {type(model).__name__}"):
            graph = tp.DependencyGraph().build_dependency(
                model, example_inputs=inputs, customized_pruners=customized_pruners(), verbose=False)
    finally:
        model.train(was_training)
    _tp_index_mapping.update_index_mapping(graph)   # with the construct rules
    if check:
        _check_supported(graph)
    return graph


def _touches_output(graph: tp.DependencyGraph, group: Any) -> bool:
    """True if the group changes a network output (an output op, or the output channels of a
    layer nothing consumes)."""
    return any(item.dep.target.type == ops.OPTYPE.OUTPUT
               or (not item.dep.target.outputs and graph.is_out_channel_pruning_fn(item.dep.handler))
               for item in group)


def output_layers(model: nn.Module, example_inputs: ExampleInputs, *,
                  graph: tp.DependencyGraph | None = None) -> list[str]:
    """Names of the layers whose output channels reach the network output (keep them)."""
    graph = graph or build_dependency_graph(model, example_inputs, check=False)
    names = []
    with time_limit(f"Torch-Pruning's channel groups of {type(model).__name__}"):
        for group in graph.get_all_groups(root_module_types=ROOT_MODULE_TYPES):
            if _touches_output(graph, group):
                for item in group:
                    m = item.dep.target.module
                    if graph.is_out_channel_pruning_fn(item.dep.handler) and isinstance(m, ROOT_MODULE_TYPES):
                        names.append(graph._module2name[m])
    return sorted(set(names))


def _unsafe_ignored(graph: tp.DependencyGraph, named: dict[str, nn.Module],
                    ignored: list[nn.Module]) -> list[nn.Module]:
    """Layers of groups through channel-mixing ops (to ignore); raise when nothing else is left."""
    with time_limit(f"Torch-Pruning's channel groups of {type(graph.model).__name__}"):
        unsafe = unsafe_layers(graph, ROOT_MODULE_TYPES)
        extra = [named[n] for n in unsafe if n in named]   # not unwrapped parameters
        left = [g for g in graph.get_all_groups(ignored_layers=ignored + extra, root_module_types=ROOT_MODULE_TYPES)
                if not _touches_output(graph, g)]
    if unsafe and not left:
        _check_supported(graph)   # raises, naming the ops
    if unsafe:
        ops_seen = sorted({o for found in unsafe.values() for o in found})
        _log.warning("Torch-Pruning: leaving %d layer(s) unpruned, their channels pass through channel-mixing "
                     "ops %s: %s", len(unsafe), ops_seen, ", ".join(sorted(unsafe)))
    return extra


def tp_kwargs(model: nn.Module, example_inputs: ExampleInputs | None = None, *,
              ignored_layers: Iterable[nn.Module | str] | None = None,
              keep_output_layers: bool = True, check: bool = True) -> dict[str, Any]:
    """Everything to pass to ``tp.pruner.MetaPruner`` / ``DependencyGraph.build_dependency``:
    ``customized_pruners``, ``root_module_types`` and ``ignored_layers``.

    With ``example_inputs`` the graph is traced once to ignore the layers that produce the
    output (``keep_output_layers``) and (``check``) the layers whose channel groups pass through
    channel-mixing ops such as attention (see :mod:`ir_prune_plugin.channels.rules.mixing`; they
    are logged), raising :class:`UnsupportedArchitectureError` when no prunable group is left.
    Run the pruner's step with :func:`ir_prune_plugin.channels.checked_step.checked_step` to
    forward-check (and roll back) every group it removes.
    Score channels with :class:`CompactorMagnitudeImportance`.
    """
    ignored = _resolve_layers(model, ignored_layers)
    if example_inputs is not None:
        check_example_inputs(model, example_inputs)
    prepare_model(model, example_inputs)   # before MetaPruner traces it (same outputs)
    if example_inputs is not None and (keep_output_layers or check):
        with time_limit(f"Torch-Pruning's analysis of {type(model).__name__}"):
            graph = build_dependency_graph(model, example_inputs, check=False)
            named = dict(model.named_modules())
            if keep_output_layers:
                ignored += [named[n] for n in output_layers(model, example_inputs, graph=graph)]
            if check:
                ignored += _unsafe_ignored(graph, named, ignored)
    install_index_mapping_rule()
    return {
        "customized_pruners": customized_pruners(),
        "root_module_types": list(ROOT_MODULE_TYPES),
        "ignored_layers": list(dict.fromkeys(ignored)),
    }


@dataclass(frozen=True)
class ChannelGroup:
    """Layers whose channels must be removed together (one Torch-Pruning group): the channel
    engine's one model of a group, used by :func:`channel_groups` and MOSP's units (:mod:`.units`).

    ``root`` names the layer whose output channels index the group (``channels`` of them);
    ``out_layers`` maps each module whose *output* channels shrink (the root included) to how many
    of its channels one root channel removes (1; r*r for a conv feeding a PixelShuffle; 0 for a
    layer that holds fewer channels than the root, such as one chunk of a split); ``in_layers``
    lists the layers whose *input* channels shrink; ``prunable`` is False when the group reaches
    the network output or an ignored layer.
    """

    root: str
    channels: int
    out_layers: Mapping[str, int] = field(default_factory=dict)
    in_layers: tuple[str, ...] = ()
    prunable: bool = True


def read_group(graph: tp.DependencyGraph, group: Any, names: Mapping[nn.Module, str],
               ignored: Iterable[nn.Module] = ()) -> ChannelGroup:
    """The :class:`ChannelGroup` of a full Torch-Pruning ``group`` (every channel of its root, as
    ``get_all_groups`` yields them); ``names`` maps the model's modules to their qualified names."""
    ignored = list(ignored)
    root = group[0].dep.target.module
    width = len(group[0].idxs)
    outs: dict[str, int] = {}
    ins: list[str] = []
    prunable = not _touches_output(graph, group)
    for item in group:
        m = item.dep.target.module
        if not isinstance(m, nn.Module) or m not in names:
            continue
        if graph.is_out_channel_pruning_fn(item.dep.handler):
            outs[names[m]] = max(outs.get(names[m], 0), len(item.idxs) // max(width, 1))
            prunable = prunable and not any(m is i for i in ignored)
        elif graph.is_in_channel_pruning_fn(item.dep.handler):
            ins.append(names[m])
    return ChannelGroup(root=names[root], channels=width, out_layers=outs, in_layers=tuple(dict.fromkeys(ins)),
                        prunable=prunable)


def channel_groups(model: nn.Module, example_inputs: ExampleInputs, *,
                   ignored_layers: Iterable[nn.Module | str] | None = None,
                   graph: tp.DependencyGraph | None = None) -> list[ChannelGroup]:
    """List the coupled channel groups of a model (roots: conv, linear, Compactor, PixelShuffle)."""
    ignored = _resolve_layers(model, ignored_layers)
    if graph is None:
        graph = build_dependency_graph(model, check_example_inputs(model, example_inputs))
    names = {m: n for n, m in model.named_modules()}
    with time_limit(f"Torch-Pruning's channel groups of {type(model).__name__}"):
        return [read_group(graph, group, names, ignored)
                for group in graph.get_all_groups(root_module_types=ROOT_MODULE_TYPES)]


def _check_plan(model: nn.Module, plan: Mapping[str, Sequence[int]]) -> dict[str, list[int]]:
    if not isinstance(plan, Mapping):
        raise TypeError(f"plan must map module names to channel indices, got {type(plan).__name__}")
    named = dict(model.named_modules())
    clean: dict[str, list[int]] = {}
    for name, idxs in plan.items():
        if name not in named:
            raise ValueError(f"plan names {name!r}, which is not a module of the model; "
                             f"prunable modules are e.g. {[n for n, m in named.items() if isinstance(m, ROOT_MODULE_TYPES)][:6]}")
        if not isinstance(named[name], ROOT_MODULE_TYPES):
            raise ValueError(f"plan names {name!r} ({type(named[name]).__name__}); only the output channels "
                             "of Conv/ConvTranspose/Linear/Compactor/PixelShuffle layers can be removed")
        if isinstance(idxs, torch.Tensor):
            idxs = idxs.tolist()
        vals = list(idxs)
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in vals):
            raise TypeError(f"channel indices for {name!r} must be ints, got {vals!r}")
        if len(set(vals)) != len(vals):
            raise ValueError(f"channel indices for {name!r} contain duplicates: {vals!r}")
        if vals:
            clean[name] = sorted(vals)
    return clean


def prune_channels(model: nn.Module, example_inputs: ExampleInputs,
                   plan: Mapping[str, Sequence[int]], *,
                   ignored_layers: Iterable[nn.Module | str] | None = None) -> nn.Module:
    """Physically remove output channels ``{module_name: [channel indices]}`` (and everything
    coupled to them) through Torch-Pruning groups; returns a pruned copy, ``model`` is untouched.

    Each entry must name the root of a different group (see :func:`channel_groups`); indices
    refer to the layer's current channels. For a conv that feeds a PixelShuffle, name the
    ``nn.PixelShuffle`` module (its channels are the blocks that move together).
    """
    inputs = check_example_inputs(model, example_inputs)
    clean = _check_plan(model, plan)
    work = copy.deepcopy(model)
    ignored_names = {n for n, m in model.named_modules() if any(m is i for i in _resolve_layers(model, ignored_layers))}
    graph = build_dependency_graph(work, inputs)
    named = dict(work.named_modules())
    groups = []
    claimed: dict[int, str] = {}
    for name, idxs in clean.items():
        layer = named[name]
        pruner = graph.get_pruner_of_module(layer)
        n = pruner.get_out_channels(layer) if layer in graph.module2node else None
        if n is None:
            raise ValueError(f"layer {name!r} is not reached by the forward pass (or its channel count "
                             "is unknown), so it cannot be pruned")
        if idxs[0] < 0 or idxs[-1] >= n:
            raise ValueError(f"channel indices for {name!r} must lie in [0, {n}), got {idxs}")
        if len(idxs) >= n:
            raise ValueError(f"plan removes all {n} output channels of {name!r}; keep at least one")
        group = graph.get_pruning_group(layer, pruner.prune_out_channels, idxs)
        for item in group:
            m, fn = item.dep.target.module, item.dep.handler
            if not graph.is_out_channel_pruning_fn(fn) or not isinstance(m, nn.Module) or m not in graph._module2name:
                continue
            mname = graph._module2name[m]
            if mname in ignored_names:
                raise ValueError(f"pruning {name!r} would change ignored layer {mname!r}")
            if m is layer and sorted(set(item.idxs)) != idxs:
                raise ValueError(f"pruning channels {idxs} of {name!r} would also remove "
                                 f"{sorted(set(item.idxs) - set(idxs))}: they move as a block "
                                 "(pixel shuffle); prune the nn.PixelShuffle module instead")
            if id(m) in claimed and claimed[id(m)] != name:
                raise ValueError(f"{name!r} and {claimed[id(m)]!r} are coupled (both change {mname!r}); "
                                 "give indices for only one of them")
            claimed[id(m)] = name
        if _touches_output(graph, group):
            raise ValueError(f"pruning {name!r} would change the number of output channels of the network")
        groups.append((layer, pruner))
    was_training = work.training
    with requires_grad_kept(work):
        for (layer, pruner), idxs in zip(groups, clean.values()):
            graph.get_pruning_group(layer, pruner.prune_out_channels, idxs).prune()
    try:
        with torch.no_grad():
            work.eval()
            work(*inputs)
    except Exception as exc:  # pragma: no cover - a rule gap; the caller's model is untouched
        raise UnsupportedArchitectureError(
            f"the pruned copy no longer runs ({type(exc).__name__}: {exc}); the original model is "
            "unchanged. This architecture has a channel dependency the rules do not model.") from exc
    finally:
        work.train(was_training)
    return work
