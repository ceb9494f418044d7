"""The MOSP inner-step MILP against brute force, and the sensitivity line fit."""
import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ir_prune_plugin.channels.lp import floor_sensitivities, solve_memory_lp
from ir_prune_plugin.channels.sensitivity import fit_slope


def brute_force(sens, mem, need, upper, step=1):
    best = None
    ranges = [range(0, u // step + 1) for u in upper]
    for z in itertools.product(*ranges):
        d = np.asarray(z) * step
        if np.dot(mem, d) >= need:
            cost = float(np.dot(sens, d))
            if best is None or cost < best - 1e-12:
                best = cost
    return best


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.floats(0.01, 5.0), st.integers(1, 9), st.integers(0, 4)),
                min_size=1, max_size=4),
       st.integers(1, 40), st.sampled_from([1, 2]))
def test_milp_matches_brute_force(units, need, step):
    sens, mem, upper = (list(v) for v in zip(*units))
    res = solve_memory_lp(sens, mem, need, upper, step)
    d = np.asarray(res.removal)
    assert np.all(d >= 0) and np.all(d <= np.asarray(upper)) and np.all(d % step == 0)
    best = brute_force(sens, mem, need, upper, step)
    if best is None:  # infeasible: everything allowed is removed
        assert not res.feasible
        assert list(d) == [u // step * step for u in upper]
    else:
        assert res.feasible and res.bytes_saved >= need
        assert res.predicted_loss == pytest.approx(best, rel=1e-9, abs=1e-9)


def test_cheapest_bytes_go_first():
    # unit 0: 1.0 loss for 10 bytes; unit 1: 1.0 loss for 2 bytes -> take unit 0
    res = solve_memory_lp([1.0, 1.0], [10, 2], need=10, upper=[3, 3])
    assert res.removal == (1, 0)
    # need 12: one of unit 0 plus one of unit 1 (cost 2) beats two of unit 0 (cost 2, 20 bytes)? tie-free case
    res = solve_memory_lp([1.0, 0.1], [10, 2], need=12, upper=[3, 3])
    assert res.removal == (1, 1)


def test_zero_need_removes_nothing_and_bad_shapes_raise():
    assert solve_memory_lp([1.0], [4], 0, [2]).removal == (0,)
    with pytest.raises(ValueError, match="one length"):
        solve_memory_lp([1.0, 2.0], [4], 3, [2])
    with pytest.raises(ValueError, match="step"):
        solve_memory_lp([1.0], [4], 3, [2], step=0)


def test_floor_keeps_negative_slopes_cheap_but_positive():
    s = floor_sensitivities([-1.0, 0.0, 2.0, 4.0])
    assert np.all(s > 0)
    assert s[0] == s[1] < s[2] < s[3]
    assert s[2] == 2.0 and s[3] == 4.0


def test_fit_slope_through_origin():
    assert fit_slope([1, 2, 3], [2.0, 4.0, 6.0]) == pytest.approx(2.0)
    # least squares through the origin: sum(k*d)/sum(k^2)
    assert fit_slope([1, 2], [1.0, 3.0]) == pytest.approx((1 * 1 + 2 * 3) / 5)
    with pytest.raises(ValueError, match="positive"):
        fit_slope([0, 1], [0.0, 1.0])
    with pytest.raises(ValueError, match="finite"):
        fit_slope([1], [float("inf")])
