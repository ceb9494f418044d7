"""SLS lifecycle: state_dict() saved mid-search resumes in a fresh pruner to the identical plan; the
plan is plain data that apply_nm_plan() applies physically or as masks."""
from __future__ import annotations

import copy

import pytest
import torch

from ir_prune_plugin.sparsity import FitOptions, OneShotNM, SLSOptions, SLSPruner, apply_nm_plan, check_nm
from test_sls import TwoScaleNet, _denoise_batches

OPTS = SLSOptions(search_steps=30, refresh_every=10)
X = torch.rand(1, 3, 32, 32)


def _fit(p: SLSPruner, steps: int) -> None:
    p.fit(_denoise_batches(), steps, FitOptions(lr=1e-3, progress=False, seed=1))


def test_state_dict_mid_search_continues_to_the_identical_plan() -> None:
    torch.manual_seed(0)
    dense = TwoScaleNet()
    a = SLSPruner(dense, X, 0.3, M=8, options=OPTS)
    _fit(a, 12)
    assert a.searching
    state, weights = copy.deepcopy(a.state_dict()), copy.deepcopy(a.model.state_dict())
    _fit(a, 40)                                   # the uninterrupted run ends its search
    b = SLSPruner(dense, X, 0.3, M=8, options=OPTS)  # a fresh pruner on the dense net
    b.model.load_state_dict(weights)              # the weights at the save point ...
    b.load_state_dict(state)                      # ... and the pruner's own state
    assert b.steps_done == 12 and b.searching
    _fit(b, 40)
    assert not a.searching and not b.searching
    assert b.plan == a.plan and b.steps_done == a.steps_done
    torch.testing.assert_close(b.model(X), a.model(X))


def test_state_dict_is_checked_and_round_trips_a_frozen_search() -> None:
    torch.manual_seed(0)
    a = SLSPruner(TwoScaleNet(), X, 0.3, M=8, options=OPTS)
    _fit(a, 35)
    assert not a.searching
    b = SLSPruner(TwoScaleNet(), X, 0.3, M=8, options=OPTS)
    b.load_state_dict(a.state_dict())
    assert not b.searching and b.plan == a.plan and b.history == a.history
    with pytest.raises(ValueError, match="M=4"):
        SLSPruner(TwoScaleNet(), X, 0.3, M=4, options=OPTS).load_state_dict(a.state_dict())
    with pytest.raises(TypeError, match="state_dict"):
        b.load_state_dict([1, 2])
    c = OneShotNM(TwoScaleNet(), X, 2, 8)        # the baselines share the state format
    c.steps_done = 3
    d = OneShotNM(TwoScaleNet(), X, 2, 8)
    d.load_state_dict(c.state_dict())
    assert d.steps_done == 3 and d.plan == c.plan


def test_the_plan_applies_physically_and_as_masks() -> None:
    torch.manual_seed(0)
    p = SLSPruner(TwoScaleNet(), X, 0.3, M=8, options=OPTS)
    _fit(p, 35)
    model = p.finalize()
    plan = dict(p.plan)
    again = apply_nm_plan(model, plan)
    assert check_nm(again, plan).plan == plan and again is not model
    torch.testing.assert_close(again(X), model(X))   # SR-STE weights are already N:M by magnitude
    masks = apply_nm_plan(model, plan, masks=True)
    assert set(masks) == set(plan)
    for name, (n, m) in plan.items():
        mask = masks[name]["weight"]
        assert mask.shape == dict(model.named_modules())[name].weight.shape
        assert int(mask.sum()) == mask.numel() * n // m
    with pytest.raises(ValueError, match="not an N:M-prunable layer"):
        apply_nm_plan(model, {"nope": (1, 8)})
