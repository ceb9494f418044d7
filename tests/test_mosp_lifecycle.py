"""MOSP's lifecycle: the history is the plan; apply_history() replays it on a fresh copy (physically
or as NNI-style masks) and state_dict()/load_state_dict() resume a run."""
from __future__ import annotations

import copy
import json

import pytest
import torch
from torch import nn

from ir_prune_plugin.channels.history import MOSPHistory
from ir_prune_plugin.channels.mosp import MOSPPruner
from ir_prune_plugin.channels.plan_apply import apply_history
from tiny_unets import mosp_options as _opts, same_state, unet as _unet



def _same(a: nn.Module, b: nn.Module) -> bool:
    return same_state(a.state_dict(), b.state_dict())


@pytest.fixture(scope="module")
def run() -> tuple:
    """One MOSP run without compactors, shared by the tests below (the caller's model, x, pruner, result)."""
    model, x = _unet(), torch.rand(2, 3, 32, 32)
    pruner = MOSPPruner(model, x, 0.55, options=_opts(seed=3))
    return model, x, pruner, pruner.prune(progress=False)


@pytest.mark.parametrize("compactors", [False, True])
def test_history_applied_to_a_fresh_copy_equals_prune(compactors: bool, run: tuple) -> None:
    model, x, pruner, pruned = run
    if compactors:
        pruner = MOSPPruner(model, x, 0.6, options=_opts(compactors=True))
        pruned = pruner.prune(progress=False)
    plan = MOSPHistory.from_dict(json.loads(json.dumps(pruner.state_dict()["history"])))  # plain JSON
    assert plan.records and bool(plan.compactor_sites) == compactors
    fresh = _unet()  # the same weights, rebuilt
    applied = apply_history(fresh, plan, x)
    assert _same(applied, pruned) and _same(fresh, model), "same structure and weights; fresh untouched"
    torch.testing.assert_close(applied(x), pruned(x), rtol=0, atol=0)


def test_history_as_masks_computes_what_the_pruned_model_computes(run: tuple) -> None:
    model, x, pruner, pruned = run
    masks = apply_history(model, pruner.history, x, masks=True)
    small = dict(pruned.named_modules())
    assert masks and all(int(m["weight"].flatten(1).amax(1).sum()) == small[name].weight.shape[0]
                         for name, m in masks.items() if isinstance(small[name], nn.Conv2d))
    masked = copy.deepcopy(model)
    with torch.no_grad():
        for name, module in masked.named_modules():
            for key, mask in masks.get(name, {}).items():
                getattr(module, key).mul_(mask)
    torch.testing.assert_close(masked(x), pruned(x), rtol=1e-4, atol=1e-5)


def test_state_dict_mid_run_resumes_to_the_same_model(run: tuple) -> None:
    model, x, full, pruned = run
    state = full.state_dict()
    state["history"]["records"] = state["history"]["records"][: len(full.history.records) // 2]
    state["history"]["finished"] = False
    resumed = MOSPPruner(model, x, 0.55, options=_opts(seed=3))
    resumed.load_state_dict(json.loads(json.dumps(state)))
    assert _same(resumed.prune(progress=False), pruned)
    with pytest.raises(TypeError, match="state_dict"):
        resumed.load_state_dict({"records": []})
