"""Bad and unusual input at the library boundary (issue 15), as tables.

Every bad case asserts the exception type, that the message names the bad value, and that the
caller's model (weights, dtype, requires_grad flags) and files are unchanged. The legitimate
unusual cases (fp16/bf16, frozen, meta, tuple/dict outputs) must work, or -- where the entry
point needs real values (a meta model) -- fail the same clear way. The table sizes are checked
at the end so the count in the issue's note stays true.
"""
from __future__ import annotations

import copy
import functools
import hashlib
import os

import pytest
import torch
from torch import nn

from ir_prune_plugin import (MOSPOptions, MOSPPruner, SLSOptions, SLSPruner, estimate_peak_memory,
                             insert_compactors, load_pruned, measure_peak_memory, save_pruned)
from ir_prune_plugin.archs import build_arch
from ir_prune_plugin.channels.history import MOSPHistory, model_fingerprint
from ir_prune_plugin.channels.mosp import _options_dict
from ir_prune_plugin.channels.units import UnitGraph
from ir_prune_plugin.channels.filter_l1 import l1_filter_prune
from ir_prune_plugin.channels.tp_graph import channel_groups, prune_channels
from ir_prune_plugin.deploy.onnx_export import export_onnx
from ir_prune_plugin.integrations.torch_pruning import tp_kwargs
from ir_prune_plugin.sparsity import AnnealingSchedule, OneShotNM, SRSTEPruner
from tiny_unets import mosp_options, unet

SIZE = (1, 3, 32, 32)
X = torch.rand(*SIZE, generator=torch.Generator().manual_seed(0))


_sid = functools.partial(unet, "sid_unet")
_opts = functools.partial(mosp_options, SIZE)


class TupleNet(nn.Module):
    """Returns ``(image, aux)`` like many restoration nets with an auxiliary head."""

    def __init__(self) -> None:
        super().__init__()
        self.net = _sid()

    def forward(self, x):
        y = self.net(x)
        return y, y.mean()


class DictNet(TupleNet):
    """Returns ``{'aux': ..., 'out': image}``: the image is not the first entry."""

    def forward(self, x):
        y = self.net(x)
        return {"aux": y.sum(), "out": y}


def _snapshot(model):
    return ({k: v.detach().clone() for k, v in model.state_dict().items()},
            {n: p.requires_grad for n, p in model.named_parameters()}, [type(m) for m in model.modules()])


def _assert_unchanged(model, snap):
    state, flags, types = snap
    now = model.state_dict()
    assert now.keys() == state.keys()
    for k, v in state.items():
        assert now[k].dtype == v.dtype and now[k].shape == v.shape, k
        assert (v.is_meta or torch.equal(now[k], v)), k
    assert {n: p.requires_grad for n, p in model.named_parameters()} == flags
    assert [type(m) for m in model.modules()] == types


def _files(folder):
    out = {}
    for root, _dirs, names in os.walk(folder):
        for n in names:
            p = os.path.join(root, n)
            with open(p, "rb") as fh:
                out[p] = hashlib.sha1(fh.read()).hexdigest()
    return out


# ------------------------------------------------------------------ every public entry point
def _nni_mosp(m, x, ratio=0.3):
    from ir_prune_plugin.integrations.nni import NNIMOSPPruner
    return NNIMOSPPruner(m, [{"op_types": ["Conv2d"], "sparse_ratio": ratio}], example_inputs=x,
                         options=MOSPOptions(min_channels=1))


def _nni_sls(m, x, ratio=0.5):
    from ir_prune_plugin.integrations.nni import NNISLSPruner
    return NNISLSPruner(m, [{"op_types": ["Conv2d"], "sparse_ratio": ratio}], example_inputs=x, M=4)


ENTRY_POINTS = {
    "estimate_peak_memory": lambda m, x: estimate_peak_memory(m, x),
    "measure_peak_memory": lambda m, x: measure_peak_memory(m, x),
    "insert_compactors": lambda m, x: insert_compactors(m, x),
    "MOSPPruner": lambda m, x: MOSPPruner(m, x, 0.6, options=_opts()),
    "SLSPruner": lambda m, x: SLSPruner(m, x, 0.5, M=4),
    "OneShotNM": lambda m, x: OneShotNM(m, x, 2, 4),
    "SRSTEPruner": lambda m, x: SRSTEPruner(m, x, 2, 4),
    "l1_filter_prune": lambda m, x: l1_filter_prune(m, x, 2.7e6),  # dense: 3.06e6 MACs at X
    "tp_kwargs": lambda m, x: tp_kwargs(m, x),
    "prune_channels": lambda m, x: prune_channels(m, x, {"enc1.0": [0]}),
    "channel_groups": lambda m, x: channel_groups(m, x),
    "export_onnx": lambda m, x: export_onnx(m, "/nonexistent-dir/never-written.onnx", x),
    "NNIMOSPPruner": _nni_mosp,
    "NNISLSPruner": _nni_sls,
}

NAN = X.clone()
NAN[0, 0, 0, 0] = float("nan")
BAD_INPUTS = {  # name: (example_inputs, exception, fragments the message must contain)
    "empty batch": (torch.rand(0, 3, 32, 32), ValueError, ["(0, 3, 32, 32)", "empty"]),
    "0x0 image": (torch.rand(1, 3, 0, 0), ValueError, ["(1, 3, 0, 0)", "empty"]),
    "wrong channels": (torch.rand(1, 4, 32, 32), ValueError, ["example_inputs", "(1, 4, 32, 32)", "takes 3"]),
    "rank 3": (torch.rand(3, 32, 32), ValueError, ["example_inputs", "(3, 32, 32)"]),
    "NaN value": (NAN, ValueError, ["example_inputs", "1 NaN/Inf value"]),
    "two inputs, one-input forward": ((X, X), ValueError, ["2 tensors", "takes 1 (x)"]),
    "not a tensor": ("image.png", TypeError, ["example_inputs", "str"]),
    "meta inputs": (X.to("meta"), ValueError, ["meta"]),
}


@pytest.fixture(scope="module")
def shared_net():
    return _sid()


@pytest.mark.parametrize("bad", list(BAD_INPUTS))
@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_bad_example_inputs_are_traced_back_to_example_inputs(entry, bad, shared_net):
    inputs, exc, fragments = BAD_INPUTS[bad]
    if entry == "estimate_peak_memory" and bad == "meta inputs":
        assert estimate_peak_memory(shared_net, inputs).peak_bytes > 0  # shapes are all it needs
        return
    snap = _snapshot(shared_net)
    with pytest.raises(exc) as info:
        ENTRY_POINTS[entry](shared_net, inputs)
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))
    _assert_unchanged(shared_net, snap)


# ------------------------------------------------------------------ unusual but legitimate models
def _variant(kind):
    if kind == "meta":
        return _sid().to("meta"), X
    if kind == "fp16":
        return _sid().half(), X.half()
    if kind == "bf16":
        return _sid().bfloat16(), X.bfloat16()
    if kind == "frozen":
        return _sid().requires_grad_(False), X
    return {"tuple output": TupleNet, "dict output": DictNet}[kind](), X


VARIANTS = ["meta", "fp16", "bf16", "frozen", "tuple output", "dict output"]
FAST_ENTRIES = ["estimate_peak_memory", "measure_peak_memory", "SLSPruner", "OneShotNM", "prune_channels"]
SLOW_ENTRIES = [e for e in ENTRY_POINTS if e not in FAST_ENTRIES and e != "export_onnx"]  # test_deploy_onnx


def _check_variant(entry, kind):
    model, x = _variant(kind)
    if entry == "prune_channels" and isinstance(model, TupleNet):
        call = lambda: prune_channels(model, x, {"net.enc1.0": [0]})  # noqa: E731
    else:
        call = lambda: ENTRY_POINTS[entry](model, x)  # noqa: E731
    snap = _snapshot(model)
    if kind == "meta" and entry != "estimate_peak_memory":
        with pytest.raises(ValueError, match="meta device"):
            call()
        _assert_unchanged(model, snap)
        return
    result = call()
    if hasattr(result, "unwrap_model"):  # NNI pruners wrap the model they are given, by NNI's design
        result.unwrap_model()
    _assert_unchanged(model, snap)
    if entry == "estimate_peak_memory":
        ref = estimate_peak_memory(_sid(), X).peak_bytes
        assert result.peak_bytes == (ref // 2 if kind in ("fp16", "bf16") else ref)
    elif entry == "measure_peak_memory":
        assert result == estimate_peak_memory(model, x).peak_bytes
    elif isinstance(result, nn.Module):  # prune_channels, l1_filter_prune, insert_compactors
        out = result(x)
        out = out if isinstance(out, torch.Tensor) else (out[0] if isinstance(out, tuple) else out["out"])
        assert out.shape == (1, 3, 32, 32) and out.dtype == x.dtype and torch.isfinite(out.float()).all()
        frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
        assert all(not p.requires_grad for n, p in result.named_parameters() if n in frozen)
    elif entry == "MOSPPruner":
        assert result.budget_bytes < result.original_peak and len(result.min_widths) > 10
        assert result.evaluate(copy.deepcopy(model)) == 0.0
    elif hasattr(result, "layers"):  # the N:M pruners
        assert len(result.layers) > 5
    else:
        assert result is not None


@pytest.mark.parametrize("kind", VARIANTS)
@pytest.mark.parametrize("entry", FAST_ENTRIES)
def test_unusual_models_work_or_fail_clearly(entry, kind):
    _check_variant(entry, kind)


@pytest.mark.slow
@pytest.mark.parametrize("kind", VARIANTS)
@pytest.mark.parametrize("entry", SLOW_ENTRIES)
def test_unusual_models_work_or_fail_clearly_everywhere(entry, kind):
    _check_variant(entry, kind)


# ------------------------------------------------------------------ the audit's numbered items
def _mosp_history(model, options, budget_bytes=1000):
    return MOSPHistory(budget_bytes, 2000, _options_dict(options), model=model_fingerprint(model))


def _saved(tmp_path):
    model = _sid()
    path = tmp_path / "ok.pt"
    save_pruned(model, path)
    return path


def _rewritten(tmp_path, **changes):
    payload = torch.load(_saved(tmp_path), weights_only=True)
    for key, value in changes.items():
        if value is None:
            payload.pop(key)
        else:
            payload[key] = value
    path = tmp_path / "edited.pt"
    torch.save(payload, path)
    return path


def _file(tmp_path, name, data: bytes):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def _finetune_run(returned):
    def finetune(model):
        return returned(model) if callable(returned) else returned
    return lambda m, t: MOSPPruner(m, X, 0.8, finetune=finetune, options=_opts()).prune(progress=False)


# (item, case): (call(model, tmp_path), exception, fragments). ``model`` is the caller's SID U-Net.
ITEMS = {
    (1, "OneShotNM N=1 M=1"): (lambda m, t: OneShotNM(m, X, N=1, M=1), ValueError, ["N=1, M=1"]),
    (1, "SRSTEPruner N=4 M=4"): (lambda m, t: SRSTEPruner(m, X, N=4, M=4), ValueError, ["N=4, M=4"]),
    (2, "SLSPruner empty batch"): (lambda m, t: SLSPruner(m, torch.rand(0, 3, 32, 32), 0.5, M=4), ValueError,
                                   ["(0, 3, 32, 32)"]),
    (2, "estimate empty batch"): (lambda m, t: estimate_peak_memory(m, (0, 3, 32, 32)), ValueError,
                                  ["(0, 3, 32, 32)"]),
    (3, "estimate nn.Identity"): (lambda m, t: estimate_peak_memory(nn.Identity(), X), ValueError,
                                  ["Identity", "no operation"]),
    (3, "MOSPPruner nn.Identity"): (lambda m, t: MOSPPruner(nn.Identity(), X, 0.5, options=_opts()), ValueError,
                                    ["Identity"]),
    (4, "fp32 inputs to an fp16 model"): (lambda m, t: MOSPPruner(_sid().half(), X, 0.6, options=_opts()),
                                          ValueError, ["float32", "float16"]),
    (7, "save_pruned of a meta model"): (lambda m, t: save_pruned(_sid().to("meta"), t / "meta.pt"), ValueError,
                                         ["meta device", "enc1.0.weight"]),
    (8, "finetune returns 42"): (_finetune_run(42), TypeError, ["42"]),
    (8, "finetune returns 'done'"): (_finetune_run("done"), TypeError, ["'done'"]),
    (8, "finetune returns a fresh dense model"): (_finetune_run(lambda model: _sid()), ValueError,
                                                  ["structure", "reshaped"]),
    (9, "MOSPOptions compactors='no'"): (lambda m, t: MOSPOptions(compactors="no"), TypeError, ["'no'"]),
    (9, "SLSOptions lambda_w=nan"): (lambda m, t: SLSOptions(lambda_w=float("nan")), ValueError, ["lambda_w", "nan"]),
    (9, "SLSOptions reg_weight=inf"): (lambda m, t: SLSOptions(reg_weight=float("inf")), ValueError,
                                       ["reg_weight", "inf"]),
    (9, "SLSOptions score_lr=inf"): (lambda m, t: SLSOptions(score_lr=float("inf")), ValueError, ["score_lr", "inf"]),
    (9, "SLSOptions lambda_w=inf"): (lambda m, t: SLSOptions(lambda_w=float("inf")), ValueError, ["lambda_w", "inf"]),
    (9, "SRSTEPruner lambda_w=nan"): (lambda m, t: SRSTEPruner(m, X, 2, 4, lambda_w=float("nan")), ValueError,
                                      ["lambda_w", "nan"]),
    (10, "load_pruned N:M plan (5, 4)"): (lambda m, t: load_pruned(_rewritten(t, nm_plan={"enc1.0": (5, 4)})),
                                          ValueError, ["edited.pt", "(5, 4)"]),
    (10, "save_pruned SID U-Net as res_unet"): (lambda m, t: save_pruned(m, t / "wrong.pt", arch={"type": "res_unet"}),
                                                ValueError, ["res_unet"]),
    (11, "resume onto another arch"): (
        lambda m, t: MOSPPruner(build_arch("res_unet", width=0.125), X, 0.6, options=_opts(),
                                resume=_mosp_history(m, _opts())), ValueError, ["SIDUNet", "ResUNet", "strict_resume"]),
    (11, "resume with other compactors"): (
        lambda m, t: MOSPPruner(m, X, 0.6, options=_opts(), resume=_mosp_history(m, _opts(compactors=True))),
        ValueError, ["compactors=True there vs False here"]),
    (11, "resume with another memory_input_size"): (
        lambda m, t: MOSPPruner(m, X, 0.6, options=_opts(memory_input_size=(1, 3, 64, 64)),
                                resume=_mosp_history(m, _opts())), ValueError, ["memory_input_size=[1, 3, 32, 32]"]),
    (13, "int budget 1"): (lambda m, t: MOSPPruner(m, X, 1, options=_opts()), ValueError,
                           ["budget 1 (an int is read as bytes", "(1 bytes)"]),
    (13, "round_to=64"): (lambda m, t: MOSPPruner(m, X, 0.6, options=_opts(round_to=64)), ValueError,
                          ["round_to=64"]),
    (13, "max_outer_steps=1"): (lambda m, t: MOSPPruner(m, X, 0.6, options=_opts(max_outer_steps=1)).prune(
        progress=False), RuntimeError, ["max_outer_steps=1"]),
    (14, "SLS wrong channels"): (lambda m, t: SLSPruner(m, torch.rand(1, 4, 32, 32), 0.5, M=4), ValueError,
                                 ["example_inputs (1, 4, 32, 32)"]),
    (14, "measure rank 3"): (lambda m, t: measure_peak_memory(m, torch.rand(3, 32, 32)), ValueError,
                             ["example_inputs (3, 32, 32)"]),
    (14, "insert_compactors 0x0"): (lambda m, t: insert_compactors(m, torch.rand(1, 3, 0, 0)), ValueError,
                                    ["(1, 3, 0, 0)"]),
    (14, "estimate two inputs"): (lambda m, t: estimate_peak_memory(m, (X, X)), ValueError, ["2 tensors"]),
    (15, "MOSP NaN inputs"): (lambda m, t: MOSPPruner(m, torch.full(SIZE, float("nan")), 0.6, options=_opts()),
                              ValueError, ["3072 NaN/Inf values"]),
    (16, "load_pruned empty file"): (lambda m, t: load_pruned(_file(t, "empty.pt", b"")), ValueError,
                                     ["empty.pt", "empty"]),
    (16, "load_pruned truncated file"): (
        lambda m, t: load_pruned(_file(t, "cut.pt", _saved(t).read_bytes()[:2000])), ValueError, ["cut.pt"]),
    (16, "load_pruned payload without shapes"): (lambda m, t: load_pruned(_rewritten(t, shapes=None)), ValueError,
                                                 ["edited.pt", "shapes"]),
    (16, "save_pruned to an unwritable path"): (lambda m, t: save_pruned(m, "/proc/self/irprune.pt"), ValueError,
                                                ["/proc/self/irprune.pt"]),
    (16, "save_pruned to a directory"): (lambda m, t: save_pruned(m, t), ValueError, ["it is a directory"]),
    (16, "history_file in a missing directory"): (
        lambda m, t: MOSPPruner(m, X, 0.6, options=_opts()).prune(t / "no" / "h.json", progress=False), ValueError,
        ["h.json", "does not exist"]),
    (16, "history file is not JSON"): (
        lambda m, t: MOSPPruner(m, X, 0.6, options=_opts(), resume=_file(t, "hist.json", b"{not json")), ValueError,
        ["hist.json"]),
    (17, "NNI sparse_ratio out of reach"): (lambda m, t: _nni_mosp(m, X, 0.999), ValueError, ["sparse_ratio=0.999"]),
    (19, "SLSOptions ignored_layers='out'"): (lambda m, t: SLSOptions(ignored_layers="out"), TypeError, ["'out'"]),
    (19, "MOSPOptions ignored_layers='out'"): (lambda m, t: MOSPOptions(ignored_layers="out"), TypeError, ["'out'"]),
    (19, "SLSOptions schedule dict"): (lambda m, t: SLSOptions(schedule={"start": 1}), TypeError, ["{'start': 1}"]),
    (19, "AnnealingSchedule end=inf"): (lambda m, t: AnnealingSchedule(end=float("inf")), ValueError, ["end=inf"]),
    (19, "MOSPOptions seed='abc'"): (lambda m, t: MOSPOptions(seed="abc"), TypeError, ["'abc'"]),
}


@pytest.mark.parametrize("case", list(ITEMS), ids=[f"{i}-{c}" for i, c in ITEMS])
def test_audit_items_raise_clear_errors(case, tmp_path):
    call, exc, fragments = ITEMS[case]
    model = _sid()
    snap = _snapshot(model)
    inside = tmp_path / "files"
    inside.mkdir()
    _saved(inside)  # an existing file that must survive every case untouched
    before = _files(inside)
    with pytest.raises(exc) as info:
        call(model, inside)
    for fragment in fragments:
        assert fragment in str(info.value), (fragment, str(info.value))
    _assert_unchanged(model, snap)
    after = _files(inside)
    assert {p: h for p, h in after.items() if p in before} == before, "an existing file changed"
    assert not any(os.path.basename(p) in ("meta.pt", "wrong.pt") for p in after), "a refused save wrote a file"


# ------------------------------------------------------------------ items 4, 5, 6 prune for real
def test_fp16_profile_and_budget_at_the_models_dtype():
    p32 = MOSPPruner(_sid(), X, 0.6, options=_opts())
    p16 = MOSPPruner(_sid().half(), X.half(), 0.6, options=_opts())
    assert p16.original_peak * 2 == p32.original_peak
    assert p16.budget_bytes * 2 in (p32.budget_bytes, p32.budget_bytes + 1)


def test_frozen_model_has_the_same_units_and_keeps_its_flags():
    free, frozen = _sid(), _sid().requires_grad_(False)
    g_free, g_frozen = UnitGraph(free, X), UnitGraph(frozen, X)
    assert {r: (dict(u.out_layers), u.channels) for r, u in g_frozen.units.items()} == \
        {r: (dict(u.out_layers), u.channels) for r, u in g_free.units.items()}
    assert len(g_frozen.units) > 10 and not any(p.requires_grad for p in frozen.parameters())
    g_frozen.remove({"enc1.0": [0]})
    assert not any(p.requires_grad for p in frozen.parameters()), "pruned layers stay frozen"


def test_tuple_output_uses_the_first_tensor_and_output_fn_picks_from_a_dict():
    pruner = MOSPPruner(TupleNet(), X, 0.6, options=_opts())
    assert pruner.evaluate(copy.deepcopy(pruner._work)) == 0.0
    with pytest.raises(TypeError, match="output_fn"):
        MOSPPruner(DictNet(), X, 0.6, options=_opts(output_fn=lambda out: out["aux"].item()))


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_sid_unet_meets_a_mosp_budget(dtype):
    model = _sid().to(dtype)
    pruner = MOSPPruner(model, X.to(dtype), 0.6, options=_opts())
    pruned = pruner.prune(progress=False)
    assert next(pruned.parameters()).dtype == dtype
    peak = estimate_peak_memory(pruned, X.to(dtype)).peak_bytes
    assert peak <= pruner.budget_bytes < estimate_peak_memory(model, X.to(dtype)).peak_bytes
    assert pruned(X.to(dtype)).shape == SIZE


@pytest.mark.slow
def test_frozen_sid_unet_prunes_to_the_same_plan():
    free = MOSPPruner(_sid(), X, 0.6, options=_opts(compactors=True))
    frozen_model = _sid().requires_grad_(False)
    frozen = MOSPPruner(frozen_model, X, 0.6, options=_opts(compactors=True))
    assert set(frozen.min_widths) == set(free.min_widths)
    a, b = free.prune(progress=False), frozen.prune(progress=False)
    assert frozen.history.plan() == free.history.plan() and frozen.history.plan()
    original = {n for n, _ in frozen_model.named_parameters()}
    assert not any(p.requires_grad for n, p in b.named_parameters() if n in original)
    assert torch.allclose(a(X), b(X))


@pytest.mark.slow
@pytest.mark.parametrize("net, output_fn", [(TupleNet, None), (DictNet, lambda out: out["out"])])
def test_tuple_and_dict_outputs_prune_with_the_default_evaluate(net, output_fn):
    pruner = MOSPPruner(net(), X, 0.6, options=_opts(output_fn=output_fn))
    pruned = pruner.prune(progress=False)
    assert pruner.history.records and estimate_peak_memory(pruned, X).peak_bytes <= pruner.budget_bytes


@pytest.mark.parametrize("kind", ["frozen", "bf16", "tuple output"])
def test_sls_search_and_fit_run_on_unusual_models(kind):
    from ir_prune_plugin.sparsity import FitOptions
    model, x = _variant(kind)
    snap = _snapshot(model)
    data = [(torch.rand(2, *SIZE[1:]).to(x.dtype), torch.rand(2, *SIZE[1:]).to(x.dtype)) for _ in range(2)]
    pruner = SLSPruner(model, x, 0.5, M=4, options=SLSOptions(search_steps=2))
    losses = pruner.fit(data, 2, FitOptions(progress=False, batch_size=2))
    assert len(losses) == 2 and all(v == v for v in losses)
    assert pruner.finalize() is pruner.model and pruner.kept_ratio() <= 0.5
    _assert_unchanged(model, snap)


def test_resume_mismatch_can_be_overridden(caplog):
    model = _sid()
    history = _mosp_history(model, _opts(compactors=True))
    pruner = MOSPPruner(model, X, 0.6, options=_opts(), resume=history, strict_resume=False)
    assert pruner._resume is history
    assert "compactors=True there vs False here" in caplog.text


def test_the_table_sizes_match_the_note():
    """Issue 15's note quotes these counts; change both together."""
    bad = len(ENTRY_POINTS) * len(BAD_INPUTS)
    variants = (len(FAST_ENTRIES) + len(SLOW_ENTRIES)) * len(VARIANTS)
    assert (len(ENTRY_POINTS), len(BAD_INPUTS), len(VARIANTS), len(ITEMS)) == (14, 8, 6, 43)
    assert bad + variants + len(ITEMS) == 233
