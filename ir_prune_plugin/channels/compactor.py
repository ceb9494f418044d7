"""Inserting MOSP compactors (:class:`~ir_prune_plugin.vocabulary.Compactor`, identity 1x1 convs;
:class:`~ir_prune_plugin.vocabulary.TokenCompactor` on ``(B, L, C)`` token skips) on skip
connections by rewriting a torch.fx graph, and replaying recorded sites on a fresh build."""
from __future__ import annotations

import copy
import logging
import operator
from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping, Sequence

import torch
import torch.fx as fx
from torch import nn
from torch.fx.passes.shape_prop import ShapeProp

from ..inputs import check_example_inputs
from ..archs.user_class import INIT_KWARGS_ATTR, SOURCE_CLASS_ATTR, read_init_kwargs
from ..vocabulary import SITES_ATTR, Compactor, TokenCompactor, as_tuple, pad_to_multiple
from .capture import trace_repairing

__all__ = ["CompactorGraphModule", "SkipSite", "find_skip_connections", "insert_compactors", "replay_compactors"]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- insertion
# Decision: compactors are inserted by rewriting a torch.fx GraphModule, not module internals.
# A skip is a *tensor* consumed twice (main branch + a later concat/add); only a graph rewrite
# can give the concat a different tensor than the main branch without editing forward code.
# The GraphModule keeps every submodule under its original name (state_dict keys unchanged,
# plus ``compactors.<site>.weight``), prints readably and is traceable by Torch-Pruning and
# torch.export. Tracing repairs what third-party nets need (see :mod:`.capture`): attributes
# assigned in forward, shape checks in blocks or helper functions become opaque leaves.

_CONCAT_TARGETS = {torch.cat, torch.concat, torch.concatenate}
_ADD_TARGETS = {operator.add, operator.iadd, torch.add}
_ADD_METHODS = {"add", "add_"}


@dataclass(frozen=True)
class SkipSite:
    """A skip connection in a traced graph: ``source`` (fx node name) feeds ``target`` (a
    concat or add), ``distance`` nodes later in execution order; ``channels`` of the tensor.
    ``rescaled``: the main branch changes spatial size in between (a U-Net skip);
    ``top_level``: the merge is written in the model's own ``forward`` (a global residual);
    ``layout``: ``'channels'`` for ``(N, C, H, W)`` tensors, ``'tokens'`` for ``(B, L, C)``
    token tensors concatenated on their last dimension (Uformer's skips; a
    :class:`~ir_prune_plugin.vocabulary.TokenCompactor` goes there)."""

    source: str
    target: str
    kind: str
    distance: int
    channels: int
    rescaled: bool = False
    top_level: bool = False
    layout: str = "channels"

    def is_long(self, min_distance: int) -> bool:
        """Long skip: spans ``min_distance`` nodes and a resolution change or the whole model."""
        return self.distance >= min_distance and (self.rescaled or self.top_level)

    @property
    def key(self) -> str:
        """Identifier accepted by ``insert_compactors(which=[...])``."""
        return f"{self.source}->{self.target}"


class CompactorGraphModule(fx.GraphModule):
    """A GraphModule that keeps its original containers (indexable Sequentials) and the
    ``irprune_*`` attributes (arch spec, compactor sites, N:M plan) through ``copy.deepcopy``
    (plain GraphModules rebuild containers and drop custom attributes there)."""

    def __deepcopy__(self, memo: dict[int, Any]) -> "CompactorGraphModule":
        res = super().__deepcopy__(memo)
        for name in list(res._modules):  # GraphModule re-creates plain containers: restore ours
            delattr(res, name)
        for name, child in self.named_children():
            res.add_module(name, copy.deepcopy(child, memo))
        type(res).__name__ = type(self).__name__  # keep "<Arch>WithCompactors" in printouts
        for k, v in self.__dict__.items():
            if k.startswith("irprune_"):
                setattr(res, k, copy.deepcopy(v, memo))
        return res


def _trace(model: nn.Module, leaf_functions: Sequence[Callable[..., Any]] = ()) -> fx.Graph:
    return trace_repairing(model, (pad_to_multiple, *leaf_functions))  # shape-dependent padding: opaque


def _merge_kind(node: fx.Node) -> str | None:
    if node.op == "call_function" and node.target in _CONCAT_TARGETS:
        return "concat"
    if (node.op == "call_function" and node.target in _ADD_TARGETS) or (
            node.op == "call_method" and node.target in _ADD_METHODS):
        return "add"
    return None


def _shape(node: fx.Node) -> tuple[int, ...] | None:
    shape = getattr(node.meta.get("tensor_meta"), "shape", None)
    return tuple(shape) if shape is not None else None


def _spatial(node: fx.Node) -> tuple[int, ...] | None:
    shape = _shape(node)
    return shape[2:] if shape is not None and len(shape) == 4 else None


def _is_token_concat(node: fx.Node) -> bool:
    """A concat of ``(B, L, C)`` tokens on the channel (last) dimension."""
    dim = node.args[1] if len(node.args) > 1 else node.kwargs.get("dim", 0)
    shape = _shape(node)
    return shape is not None and len(shape) == 3 and dim in (-1, 2)


def _site(n: fx.Node, u: fx.Node, between: list[fx.Node], distance: int) -> SkipSite | None:
    """The skip ``n -> u`` if ``u`` merges it: 4-D feature maps into a concat/add, or token
    tensors into a channel concat (token adds are the residuals inside transformer blocks)."""
    kind, shape, top = _merge_kind(u), _shape(n), not u.meta.get("nn_module_stack")
    if kind is None or shape is None:
        return None
    if len(shape) == 4:
        rescaled = any(_spatial(b) not in (None, shape[2:]) for b in between)
        return SkipSite(n.name, u.name, kind, distance, int(shape[1]), rescaled, top)
    if len(shape) == 3 and kind == "concat" and _is_token_concat(u):
        # rescaled: a token tensor of the same batch holds another number of tokens in between
        rescaled = any(len(b) == 3 and b[0] == shape[0] and b[1] != shape[1]
                       for b in (_shape(x) for x in between) if b is not None)
        return SkipSite(n.name, u.name, kind, distance, int(shape[2]), rescaled, top, "tokens")
    return None


def _find_sites(graph: fx.Graph) -> list[SkipSite]:
    nodes = list(graph.nodes)
    order = {n: i for i, n in enumerate(nodes)}
    sites = []
    for n in nodes:
        if n.op in ("placeholder", "get_attr", "output") or len(n.users) < 2:
            continue
        for u in n.users:
            site = _site(n, u, nodes[order[n] + 1:order[u]], order[u] - order[n])
            if site is not None:
                sites.append(site)
    return sites


def _select(sites: list[SkipSite], which: Any, min_distance: int) -> list[SkipSite]:
    if which == "long":
        return [s for s in sites if s.is_long(min_distance)]
    if which == "all":
        return list(sites)
    if callable(which):
        return [s for s in sites if which(s)]
    if isinstance(which, (list, tuple)) and all(isinstance(w, str) for w in which):
        known = {s.key for s in sites} | {s.source for s in sites}
        missing = [w for w in which if w not in known]
        if missing:
            raise ValueError(f"which names unknown skip sites {missing}; sites of this model: "
                             f"{[s.key for s in sites]}")
        return [s for s in sites if s.key in which or s.source in which]
    raise ValueError(f"which must be 'long', 'all', a callable(SkipSite) -> bool or a list of site "
                     f"keys ('source->target'), got {which!r}")


def _after_inplace_users(model: nn.Module, graph: fx.Graph, src: fx.Node, dst: fx.Node) -> fx.Node:
    """Where a compactor reading ``src`` goes: after ``src``, or after the last in-place module
    that overwrites ``src`` before ``dst`` (SPAN's ``SiLU(inplace=True)``: the skip carries the
    activated values, so must the compactor)."""
    order = {n: i for i, n in enumerate(graph.nodes)}
    anchor = src
    for u in src.users:
        if (u.op == "call_module" and u.args and u.args[0] is src and order[anchor] < order[u] < order[dst]
                and _is_inplace(model, str(u.target))):
            anchor = u
    return anchor


def _is_inplace(model: nn.Module, target: str) -> bool:
    try:
        return getattr(model.get_submodule(target), "inplace", False) is True
    except AttributeError:  # a compactor this rewrite inserted (added to the model at its end)
        return False


def _rewrite(model: nn.Module, graph: fx.Graph, sites: Sequence[SkipSite]) -> CompactorGraphModule:
    """Insert one Compactor per site right after its source; only ``target`` sees its output."""
    nodes = {n.name: n for n in graph.nodes}
    sources = [s.source for s in sites]
    compactors = nn.Module()
    ref = next(iter(model.parameters()), None)
    like = {"device": ref.device, "dtype": ref.dtype} if ref is not None else {}
    for s in sites:
        if s.source not in nodes or s.target not in nodes:
            raise ValueError(f"skip site {s.key} does not exist in the traced graph of "
                             f"{type(model).__name__}")
        name = s.source if sources.count(s.source) == 1 else f"{s.source}_{s.target}"
        layer = TokenCompactor if s.layout == "tokens" else Compactor
        compactors.add_module(name, layer(s.channels).to(**like))
        src, dst = nodes[s.source], nodes[s.target]
        with graph.inserting_after(_after_inplace_users(model, graph, src, dst)):
            comp = graph.call_module(f"compactors.{name}", (src,))
        dst.replace_input_with(src, comp)
    model.add_module("compactors", compactors)  # model is our private copy
    graph.lint()
    gm = CompactorGraphModule(model, graph, class_name=f"{type(model).__name__}WithCompactors")
    # fx rebuilds containers as plain nn.Modules holding only traced leaves; put the original
    # children back (same objects) so indexing (model.dec1[0]), printing and state_dict keys
    # stay those of the original network.
    for name in list(gm._modules):
        delattr(gm, name)
    for name, child in model.named_children():
        gm.add_module(name, child)
    for name, p in model.named_parameters(recurse=False):
        if name not in gm._parameters:
            gm.register_parameter(name, p)
    for name, b in model.named_buffers(recurse=False):
        if name not in gm._buffers:
            gm.register_buffer(name, b, persistent=name not in model._non_persistent_buffers_set)
    for k, v in vars(model).items():
        if k.startswith("irprune_"):
            setattr(gm, k, copy.deepcopy(v))
    setattr(gm, SITES_ATTR, [asdict(s) for s in sites])
    if not hasattr(gm, SOURCE_CLASS_ATTR):   # for save_pruned: the class this graph was made from
        setattr(gm, SOURCE_CLASS_ATTR, f"{type(model).__module__}:{type(model).__qualname__}")
        if not hasattr(gm, INIT_KWARGS_ATTR):
            setattr(gm, INIT_KWARGS_ATTR, read_init_kwargs(model))
    return gm


def find_skip_connections(model: nn.Module, example_inputs: Any, *,
                          leaf_functions: Sequence[Callable[..., Any]] = ()) -> list[SkipSite]:
    """All skip connections of a traceable model: tensors also consumed by a later concat/add."""
    inputs = as_tuple(example_inputs)
    work = copy.deepcopy(model).eval()
    graph = _trace(work, leaf_functions)
    with torch.no_grad():
        ShapeProp(fx.GraphModule(work, graph)).propagate(*inputs)
    return _find_sites(graph)


def insert_compactors(model: nn.Module, example_inputs: Any, *, which: Any = "long",
                      min_distance: int = 6,
                      leaf_functions: Sequence[Callable[..., Any]] = ()) -> nn.Module:
    """Return a copy of ``model`` with an identity Compactor on each selected skip connection.

    ``which``: ``'long'`` (skips spanning at least ``min_distance`` graph nodes and either a
    resolution change -- the U-Nets' concat skips -- or the whole model, like a global residual
    add in the model's own forward; see ``SkipSite.is_long``), ``'all'``, a ``callable(SkipSite) -> bool`` or a list of site keys (see
    :func:`find_skip_connections`). The main branch keeps the original tensor; the result is a
    ``CompactorGraphModule`` whose ``irprune_compactors`` records the sites for replay.
    """
    if isinstance(min_distance, bool) or not isinstance(min_distance, int) or min_distance < 1:
        raise ValueError(f"min_distance must be a positive int, got {min_distance!r}")
    if getattr(model, SITES_ATTR, None):
        raise ValueError("model already has compactors (attribute irprune_compactors); insert them once")
    check_example_inputs(model, example_inputs)
    sites = _select(find_skip_connections(model, example_inputs, leaf_functions=leaf_functions),
                    which, min_distance)
    if not sites:
        log.warning("insert_compactors: no skip connection selected (which=%r, min_distance=%d) in %s",
                    which, min_distance, type(model).__name__)
    work = copy.deepcopy(model)
    return _rewrite(work, _trace(work, leaf_functions), sites)


def replay_compactors(model: nn.Module, sites: Sequence[Mapping[str, Any]], *,
                      leaf_functions: Sequence[Callable[..., Any]] = ()) -> nn.Module:
    """Re-insert compactors recorded in ``irprune_compactors`` on a fresh build of the same arch."""
    if not sites:
        return model
    try:
        parsed = [SkipSite(**{k: s[k] for k in ("source", "target", "kind", "distance", "channels")},
                           rescaled=bool(s.get("rescaled")), top_level=bool(s.get("top_level")),
                           layout=str(s.get("layout", "channels")))
                  for s in sites]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"malformed compactor sites {list(sites)!r}: {exc}") from exc
    bad = [s.layout for s in parsed if s.layout not in ("channels", "tokens")]
    if bad:
        raise ValueError(f"malformed compactor sites: layout must be 'channels' or 'tokens', got {bad}")
    work = copy.deepcopy(model)
    return _rewrite(work, _trace(work, leaf_functions), parsed)
