"""One budget, four entry points: the same budget strings resolve identically in the Python API, the
``irprune`` CLI, a BasicSR YAML ``pruning:`` block and an NNI ``config_list`` (``budget`` key).

MOSPPruner takes the strings itself; SLSPruner takes the float, which ``budgets.parse_macs_budget``
reads from the same strings (the existing API rejects a str MACs budget with a TypeError)."""
from __future__ import annotations

import copy
import json

import pytest
import torch
import yaml

from ir_prune_plugin import MOSPOptions, MOSPPruner, SLSPruner, estimate_peak_memory, load_pruned
from ir_prune_plugin.archs import build_arch
from ir_prune_plugin.budgets import parse_macs_budget, parse_memory_budget
from ir_prune_plugin.cli import main

SIZE = (1, 3, 128, 256)
X = torch.rand(1, 3, 32, 32)
MEMORY = ["70%", "3200000", "3MiB"]   # percent, bytes, an IEC size
MACS = ["0.25", "25%"]


def _unet() -> torch.nn.Module:
    torch.manual_seed(0)
    return build_arch("sid_unet", width=0.25)


def _yaml_block(method: str, text: str, options: dict) -> dict:
    """The ``pruning:`` block as BasicSR reads it (unquoted YAML: numbers become int/float)."""
    return yaml.safe_load(f"method: {method}\nbudget: {text}\noptions: {json.dumps(options)}\n")


def test_numeric_strings_mean_what_the_numbers_mean() -> None:
    ref = 10 ** 9
    assert parse_memory_budget("40000000", ref) == parse_memory_budget(40000000, ref) == 40_000_000
    assert parse_memory_budget("0.5", ref) == parse_memory_budget(0.5, ref) == parse_memory_budget("50%", ref)
    assert parse_memory_budget("3.2MB", ref) == 3_200_000 and parse_memory_budget("3MiB", ref) == 3 * 2 ** 20
    assert parse_macs_budget("0.25") == parse_macs_budget("25%") == parse_macs_budget(0.25) == 0.25
    from ir_prune_plugin.commands._args import macs_ratio, memory_budget  # the CLI's --budget types
    for text in MEMORY + ["0.7", "40000000"]:
        assert parse_memory_budget(memory_budget(text), ref) == parse_memory_budget(text, ref)
    assert all(macs_ratio(text) == parse_macs_budget(text) for text in MACS)
    with pytest.raises(ValueError, match="1/M"):
        parse_macs_budget("5%", M=8)
    with pytest.raises(ValueError, match="macs_budget"):
        parse_macs_budget("a quarter")


def test_memory_budget_is_the_same_in_python_basicsr_and_nni() -> None:
    pytest.importorskip("nni")
    from ir_prune_plugin.integrations.basicsr.options import mosp_options, parse_pruning_block
    from ir_prune_plugin.integrations.nni import NNIMOSPPruner

    model = _unet()
    dense = estimate_peak_memory(model, SIZE).peak_bytes
    opts = MOSPOptions(memory_input_size=SIZE, compactors=False)
    for text in MEMORY:
        expected = parse_memory_budget(text, dense)
        python = MOSPPruner(model, X, text, options=opts).budget_bytes
        cfg = parse_pruning_block(_yaml_block("mosp", text, {"memory_input_size": list(SIZE), "compactors": False}))
        assert mosp_options(cfg) == opts  # IRPruneModel builds MOSPPruner(net, x, cfg.budget, options=this)
        basicsr = parse_memory_budget(cfg.budget, dense)
        nni = NNIMOSPPruner(copy.deepcopy(model), [{"op_types": ["Conv2d", "ConvTranspose2d"], "exclude_op_names": ["out"],
                                     "budget": text}], example_inputs=X, memory_input_size=SIZE)
        assert python == basicsr == nni._core.budget_bytes == expected, text
    assert parse_memory_budget("0.7", dense) == int(0.7 * dense)  # "0.7" is a ratio, not 0.7 bytes


def test_macs_budget_is_the_same_in_python_basicsr_and_nni() -> None:
    pytest.importorskip("nni")
    from ir_prune_plugin.integrations.basicsr.options import parse_pruning_block, sls_options
    from ir_prune_plugin.integrations.nni import NNISLSPruner

    model = build_arch("edsr", num_feat=16, num_block=1, upscale=2)
    for text in MACS:
        python = SLSPruner(model, X, parse_macs_budget(text), M=8).budget  # the pruner takes the float
        cfg = parse_pruning_block(_yaml_block("sls", text, {"M": 8}))
        M, options = sls_options(cfg)
        basicsr = SLSPruner(model, X, cfg.budget, M=M, options=options).budget
        nni = NNISLSPruner(copy.deepcopy(model), [{"op_types": ["Conv2d"], "budget": text}], example_inputs=X, M=8)
        assert python == basicsr == nni._core.budget == 0.25, text


@pytest.mark.slow
def test_cli_prunes_to_an_absolute_byte_budget(tmp_path, capsys) -> None:
    """``irprune prune --method mosp --budget 40000000`` prunes to 40,000,000 bytes."""
    out = tmp_path / "unet.pt"
    size = (1, 3, 480, 640)   # the dense width-0.25 U-Net peaks at about 43 MB here
    dense = estimate_peak_memory(build_arch("sid_unet", width=0.25), size).peak_bytes
    assert dense > 40_000_000
    rc = main(["prune", "--method", "mosp", "--arch", "sid_unet", "--arch-args", '{"width": 0.25}',
               "--budget", "40000000", "--memory-size", "640x480", "--steps", "2", "--out", str(out),
               "--no-progress"])
    assert rc == 0
    text = capsys.readouterr().out
    report = json.loads(text[text.index("{"):])
    assert report["budget_mb"] == round(40_000_000 / 2 ** 20, 1) and report["peak_after_mb"] <= report["budget_mb"]
    assert estimate_peak_memory(load_pruned(out), size).peak_bytes <= 40_000_000
