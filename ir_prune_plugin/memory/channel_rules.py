"""Which prunable layer's output channels make up the channel dimension of each graph value."""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any, Callable

import torch
from torch import nn
from torch.fx import Node

from ..vocabulary import CHANNEL_PRUNABLE_TYPES, out_channels
from .liveness import module_path, op_name, tensor_leaves


@dataclass(frozen=True)
class Seg:
    """``t_ch`` consecutive channels of a tensor that come from all ``l_ch`` out-channels of
    ``layer`` (``layer=None``: fixed channels no layer can prune)."""

    layer: str | None
    t_ch: int
    l_ch: int


@dataclass(frozen=True)
class ChannelMap:
    """The channel dimension ``dim`` of a tensor as a concatenation of segments."""

    dim: int
    segs: tuple[Seg, ...]

    @property
    def channels(self) -> int:
        return sum(s.t_ch for s in self.segs)

    def layers(self) -> list[str]:
        return [s.layer for s in self.segs if s.layer is not None]


_CONV = {"conv1d": 1, "conv2d": 2, "conv3d": 3, "conv_transpose1d": 1, "conv_transpose2d": 2,
         "conv_transpose3d": 3, "convolution": None, "_convolution": None}
_SAME = {
    "relu", "relu_", "leaky_relu", "leaky_relu_", "gelu", "gelu_", "silu", "silu_", "sigmoid",
    "sigmoid_", "tanh", "tanh_", "hardtanh", "hardtanh_", "hardswish", "hardswish_",
    "hardsigmoid", "hardsigmoid_", "elu", "elu_", "selu", "selu_", "celu", "celu_", "softplus",
    "mish", "mish_", "prelu", "_prelu_kernel", "rrelu", "clamp", "clamp_", "clamp_min",
    "clamp_min_", "clamp_max", "clamp_max_", "dropout", "dropout_", "native_dropout",
    "feature_dropout", "alpha_dropout", "clone", "contiguous", "alias", "detach", "_to_copy",
    "to", "type_as", "lift_fresh_copy", "neg", "abs", "exp", "log", "sqrt", "rsqrt",
    "reciprocal", "square", "sign", "round", "floor", "ceil", "erf", "sin", "cos", "logit",
    "batch_norm", "_native_batch_norm_legit_no_training", "_native_batch_norm_legit",
    "native_batch_norm", "instance_norm", "group_norm", "native_group_norm", "layer_norm",
    "native_layer_norm", "softmax", "_softmax", "log_softmax", "_log_softmax",
    "max_pool1d", "max_pool2d", "max_pool3d", "max_pool1d_with_indices",
    "max_pool2d_with_indices", "max_pool3d_with_indices", "avg_pool1d", "avg_pool2d",
    "avg_pool3d", "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
    "_adaptive_avg_pool2d", "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
    "pad", "constant_pad_nd", "reflection_pad1d", "reflection_pad2d", "reflection_pad3d",
    "replication_pad1d", "replication_pad2d", "replication_pad3d", "upsample_nearest1d",
    "upsample_nearest2d", "upsample_nearest3d", "_upsample_nearest_exact1d",
    "_upsample_nearest_exact2d", "_upsample_nearest_exact3d", "upsample_linear1d",
    "upsample_bilinear2d", "upsample_bicubic2d", "upsample_trilinear3d",
    "_upsample_bilinear2d_aa", "_upsample_bicubic2d_aa", "roll", "flip", "pow", "pow_",
    "expand", "expand_as", "repeat_interleave_self_int"}
_BINARY = {"add", "add_", "sub", "sub_", "rsub", "mul", "mul_", "div", "div_", "maximum",
           "minimum", "where", "addcmul", "addcdiv", "lerp", "fmod", "remainder", "copy_",
           "atan2", "hypot", "logaddexp"}
_VIEWS = {"view", "_unsafe_view", "reshape", "reshape_as", "view_as", "flatten", "unflatten",
          "unsqueeze", "unsqueeze_", "squeeze", "squeeze_"}
_SLICES = {"slice", "narrow", "select", "split", "split_with_sizes", "chunk", "unbind",
           "tensor_split"}
_REDUCE = {"mean", "sum", "amax", "amin", "var", "std", "var_mean", "std_mean", "logsumexp",
           "norm", "linalg_vector_norm", "prod", "max", "min"}
_IGNORED = {"getitem", "sym_size", "sym_numel", "sym_stride", "_assert_tensor_metadata"}


def _val(node: Any) -> torch.Tensor | None:
    v = node.meta.get("val") if isinstance(node, Node) else None
    return v if isinstance(v, torch.Tensor) else None


def _arg(node: Node, pos: int, name: str, default: Any) -> Any:
    if len(node.args) > pos:
        return node.args[pos]
    return node.kwargs.get(name, default)


def _prod(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n


def _heads_view(m: ChannelMap, src: tuple[int, ...], out: tuple[int, ...]) -> ChannelMap | None:
    """A view that splits the channel dimension into ``(heads, c)`` (attention's
    ``b (head c) h w -> b head c (h w)``) or merges ``(heads, c)`` back: the map follows ``c``,
    each segment holding ``1/heads`` (or ``heads`` times) its tensor channels; else ``None``."""
    d = m.dim
    if len(out) > d + 1 and out[:d] == src[:d] and out[d] * out[d + 1] == src[d] \
            and _prod(out[d + 2:]) == _prod(src[d + 1:]) and out[d] > 1:
        heads = out[d]
        if all(s.t_ch % heads == 0 for s in m.segs):
            return ChannelMap(d + 1, tuple(Seg(s.layer, s.t_ch // heads, s.l_ch) for s in m.segs))
    if d >= 1 and len(out) > d - 1 and out[:d - 1] == src[:d - 1] and src[d - 1] * src[d] == out[d - 1] \
            and _prod(src[d + 1:]) == _prod(out[d:]) and src[d - 1] > 1:
        heads = src[d - 1]
        return ChannelMap(d - 1, tuple(Seg(s.layer, s.t_ch * heads, s.l_ch) for s in m.segs))
    return None


def _norm_dim(d: int, ndim: int) -> int:
    return d + ndim if d < 0 else d


def _cut(m: ChannelMap, start: int, stop: int, dim: int) -> ChannelMap:
    """Channels ``[start, stop)`` of ``m``; partially covered segments become fixed."""
    segs, off = [], 0
    for s in m.segs:
        lo, hi = max(start, off), min(stop, off + s.t_ch)
        if hi > lo:
            full = lo == off and hi == off + s.t_ch
            segs.append(s if full else Seg(None, hi - lo, 0))
        off += s.t_ch
    return ChannelMap(dim, tuple(segs))


class ChannelPropagator:
    """Walks graph nodes in order, giving each output a :class:`ChannelMap` or ``None``.

    Also collects coupled layers (added / multiplied together: equal widths), pinned layers
    (tied to a fixed-width tensor), and ops with no channel rule (warned once, counted).
    """

    def __init__(self, modules: dict[str, nn.Module], params: dict[str, str] | None = None) -> None:
        self.modules = modules
        #: placeholder name -> parameter's qualified name (``ExportedProgram.graph_signature``): names
        #: the layer of a conv/linear whose module stack stops above it (a leaf block of an fx rewrite)
        self.params = params or {}
        self.types = CHANNEL_PRUNABLE_TYPES
        self.maps: dict[Node, list[ChannelMap | None]] = {}
        self.parent: dict[str, str] = {}
        self.pinned: set[str] = set()
        self.unsupported: dict[str, int] = {}
        self.layer_channels: dict[str, int] = {}
        self.layer_order: dict[str, int] = {}

    # -- union-find over layer names -------------------------------------------------------
    def _find(self, a: str) -> str:
        while self.parent.setdefault(a, a) != a:
            self.parent[a] = self.parent[self.parent[a]]
            a = self.parent[a]
        return a

    def couple(self, a: str, b: str) -> None:
        """Record that layers ``a`` and ``b`` must keep equal output widths."""
        ra, rb = self._find(a), self._find(b)
        if ra != rb:
            self.parent[rb] = ra

    def coupled_sets(self) -> list[frozenset[str]]:
        """Sets of two or more layers that must prune together."""
        sets: dict[str, set[str]] = {}
        for a in list(self.parent):
            sets.setdefault(self._find(a), set()).add(a)
        out = [frozenset(s) for s in sets.values() if len(s) > 1]
        return sorted(out, key=lambda s: min(self.layer_order.get(x, 0) for x in s))

    def _align(self, a: ChannelMap, b: ChannelMap | None, width: int) -> None:
        """Couple layers at equal channel positions of ``a`` and ``b`` (``None``: fixed)."""
        bsegs = b.segs if b is not None else (Seg(None, width, 0),)
        cuts = sorted({0} | {sum(s.t_ch for s in a.segs[:i + 1]) for i in range(len(a.segs))}
                      | {sum(s.t_ch for s in bsegs[:i + 1]) for i in range(len(bsegs))})
        for lo, hi in zip(cuts, cuts[1:]):
            la, lb = self._layer_at(a.segs, lo), self._layer_at(bsegs, lo)
            if la and lb:
                self.couple(la, lb)
            elif la or lb:
                self.pinned.add(la or lb)

    @staticmethod
    def _layer_at(segs: tuple[Seg, ...], pos: int) -> str | None:
        off = 0
        for s in segs:
            if off <= pos < off + s.t_ch:
                return s.layer
            off += s.t_ch
        return None

    # -- propagation ----------------------------------------------------------------------
    def run(self, nodes: list[Node]) -> None:
        """Propagate maps through ``nodes`` (placeholders get ``None``: fixed)."""
        for node in nodes:
            if node.op == "placeholder":
                self.maps[node] = [None]
            elif node.op == "call_function":
                self.maps[node] = self._visit(node)
            elif node.op == "output":
                for arg in node.all_input_nodes:
                    for m in self.maps.get(arg, ()):
                        if m is not None:
                            self.pinned.update(m.layers())
        for group in self.coupled_sets():  # a pinned layer pins everything coupled to it
            if group & self.pinned:
                self.pinned |= group

    def map_of(self, node: Any, index: int = 0) -> ChannelMap | None:
        """The map of output ``index`` of ``node`` (``None`` for constants and non-nodes)."""
        maps = self.maps.get(node) if isinstance(node, Node) else None
        return maps[index] if maps and index < len(maps) else None

    def _visit(self, node: Node) -> list[ChannelMap | None]:
        name = op_name(node)
        val = node.meta.get("val")
        outs = tensor_leaves(val)
        if name == "getitem":
            return [self.map_of(node.args[0], node.args[1])]
        if not outs:
            return [None]
        rule: Callable[[Node, Any], list[ChannelMap | None]] | None = None
        if name in _CONV or name == "linear":
            rule = self._layer
        elif name in _SAME:
            rule = self._same
        elif name in _BINARY:
            rule = self._binary
        elif name == "cat" or name == "concat":
            rule = self._cat
        elif name in _VIEWS:
            rule = self._view
        elif name in ("matmul", "bmm", "mm"):
            rule = self._matmul
        elif name in ("permute", "transpose", "transpose_", "t", "movedim", "swapaxes"):
            rule = self._permute
        elif name in _SLICES:
            rule = self._slice
        elif name in ("pixel_shuffle", "pixel_unshuffle"):
            rule = self._shuffle
        elif name in _REDUCE:
            rule = self._reduce
        if rule is not None:
            return rule(node, val)
        if name not in _IGNORED and any(m is not None for a in node.all_input_nodes
                                        for m in self.maps.get(a, ())):
            if name not in self.unsupported:
                warnings.warn(f"memory groups: no channel rule for op '{name}' (node "
                              f"{node.name}); its output counts as fixed width", stacklevel=3)
            self.unsupported[name] = self.unsupported.get(name, 0) + 1
        return [None] * len(outs)

    def _layer(self, node: Node, val: Any) -> list[ChannelMap | None]:
        path = module_path(node)
        mod = self.modules.get(path)
        weight = node.args[1] if len(node.args) > 1 and isinstance(node.args[1], Node) else None
        owner = self.params.get(weight.name, "").rpartition(".")[0] if weight is not None else ""
        if not isinstance(mod, self.types) and isinstance(self.modules.get(owner), self.types):
            path, mod = owner, self.modules[owner]
        if not isinstance(val, torch.Tensor) or not isinstance(mod, self.types):
            return [None]
        name = op_name(node)
        if name == "linear":
            dim = val.ndim - 1
        else:
            spatial = _CONV.get(name) or (_val(node.args[1]).ndim - 2 if _val(node.args[1]) is not None else 2)
            dim = val.ndim - spatial - 1
        c = out_channels(mod)
        if dim < 0 or val.shape[dim] != c:
            return [None]
        self.layer_channels[path] = c
        self.layer_order.setdefault(path, len(self.layer_order))
        return [ChannelMap(dim, (Seg(path, c, c),))]

    def _same(self, node: Node, val: Any) -> list[ChannelMap | None]:
        src, m = _val(node.args[0]) if node.args else None, self.map_of(node.args[0]) if node.args else None
        res = []
        for _, t in tensor_leaves(val):
            ok = (m is not None and src is not None and t.ndim == src.ndim
                  and t.shape[m.dim] == src.shape[m.dim])
            res.append(m if ok else None)
        return res

    def _binary(self, node: Node, val: Any) -> list[ChannelMap | None]:
        if not isinstance(val, torch.Tensor):
            return [None]
        ops = [a for a in node.args if isinstance(a, Node) and _val(a) is not None]
        mapped = []
        for a in ops:
            m, v = self.map_of(a), _val(a)
            if m is not None:
                od = m.dim + val.ndim - v.ndim
                if v.shape[m.dim] == val.shape[od] and val.shape[od] > 1:
                    mapped.append((a, ChannelMap(od, m.segs)))
        if not mapped:
            return [None]
        first = mapped[0][1]
        width = val.shape[first.dim]
        for a in ops:
            if a is mapped[0][0]:
                continue
            other = next((m for b, m in mapped if b is a), None)
            v = _val(a)
            k = first.dim - (val.ndim - v.ndim)
            if other is not None and other.dim == first.dim:
                self._align(first, other, width)
            elif other is None and 0 <= k < v.ndim and v.shape[k] == width:
                self._align(first, None, width)
        return [first]

    def _cat(self, node: Node, val: Any) -> list[ChannelMap | None]:
        parts = [a for a in node.args[0] if isinstance(a, Node)]
        maps = [self.map_of(a) for a in parts]
        ref = next((m for m in maps if m is not None), None)
        if ref is None or not isinstance(val, torch.Tensor):
            return [None]
        dim = _norm_dim(_arg(node, 1, "dim", 0), val.ndim)
        if dim == ref.dim:
            segs: list[Seg] = []
            for a, m in zip(parts, maps):
                segs.extend(m.segs if m is not None else (Seg(None, _val(a).shape[dim], 0),))
            return [ChannelMap(dim, tuple(segs))]
        for m in maps:
            if m is not ref:
                self._align(ref, m, val.shape[ref.dim])
        return [ref]

    def _view(self, node: Node, val: Any) -> list[ChannelMap | None]:
        m, src = self.map_of(node.args[0]), _val(node.args[0])
        if m is None or src is None or not isinstance(val, torch.Tensor):
            return [None]
        d = m.dim
        if val.ndim > d and tuple(val.shape[:d + 1]) == tuple(src.shape[:d + 1]):
            return [m]
        tail = src.ndim - d
        if val.ndim >= tail and tuple(val.shape[val.ndim - tail:]) == tuple(src.shape[d:]):
            return [ChannelMap(val.ndim - tail, m.segs)]
        return [_heads_view(m, tuple(src.shape), tuple(val.shape))]

    def _matmul(self, node: Node, val: Any) -> list[ChannelMap | None]:
        """``a @ b``: rows of the product are ``a``'s rows, columns ``b``'s columns (the
        contracted dimension leaves). A product of two mapped tensors (attention scores) is priced
        linearly in ``a``'s channels, an over-estimate when both shrink."""
        if not isinstance(val, torch.Tensor) or val.ndim < 2 or len(node.args) < 2:
            return [None]
        a, b = (self.map_of(x) for x in node.args[:2])
        va, vb = _val(node.args[0]), _val(node.args[1])
        if a is not None and va is not None and va.ndim >= 2 and a.dim == va.ndim - 2:
            return [ChannelMap(val.ndim - 2, a.segs)]
        if b is not None and vb is not None and vb.ndim >= 2 and b.dim == vb.ndim - 1:
            return [ChannelMap(val.ndim - 1, b.segs)]
        return [None]

    def _permute(self, node: Node, val: Any) -> list[ChannelMap | None]:
        m, src = self.map_of(node.args[0]), _val(node.args[0])
        if m is None or src is None or not isinstance(val, torch.Tensor):
            return [None]
        name, n = op_name(node), src.ndim
        order = list(range(n))
        if name == "permute":
            order = [_norm_dim(d, n) for d in node.args[1]]
        elif name in ("transpose", "transpose_", "swapaxes") or (name == "t" and n == 2):
            a, b = (_norm_dim(d, n) for d in (node.args[1:3] if name != "t" else (0, 1)))
            order[a], order[b] = order[b], order[a]
        else:
            return [None]
        return [ChannelMap(order.index(m.dim), m.segs)]

    def _slice(self, node: Node, val: Any) -> list[ChannelMap | None]:
        m, src = self.map_of(node.args[0]), _val(node.args[0])
        leaves = tensor_leaves(val)
        if m is None or src is None:
            return [None] * len(leaves)
        name = op_name(node)
        dim = _norm_dim(_arg(node, 1, "dim", 0), src.ndim) if name in ("slice", "narrow", "select") \
            else _norm_dim(_arg(node, 2, "dim", 0), src.ndim)
        if name == "unbind":
            dim = _norm_dim(_arg(node, 1, "dim", 0), src.ndim)
        if dim != m.dim:
            shift = 1 if name in ("select", "unbind") and dim < m.dim else 0
            return [ChannelMap(m.dim - shift, m.segs) for _ in leaves]
        if name in ("select", "unbind"):
            return [None] * len(leaves)
        if name in ("slice", "narrow"):
            if name == "slice" and _arg(node, 4, "step", 1) != 1:
                return [None]
            start = _arg(node, 2, "start", 0) or 0
            start = _norm_dim(start, src.shape[dim]) if start < 0 else min(start, src.shape[dim])
            return [_cut(m, start, start + val.shape[dim], dim)]
        sizes = [t.shape[dim] for _, t in leaves]
        if len(sizes) > 1 and len(set(sizes)) == 1 and len(m.segs) == 1 and m.segs[0].layer is not None:
            # equal chunks of one layer's output: the channel rules cut every chunk alike (the same
            # positions in each), so each chunk shrinks with the layer, at 1/n of its channels
            s = m.segs[0]
            return [ChannelMap(dim, (Seg(s.layer, sizes[0], s.l_ch),)) for _ in leaves]
        res, off = [], 0
        for size in sizes:
            res.append(_cut(m, off, off + size, dim))
            off += size
        return res

    def _shuffle(self, node: Node, val: Any) -> list[ChannelMap | None]:
        m = self.map_of(node.args[0])
        r2 = int(node.args[1]) ** 2
        if m is None or not isinstance(val, torch.Tensor) or m.dim != val.ndim - 3:
            return [None]
        segs = []
        for s in m.segs:
            if op_name(node) == "pixel_shuffle":
                segs.append(Seg(s.layer, s.t_ch // r2, s.l_ch) if s.t_ch % r2 == 0
                            else Seg(None, s.t_ch // r2, 0))
            else:
                segs.append(Seg(s.layer, s.t_ch * r2, s.l_ch))
        return [ChannelMap(m.dim, tuple(segs))]

    def _reduce(self, node: Node, val: Any) -> list[ChannelMap | None]:
        m, src = self.map_of(node.args[0]), _val(node.args[0])
        leaves = tensor_leaves(val)
        dims = _arg(node, 1, "dim", None)
        if m is None or src is None or dims is None or not isinstance(dims, (int, list, tuple)):
            return [None] * len(leaves)
        dims = [dims] if isinstance(dims, int) else list(dims)
        dims = [_norm_dim(d, src.ndim) for d in dims]
        if not dims or m.dim in dims:
            return [None] * len(leaves)
        keep = bool(_arg(node, 2, "keepdim", False))
        new = m.dim if keep else m.dim - sum(d < m.dim for d in dims)
        return [ChannelMap(new, m.segs) for _ in leaves]
