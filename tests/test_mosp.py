"""MOSPPruner end to end on tiny nets: budget met (estimate and measurement), any input size
afterwards, errors before any change, failures leave the model unchanged, determinism, resume."""
import copy
import json

import pytest
import torch
from torch import nn

from ir_prune_plugin.archs import build_arch
from ir_prune_plugin.channels.history import MOSPHistory
from ir_prune_plugin.channels.mosp import MOSPPruner
from ir_prune_plugin.channels.units import UnitGraph
from ir_prune_plugin.memory import estimate_peak_memory, measure_peak_memory
from tiny_unets import SIZE, mosp_options as _opts, same_state as _same_state, state as _state, unet as _unet


def _check_budget(pruned, budget_bytes):
    x = torch.rand(*SIZE)
    est = estimate_peak_memory(pruned, x).peak_bytes
    measured = measure_peak_memory(pruned, x, mode="scheduled")
    measured = getattr(measured, "peak_bytes", measured)
    assert est <= budget_bytes
    assert measured <= budget_bytes * 1.02
    assert abs(measured - est) <= 0.02 * est


@pytest.mark.parametrize("kind", ["sid_unet", "res_unet"])
def test_unets_meet_budget_and_run_at_any_size(kind):
    model = _unet(kind)
    before = _state(model)
    x = torch.rand(2, 3, 32, 32)
    pruner = MOSPPruner(model, x, 0.6, options=_opts())
    pruned = pruner.prune()
    assert _same_state(before, _state(model)), "the caller's model must not change"
    _check_budget(pruned, pruner.budget_bytes)
    assert sum(p.numel() for p in pruned.parameters()) < sum(p.numel() for p in model.parameters())
    for shape in [(1, 3, 23, 37), (2, 3, 64, 40)]:
        assert pruned(torch.rand(*shape)).shape == shape
    assert pruner.history.finished and pruner.history.final_peak_bytes <= pruner.budget_bytes
    rec = pruner.history.records[0]
    assert rec.group_bytes_after < rec.group_bytes_before
    assert set(rec.removed) <= set(rec.lp_removal) and all(rec.lp_removal[r] == len(v) for r, v in rec.removed.items())


@pytest.mark.parametrize("arch,kw", [
    ("edsr", dict(num_feat=8, num_block=1, upscale=2)),
    ("rcan", dict(num_feat=16, num_group=1, num_block=1, squeeze_factor=4, upscale=2)),
])
def test_basicsr_nets_meet_budget(arch, kw):
    torch.manual_seed(0)
    model = build_arch(arch, **kw).eval()
    x = torch.rand(1, 3, 16, 16)
    pruner = MOSPPruner(model, x, 0.7, options=_opts(memory_input_size=(1, 3, 24, 24)))
    pruned = pruner.prune()
    est = estimate_peak_memory(pruned, torch.rand(1, 3, 24, 24)).peak_bytes
    assert est <= pruner.budget_bytes
    scale = kw["upscale"]
    assert pruned(torch.rand(1, 3, 13, 11)).shape == (1, 3, 13 * scale, 11 * scale)


def test_masking_a_unit_equals_removing_it():
    model = _unet()
    x = torch.rand(1, 3, 32, 32)
    graph = UnitGraph(model, x, ["out"])
    root = "enc2.2"
    idxs = graph.channel_order(root)[:3]
    with torch.no_grad(), graph.masked(root, idxs):
        masked = model(x)
    graph.remove({root: idxs})
    with torch.no_grad():
        removed = model(x)
    assert model.enc2[2].out_channels == 8 - 3
    torch.testing.assert_close(masked, removed, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize("budget,match", [
    (0, "positive"), (-0.5, "ratio"), (1.5, "ratio"), ("10GB", "not below"), ("abc", "cannot parse"),
    (1e-4, "cannot be reached"),
])
def test_bad_budgets_raise_before_any_change(budget, match):
    model = _unet()
    before = _state(model)
    with pytest.raises(ValueError, match=match):
        MOSPPruner(model, torch.rand(1, 3, 32, 32), budget, options=_opts(min_channels=2))
    assert _same_state(before, _state(model))


def test_unreachable_budget_names_the_reachable_minimum():
    with pytest.raises(ValueError) as info:
        MOSPPruner(_unet(), torch.rand(1, 3, 32, 32), 0.05, options=_opts(min_channels=4))
    assert "smallest peak" in str(info.value) and "bytes" in str(info.value)


def test_bad_arguments():
    x = torch.rand(1, 3, 32, 32)
    with pytest.raises(TypeError, match="nn.Module"):
        MOSPPruner("model", x, 0.5, options=_opts())
    with pytest.raises(TypeError, match="MOSPOptions"):
        MOSPPruner(_unet(), x, 0.5, options={"outer_stride": 1})
    with pytest.raises(TypeError, match="evaluate"):
        MOSPPruner(_unet(), x, 0.5, evaluate=3, options=_opts())
    with pytest.raises(ValueError, match="memory_input_size"):
        MOSPPruner(_unet(), x, 0.5, options=_opts(memory_input_size=(1, 1, 32, 32)))
    with pytest.raises(ValueError, match="not modules"):
        MOSPPruner(_unet(), x, 0.5, options=_opts(ignored_layers=("nope",)))
    for bad in [dict(outer_stride=0), dict(min_channels=0), dict(min_channels=1.5), dict(round_to=0),
                dict(sensitivity_points=()), dict(inner_step=-1)]:
        with pytest.raises(ValueError):
            _opts(**bad)


def test_model_without_prunable_layers_is_rejected():
    model = nn.Sequential(nn.Conv2d(3, 3, 3, padding=1), nn.ReLU())  # its only conv makes the output
    with pytest.raises(ValueError, match="no prunable layer"):
        MOSPPruner(model, torch.rand(1, 3, 16, 16), 0.5, options=_opts(memory_input_size=(1, 3, 16, 16)))


@pytest.mark.parametrize("where", ["evaluate", "finetune"])
def test_failure_mid_run_leaves_the_model_unchanged(where):
    model = _unet()
    before = _state(model)
    calls = {"n": 0}
    x = torch.rand(1, 3, 32, 32)
    reference = model(x).detach()

    def evaluate(m):
        calls["n"] += 1
        if where == "evaluate" and calls["n"] > 6:
            raise RuntimeError("boom")
        return float((m(x) - reference).abs().mean())

    def finetune(m):
        raise RuntimeError("boom")

    pruner = MOSPPruner(model, x, 0.6, evaluate=evaluate, finetune=finetune if where == "finetune" else None,
                        options=_opts())
    with pytest.raises(RuntimeError, match="boom"):
        pruner.prune()
    assert _same_state(before, _state(model))
    torch.testing.assert_close(model(x), reference)


def test_same_seed_same_plan_and_resume_replays(tmp_path):
    model = _unet()
    x = torch.rand(2, 3, 32, 32)
    path = tmp_path / "history.json"
    runs = []
    for _ in range(2):
        pruner = MOSPPruner(model, x, 0.55, options=_opts(seed=3))
        pruned = pruner.prune(history_file=path)
        runs.append((pruner.history, pruned))
    (h1, p1), (h2, p2) = runs
    assert len(h1.records) >= 2
    assert [r.removed for r in h1.records] == [r.removed for r in h2.records]
    assert _same_state(_state(p1), _state(p2))
    saved = MOSPHistory.load(path)
    assert json.loads(json.dumps(saved.to_dict())) == json.loads(json.dumps(h2.to_dict()))
    # an interrupted run: keep the first half of the records, resume, get the same plan
    half = copy.deepcopy(saved)
    half.records = half.records[: len(half.records) // 2]
    half.finished = False
    resumed = MOSPPruner(model, x, 0.55, options=_opts(seed=3), resume=half).prune()
    assert _same_state(_state(resumed), _state(p1))


def test_resume_rejects_foreign_history(tmp_path):
    model = _unet()
    x = torch.rand(1, 3, 32, 32)
    hist = MOSPPruner(model, x, 0.6, options=_opts()).history
    hist.records = []
    bad = hist.to_dict()
    bad["version"] = 99
    path = tmp_path / "h.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match="version"):
        MOSPPruner(model, x, 0.6, options=_opts(), resume=path)


def test_round_to_removes_in_blocks():
    model = _unet(width=0.25)
    pruner = MOSPPruner(model, torch.rand(1, 3, 32, 32), 0.6, options=_opts(round_to=2, min_channels=2))
    pruned = pruner.prune()
    for rec in pruner.history.records:
        assert all(len(v) % 2 == 0 for v in rec.removed.values())
    assert all(m.out_channels % 2 == 0 for m in pruned.modules() if isinstance(m, nn.Conv2d) and m.out_channels != 3)


def test_min_width_respects_round_to_blocks():
    pruner = MOSPPruner(_unet(width=0.25), torch.rand(1, 3, 32, 32), 0.7,
                        options=_opts(round_to=4, min_channels=3))
    # width 8 with blocks of 4 and a floor of 3 can only go down to 4; width 16 to 4; 64 to 4
    assert pruner.min_widths["enc1.0"] == 4 and pruner.min_widths["bottom.0"] == 4
    pruner = MOSPPruner(_unet(width=0.25), torch.rand(1, 3, 32, 32), 0.7, options=_opts(min_channels=0.5))
    assert pruner.min_widths["enc1.0"] == 4 and pruner.min_widths["bottom.0"] == 64
