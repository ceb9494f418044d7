"""L1 filter pruning at matched MACs through Torch-Pruning (with the project's PixelShuffle rules)."""
from __future__ import annotations

import copy

import pytest
import torch

from ir_prune_plugin.archs import build_arch
from ir_prune_plugin.channels.filter_l1 import l1_filter_prune
from ir_prune_plugin.macs import total_macs
from ir_prune_plugin.sparsity import n_for_budget


@pytest.mark.slow
def test_l1_filter_reaches_target_and_is_physically_smaller():
    model = build_arch("edsr", num_feat=16, num_block=2, upscale=2)
    before = copy.deepcopy(model.state_dict())
    x = torch.rand(1, 3, 12, 12)
    dense = total_macs(model, x)
    pruned = l1_filter_prune(model, x, 0.5 * dense, iters=4)
    assert total_macs(pruned, x) <= 0.5 * dense
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in model.parameters())
    assert pruned(x).shape == (1, 3, 24, 24)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    with pytest.raises(ValueError, match="target_macs"):
        l1_filter_prune(model, x, 2 * dense)


def test_n_for_budget():
    assert n_for_budget(0.25, 32) == 8 and n_for_budget(0.3, 8) == 2 and n_for_budget(0.01, 8) == 1
    with pytest.raises(ValueError, match="macs_budget"):
        n_for_budget(1.5, 8)
