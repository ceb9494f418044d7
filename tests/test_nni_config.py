"""config_list checks of the NNI pruners: bad entries fail at construction, naming the entry."""
from __future__ import annotations

import pytest
import torch

pytest.importorskip("nni")

from ir_prune_plugin.archs import build_arch  # noqa: E402
from ir_prune_plugin.channels.compactor import Compactor  # noqa: E402
from ir_prune_plugin.integrations.nni import NNIMOSPPruner, NNISLSPruner, register_compactor  # noqa: E402
from ir_prune_plugin.integrations.nni.trial import check_params  # noqa: E402

X = torch.rand(1, 3, 16, 16)


def _unet():
    torch.manual_seed(0)
    return build_arch("sid_unet", width=0.125)


def _build(cls, model, config_list):
    if cls is NNISLSPruner:
        return cls(model, config_list, example_inputs=X, M=4)
    return cls(model, config_list, example_inputs=X, memory_input_size=(1, 3, 32, 32))


def _not_wrapped(model) -> bool:
    return not any(hasattr(m, "_nni_wrapper") for m in model.modules())


GOOD = {"op_types": ["Conv2d"], "exclude_op_names": ["out"], "sparse_ratio": 0.5}

BAD = [
    ([{**GOOD, "N": 2}], r"config_list\[0\].*unknown key.*'N'"),
    ([GOOD, {**GOOD, "sparsity_ratio": 0.5}], r"config_list\[1\].*unknown key.*'sparsity_ratio'"),
    ([{**GOOD, "sparse_ratio": 0.0}], r"config_list\[0\].*sparse_ratio=0\.0.*\(0, 1\)"),
    ([{**GOOD, "sparse_ratio": 1.0}], r"config_list\[0\].*sparse_ratio=1\.0"),
    ([{**GOOD, "sparse_ratio": -0.2}], r"config_list\[0\].*sparse_ratio=-0\.2"),
    ([{**GOOD, "sparse_ratio": "half"}], r"config_list\[0\].*sparse_ratio.*'half'"),
    ([{"op_types": ["Conv2d"]}], r"config_list\[0\].*needs sparse_ratio"),
    ([{"op_names": ["enc1.0", "enc9.0"], "sparse_ratio": 0.5}], r"config_list\[0\].*'enc9\.0'.*matches no module"),
    ([GOOD, {"op_names": ["dec1.9"], "sparse_ratio": 0.5}], r"config_list\[1\].*'dec1\.9'"),
    ([{"op_types": ["Conv3d"], "sparse_ratio": 0.5}], r"config_list\[0\].*\['Conv3d'\] matches no module"),
    ([{"op_names_re": ["^encoder"], "sparse_ratio": 0.5}], r"config_list\[0\].*'\^encoder' matches no module"),
    ([{"exclude_op_names": ["out"], "sparse_ratio": 0.5}], r"config_list\[0\] selects nothing"),
    ([{"op_types": ["LeakyReLU"], "sparse_ratio": 0.5}], r"config_list\[0\].*cannot prune.*LeakyReLU"),
    ([GOOD, {"op_types": ["ConvTranspose2d"], "sparse_ratio": 0.25}], r"different sparse_ratio.*\[0\.5, 0\.25\]"),
]


@pytest.mark.parametrize("cls", [NNISLSPruner, NNIMOSPPruner])
@pytest.mark.parametrize("config_list,pattern", BAD)
def test_bad_config_list_names_the_entry(cls, config_list, pattern):
    model = _unet()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises((ValueError, TypeError), match=pattern):
        _build(cls, model, config_list)
    assert _not_wrapped(model)
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("cls", [NNISLSPruner, NNIMOSPPruner])
def test_config_list_must_be_a_list_of_dicts(cls):
    with pytest.raises(TypeError, match="non-empty list"):
        _build(cls, _unet(), [])
    with pytest.raises(TypeError, match=r"config_list\[0\] must be a dict"):
        _build(cls, _unet(), ["Conv2d"])


def test_sls_budget_below_one_over_m_is_rejected():
    with pytest.raises(ValueError, match="1/M"):
        _build(NNISLSPruner, _unet(), [{**GOOD, "sparse_ratio": 0.9}])  # keeps 0.1 < 1/4


def test_compactor_is_an_nni_pruning_target():
    from nni.compression.base.setting import PruningSetting

    register_compactor()
    register_compactor()  # idempotent
    assert "Compactor" in PruningSetting.registry
    settings = PruningSetting.get(Compactor(4), {"sparse_ratio": 0.5})
    assert set(settings) == {"weight"} and settings["weight"]["sparse_ratio"] == 0.5


def test_trial_parameters_are_checked():
    assert check_params({"method": "mosp"})["sparse_ratio"] == 0.5
    with pytest.raises(ValueError, match="method"):
        check_params({"method": "random"})
    with pytest.raises(ValueError, match="sparse_ratio"):
        check_params({"sparse_ratio": 1.5})
    with pytest.raises(ValueError, match="unknown trial parameter.*'budget'"):
        check_params({"budget": 0.5})
