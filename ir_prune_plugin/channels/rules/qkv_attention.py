"""Free-standing q/k/v attention: the inner width of a fused q/k/v projection is a unit of its own.

Transposed attention (Restormer's MDTA) computes ``q, k, v = dw(qkv(x)).chunk(3, dim=1)``, splits
each chunk into a fixed number of heads (``b (head c) h w -> b head c (h w)``), multiplies
``q @ k^T`` (a ``c x c`` score per head), applies it to ``v`` and merges the heads back into
``project_out``. The q/k/v width ``C`` is independent of the residual stream (``qkv`` reads it,
``project_out`` writes it), but its channels pass through ``q @ k^T`` (a channel-mixing op,
:mod:`.mixing`), so Torch-Pruning's group for them is left alone -- and its index mapping through
the chunk and the head split is wrong anyway. What may go: the same positions ``J`` from each of
the three chunks (``q`` and ``k`` are paired by their product, ``v``'s positions are
``project_out``'s input columns), with ``J`` taking the same local positions in every head so each
head keeps the same width; a depthwise conv between the projection and the chunk follows 1:1.

So the unit's channels are the per-head positions ``j`` in ``[0, C / heads)``: one unit channel
is ``3 * heads`` output channels of the projection (and of the depthwise conv) and ``heads``
input channels of ``project_out``.

Recognised by construct, not by name: a conv/linear (optionally followed by a depthwise conv)
whose whole output goes into one split of three equal chunks, whose consumers reach exactly one
layer -- through ops only, a channel-mixing one among them -- that reads ``C`` channels. The heads
come from a ``num_heads``/``heads`` attribute of a module above the projection (else 1); a width
that the heads do not divide is refused with a message naming the layer. The removal is applied
with Torch-Pruning's layer functions and forward-checked by the caller (rolled back on failure).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

import torch
import torch_pruning as tp
from torch import nn
from torch_pruning import ops

from ...vocabulary import channel_dim, in_channels as _in, out_channels as _out
from .attention import enclosing_heads
from .mixing import op_name

__all__ = ["QKVAttention", "find_qkv_attention"]

_LAYERS = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.Linear)


def _is_depthwise(m: nn.Module) -> bool:
    return isinstance(m, (nn.Conv1d, nn.Conv2d, nn.Conv3d)) and m.groups > 1 \
        and m.groups == m.in_channels == m.out_channels


@dataclass(frozen=True)
class QKVAttention:
    """One attention block whose fused q/k/v width is a unit of its own."""

    proj: str            #: conv/linear writing q, k and v (``3 * C`` channels)
    dwconv: str | None   #: depthwise conv between ``proj`` and the chunk (channels follow 1:1)
    out_proj: str        #: layer reading the attention output (``C`` input channels)
    heads: int           #: heads each chunk is split into

    @property
    def last(self) -> str:
        """The layer whose output is chunked into q, k, v."""
        return self.dwconv or self.proj

    def head_width(self, model: nn.Module) -> int:
        """Current q/k/v channels per head (the unit's width)."""
        return _in(model.get_submodule(self.out_proj)) // self.heads

    def channels(self, model: nn.Module, local: Iterable[int]) -> tuple[list[int], list[int]]:
        """For per-head positions ``local``: (the projection's output channels, ``out_proj``'s
        input channels) they are, in the current numbering."""
        d = self.head_width(model)
        width = d * self.heads
        bad = sorted(int(j) for j in set(local) if not 0 <= int(j) < d)
        if bad:
            raise ValueError(f"q/k/v attention at {self.proj!r}: per-head positions {bad} are outside [0, {d}) "
                             f"(its {self.heads} heads have {d} channels each)")
        cols = sorted(hd * d + int(j) for hd in range(self.heads) for j in set(local))
        return [c * width + j for c in range(3) for j in cols], cols

    def scores(self, model: nn.Module) -> torch.Tensor:
        """Summed squared weights per head position (over heads, chunks and the layers involved)."""
        d = self.head_width(model)
        width = d * self.heads
        with torch.no_grad():
            total = torch.zeros(width, dtype=torch.float64)
            for name in (self.proj, self.dwconv):
                if name is not None:
                    w = model.get_submodule(name).weight.detach().double()
                    total += w.pow(2).reshape(w.shape[0], -1).sum(1).view(3, width).sum(0)
            w = model.get_submodule(self.out_proj).weight.detach().double()
            total += w.pow(2).transpose(0, 1).reshape(w.shape[1], -1).sum(1)
        return total.view(self.heads, d).sum(0)

    def remove(self, model: nn.Module, local: Sequence[int], graph: Any = None) -> None:
        """Remove per-head positions ``local`` (in place; the caller forward-checks). ``graph``:
        a ``tp.DependencyGraph`` of ``model`` whose chunk op sizes are kept in step."""
        rows, cols = self.channels(model, local)
        if not rows:
            return
        proj, out = model.get_submodule(self.proj), model.get_submodule(self.out_proj)
        (tp.prune_linear_out_channels if isinstance(proj, nn.Linear) else tp.prune_conv_out_channels)(proj, rows)
        if self.dwconv is not None:
            tp.prune_depthwise_conv_out_channels(model.get_submodule(self.dwconv), rows)
        (tp.prune_linear_in_channels if isinstance(out, nn.Linear) else tp.prune_conv_in_channels)(out, cols)
        if graph is not None:
            node = graph.module2node.get(model.get_submodule(self.last))
            width = _in(out)
            for nxt in node.outputs if node is not None else ():
                if nxt.type == ops.OPTYPE.SPLIT:
                    nxt.module.split_sizes = [width] * 3
                    nxt.module.offsets = [0, width, 2 * width, 3 * width]

    @contextlib.contextmanager
    def masked(self, model: nn.Module, local: Sequence[int]) -> Iterator[None]:
        """Temporarily compute what removing ``local`` computes: the chunked output loses those
        channels (so the heads split the narrower width) and ``out_proj`` reads zeros there."""
        rows, cols = self.channels(model, local)
        last, out = model.get_submodule(self.last), model.get_submodule(self.out_proj)
        keep_rows = torch.as_tensor(sorted(set(range(_out(last))) - set(rows)), dtype=torch.long)
        keep_cols = torch.as_tensor(sorted(set(range(_in(out))) - set(cols)), dtype=torch.long)
        width = _in(out)

        def narrow(module: nn.Module, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
            return output.index_select(channel_dim(module) % output.dim(), keep_rows.to(output.device))

        def widen(module: nn.Module, inputs: tuple) -> tuple:
            x, dim = inputs[0], channel_dim(module) % inputs[0].dim()
            shape = list(x.shape)
            shape[dim] = width
            full = x.new_zeros(shape).index_copy(dim, keep_cols.to(x.device), x)
            return (full, *inputs[1:])

        handles = [last.register_forward_hook(narrow), out.register_forward_pre_hook(widen)] if rows else []
        try:
            yield
        finally:
            for h in handles:
                h.remove()


def _reached_layers(start: Any, layers_of_model: set[int]) -> tuple[list[Any], bool]:
    """Nodes of the model's own modules (ids in ``layers_of_model``) reached from ``start`` through
    Torch-Pruning's op nodes only, and whether a channel-mixing op was passed."""
    seen, todo, layers, mixing = {id(start)}, [start], [], False
    while todo:
        node = todo.pop()
        for nxt in node.outputs:
            if id(nxt) in seen:
                continue
            seen.add(id(nxt))
            if id(nxt.module) in layers_of_model:
                layers.append(nxt)
                continue
            mixing = mixing or op_name(nxt.module, getattr(nxt, "grad_fn", None)) is not None
            todo.append(nxt)
    return layers, mixing


def find_qkv_attention(model: nn.Module, graph: Any, out_layers: Iterable[str]) -> QKVAttention | None:
    """The free-standing q/k/v attention whose Torch-Pruning group cuts the output channels of
    ``out_layers`` (names), or ``None`` when the group is not one. Raises ``ValueError`` naming the
    layer when it is one but its width does not split evenly into its heads."""
    modules = dict(model.named_modules())
    layers = [n for n in out_layers if isinstance(modules.get(n), _LAYERS)]
    if len(layers) != len(list(out_layers)) or not 1 <= len(layers) <= 2:
        return None
    dws = [n for n in layers if _is_depthwise(modules[n])]
    projs = [n for n in layers if not _is_depthwise(modules[n])]
    if len(projs) != 1 or len(dws) > 1:
        return None
    proj, dw = projs[0], (dws[0] if dws else None)
    pnode = graph.module2node.get(modules[proj])
    if pnode is None:
        return None
    if dw is not None:
        dnode = graph.module2node.get(modules[dw])
        if dnode is None or [n.module for n in pnode.outputs] != [modules[dw]]:
            return None
        pnode = dnode
    width3 = _out(modules[dw or proj])
    splits = [n for n in pnode.outputs if n.type == ops.OPTYPE.SPLIT]
    if len(pnode.outputs) != 1 or len(splits) != 1 or width3 % 3:
        return None
    sizes = list(getattr(splits[0].module, "split_sizes", None) or [])
    if len(sizes) != 3 or len(set(sizes)) != 1 or sum(sizes) != width3:
        return None
    reached, mixing = _reached_layers(splits[0], {id(m) for m in modules.values()})
    if len(reached) != 1 or not mixing or not isinstance(reached[0].module, _LAYERS):
        return None
    out = reached[0].module
    width = width3 // 3
    if _in(out) != width or getattr(out, "groups", 1) != 1:
        return None
    heads = enclosing_heads(model, proj)
    if width % heads:
        raise ValueError(f"q/k/v attention at {proj!r}: {width} channels per chunk do not split evenly into "
                         f"{heads} heads")
    names = {m: n for n, m in modules.items()}
    return QKVAttention(proj, dw, names[out], heads)
