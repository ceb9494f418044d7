"""Stream-coupled attention: q/k/v projections whose head split reads the width from the stream.

Window attention in Uformer-style blocks splits its projections into heads with a width taken
from the residual stream it reads, e.g. ``to_q(x).reshape(B, N, 1, heads, C // heads)`` with
``C = x.shape[-1]``. Its q/k/v channels pass through ``q @ k^T`` (a channel-mixing op), so they
are no unit of their own; and cutting the stream alone breaks the reshape. What is coupled is a
*count*, not positions: when the stream a block reads loses ``k`` channels, each q/k/v chunk of
width ``C`` must lose ``k`` too -- at the same positions in q and k (their dot product pairs
them), and v's positions must be the output projection's input columns. Removing the same
positions ``J`` from every chunk and from the output projection's input satisfies both; with
``h`` heads, ``J`` takes ``k / h`` positions from each head so every head keeps ``C' / h``.

Recognised by shape, not by name: a ``Linear`` that reads the stream (an input layer of the
stream's channel group), whose own output channels were left alone for a channel-mixing op and
whose output is ``m * C`` for its input width ``C`` (``m`` in 1..3: q, kv, qkv), paired with the
closest (by module path) ``Linear`` of width ``C -> C`` that writes into the stream. The heads
come from a ``num_heads``/``heads`` attribute of a module above the projection (else 1).
Whatever is wrong with that reading, the forward check after the removal rolls it back.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable, Mapping

import torch
import torch_pruning as tp
from torch import nn

__all__ = ["StreamAttention", "enclosing_heads", "find_stream_attention", "remove_stream_attention"]


@dataclass(frozen=True)
class StreamAttention:
    """One attention block whose q/k/v widths follow the width of the stream it reads."""

    projections: tuple[str, ...]   #: q/k/v ``Linear`` layers reading the stream
    chunks: tuple[int, ...]        #: q/k/v chunks of width ``C`` in each projection's output
    out_proj: str                  #: ``Linear`` reading the attention output (``C``) into the stream
    heads: int                     #: heads the chunks are split into


def _common_depth(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a.split("."), b.split(".")):
        if x != y:
            break
        n += 1
    return n


def enclosing_heads(model: nn.Module, name: str) -> int:
    """Heads of the attention around layer ``name``: the ``num_heads``/``heads`` int attribute of the
    closest module above it (else 1)."""
    parts = name.split(".")
    for i in range(len(parts) - 1, -1, -1):
        module = model.get_submodule(".".join(parts[:i]))
        for attr in ("num_heads", "heads"):
            h = getattr(module, attr, None)
            if isinstance(h, int) and not isinstance(h, bool) and h > 0:
                return h
    return 1


def find_stream_attention(model: nn.Module, readers: Iterable[str], writers: Iterable[str],
                          mixing: Mapping[str, str]) -> list[StreamAttention]:
    """Attention blocks of one channel group: ``readers`` are the layers whose input channels the
    group cuts, ``writers`` those whose output channels it cuts, ``mixing`` the layers left alone
    for a channel-mixing op (name -> reason)."""
    modules = dict(model.named_modules())
    writers = [w for w in writers if isinstance(modules.get(w), nn.Linear)]
    readers = list(readers)
    found: dict[str, list[tuple[str, int]]] = {}
    for name in readers:
        p = modules.get(name)
        if name not in mixing or not isinstance(p, nn.Linear):
            continue
        c = p.in_features
        if p.out_features % c or not 1 <= p.out_features // c <= 3:
            continue
        outs = [w for w in writers if w not in readers and modules[w].in_features == c
                and modules[w].out_features == c]
        if not outs:
            continue
        best = max(outs, key=lambda w: (_common_depth(w, name), w))
        if _common_depth(best, name) == 0:
            continue
        found.setdefault(best, []).append((name, p.out_features // c))
    return [StreamAttention(tuple(n for n, _ in ps), tuple(m for _, m in ps), out, enclosing_heads(model, ps[0][0]))
            for out, ps in sorted(found.items())]


def remove_stream_attention(model: nn.Module, att: StreamAttention) -> int:
    """Cut ``att``'s q/k/v chunks and output-projection input to the width its stream now has
    (read from the projections' input features, already cut); returns the channels removed per
    chunk. Positions: the smallest summed squared weights, the same in every chunk, evenly per head.
    """
    projs = [model.get_submodule(n) for n in att.projections]
    out = model.get_submodule(att.out_proj)
    width = out.in_features
    stream = {p.in_features for p in projs}
    if len(stream) != 1:
        raise ValueError(f"q/k/v projections {list(att.projections)} read streams of different widths {sorted(stream)}")
    k = width - stream.pop()
    if k <= 0:
        return 0
    h = att.heads
    if width % h or k % h:
        raise ValueError(f"attention {att.out_proj!r}: {k} of {width} q/k/v channels cannot be removed evenly "
                         f"from {h} heads")
    with torch.no_grad():
        score = out.weight.detach().double().pow(2).sum(0)
        for p, m in zip(projs, att.chunks):
            score = score + p.weight.detach().double().pow(2).sum(1).view(m, width).sum(0)
    d = width // h
    drop = sorted(hd * d + int(j) for hd in range(h) for j in torch.argsort(score[hd * d:(hd + 1) * d])[:k // h])
    for p, m in zip(projs, att.chunks):
        tp.prune_linear_out_channels(p, [c * width + j for c in range(m) for j in drop])
    tp.prune_linear_in_channels(out, drop)
    return k
