"""5-D ``expand`` that is not a grouped-query-attention repeat keeps the identity index mapping.

Torch-Pruning 1.6.1 reads every ``expand`` of a 5-D tensor as Hugging Face's ``repeat_kv``
(grouped-query attention) and maps indices with ``repeat = out_channels // in_channels``. Other
5-D expands -- the ones ``torch.einsum`` makes inside attention (OmniSR's ``"b h i d, b h j d"``)
-- give ``repeat == 0``, and building any group through them raised ``ZeroDivisionError``.
:func:`drop_non_repeat_expand_mappings` puts the identity mapping back there (the attention
product next to it stops the group anyway, see :mod:`.mixing`).
"""
from __future__ import annotations

from typing import Any

from torch_pruning import ops
from torch_pruning.dependency.index_mapping import _GQAIndexMapping

__all__ = ["drop_non_repeat_expand_mappings"]


def _clear(deps: Any) -> None:
    for dep in deps:
        mapping = dep.index_mapping[0]
        if isinstance(mapping, _GQAIndexMapping) and (mapping.repeat < 1 or mapping.head_dim < 1):
            dep.index_mapping[0] = None


def drop_non_repeat_expand_mappings(graph: Any) -> None:
    """Remove Torch-Pruning's GQA index mappings whose repeat or head size is below 1."""
    for node in graph.module2node.values():
        if node.type == ops.OPTYPE.EXPAND:
            _clear(node.dependencies)
            for in_node in node.inputs:
                _clear(d for d in in_node.dependencies if d.target is node)
