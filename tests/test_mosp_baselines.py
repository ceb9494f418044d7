"""MOSP with compactors, and the equal-memory baselines (uniform width, memory-blind magnitude)."""
import pytest
import torch

from ir_prune_plugin.archs import arch_spec, build_arch
from ir_prune_plugin.channels.memory_baselines import estimate_peak, magnitude_prune_to_budget, uniform_width_to_budget
from ir_prune_plugin.channels.compactor import Compactor
from ir_prune_plugin.channels.mosp import MOSPOptions, MOSPPruner
from ir_prune_plugin.memory import estimate_peak_memory, measure_peak_memory
from tiny_unets import SIZE, unet as _unet


def test_mosp_with_compactors_meets_budget_and_keeps_them():
    model = _unet(seed=3)   # random weights; under seed 0's MOSP cuts no compactor here, seeds 1-5 do
    x = torch.rand(2, 3, 32, 32)
    pruner = MOSPPruner(model, x, 0.5, options=MOSPOptions(memory_input_size=SIZE, min_channels=1,
                                                           outer_stride=2 ** 13, compactors=True))
    assert len(pruner.compactor_sites) == 4          # one per concat skip of the U-Net
    pruned = pruner.prune(progress=False)
    assert not any(isinstance(m, Compactor) for m in model.modules())
    comps = [m for m in pruned.modules() if isinstance(m, Compactor)]
    assert len(comps) == 4
    probe = torch.rand(*SIZE)
    est = estimate_peak_memory(pruned, probe).peak_bytes
    measured = measure_peak_memory(pruned, probe, mode="scheduled")
    assert est <= pruner.budget_bytes and abs(getattr(measured, "peak_bytes", measured) - est) <= 0.02 * est
    assert pruned(torch.rand(1, 3, 21, 30)).shape == (1, 3, 21, 30)
    # the skip's width is now decided apart from the encoder conv feeding it (a compactor was cut)
    assert any(c.out_channels < c.in_channels for c in comps)


def test_uniform_width_meets_budget_with_the_largest_factor():
    spec = arch_spec(_unet())
    full = estimate_peak(build_arch("sid_unet", width=0.125), SIZE)
    budget = int(0.5 * full)
    res = uniform_width_to_budget(spec, budget, SIZE)
    assert 0 < res.knob < 1
    assert res.peak_bytes <= budget == int(0.5 * full)
    assert res.peak_bytes == estimate_peak(res.model, SIZE)
    assert estimate_peak(build_arch("sid_unet", width=0.125 * min(res.knob + 0.05, 1.0)), SIZE) > budget


def test_uniform_width_rejects_bad_spec():
    with pytest.raises(ValueError, match="type"):
        uniform_width_to_budget({"width": 0.5}, 10, SIZE)


def test_memory_blind_magnitude_meets_budget_without_touching_the_model():
    model = _unet()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x = torch.rand(2, 3, 32, 32)
    budget = int(0.7 * estimate_peak(model, SIZE))
    res = magnitude_prune_to_budget(model, x, budget, SIZE, max_ratio=0.9, scan_step=0.2, iterations=2)
    assert res.peak_bytes <= budget and res.peak_bytes == estimate_peak(res.model, SIZE)
    assert 0 < res.knob <= 0.9
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert res.model(torch.rand(1, 3, 20, 28)).shape == (1, 3, 20, 28)
    with pytest.raises(ValueError, match="max_ratio"):
        magnitude_prune_to_budget(model, x, budget, SIZE, max_ratio=1.0)


def test_linear_peak_model_matches_a_fresh_estimate_after_pruning():
    from ir_prune_plugin.channels.memory_baselines import LinearPeak
    from ir_prune_plugin.channels.tp_graph import prune_channels

    model = _unet(width=0.25)
    x = torch.rand(1, 3, 32, 32)
    peak_of = LinearPeak(model, SIZE)
    assert peak_of.exact
    pruned = prune_channels(model, x, {"enc1.2": [0, 3, 5], "up1": [1], "bottom.0": list(range(10))})
    assert peak_of(pruned) == estimate_peak(pruned, SIZE) < estimate_peak(model, SIZE)
    for width in (0.1, 0.2):
        other = build_arch("sid_unet", width=width)
        assert peak_of(other) == estimate_peak(other, SIZE)


def test_model_that_already_has_compactors_is_not_adapted_twice():
    from ir_prune_plugin.channels.compactor import insert_compactors

    x = torch.rand(1, 3, 32, 32)
    adapted = insert_compactors(_unet(), x)
    pruner = MOSPPruner(adapted, x, 0.8, options=MOSPOptions(memory_input_size=SIZE, compactors=True, min_channels=1))
    assert len(pruner.compactor_sites) == 4
    assert sum(isinstance(m, Compactor) for m in pruner._work.modules()) == 4
