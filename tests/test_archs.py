import pytest
import torch

from ir_prune_plugin.archs import arch_spec, build_arch, list_archs
from ir_prune_plugin.macs import count_macs, count_params


def test_sid_unet_has_the_papers_parameter_count():
    assert count_params(build_arch("sid_unet")) == 7_760_163


def test_res_unet_is_about_9_5m_params():
    assert 9.3e6 < count_params(build_arch("res_unet")) < 9.7e6


@pytest.mark.parametrize("name", ["sid_unet", "res_unet"])
@pytest.mark.parametrize("hw", [(37, 53), (16, 16), (1, 5)])
def test_unets_accept_any_size(name, hw):
    model = build_arch(name, width=0.125).eval()
    x = torch.rand(1, 3, *hw)
    with torch.no_grad():
        assert model(x).shape == x.shape


@pytest.mark.parametrize("name", ["sid_unet", "res_unet"])
def test_unets_run_at_2k_on_meta(name):
    model = build_arch(name).to("meta")
    y = model(torch.empty(1, 3, 1080, 2048, device="meta"))
    assert y.shape == (1, 3, 1080, 2048)  # 1080 is not a multiple of 16: padded then cropped


def test_width_multiplier_scales_channels():
    small, full = build_arch("sid_unet", width=0.25), build_arch("sid_unet")
    assert small.enc1[0].out_channels == 8 and full.enc1[0].out_channels == 32
    assert count_params(small) < count_params(full) / 10


def test_residual_unet_starts_as_identity():
    model = build_arch("sid_unet", width=0.125).eval()
    x = torch.rand(1, 3, 20, 20)
    with torch.no_grad():
        assert torch.equal(model(x), x)


def test_spec_is_remembered_and_macs_counted_on_meta():
    model = build_arch("sid_unet", width=0.5)
    assert arch_spec(model) == {"type": "sid_unet", "width": 0.5}
    macs = count_macs(model, (1, 3, 64, 64))
    assert macs > 0 and count_macs(model, (1, 3, 128, 128)) == 4 * macs


@pytest.mark.parametrize("name", ["edsr", "msrresnet", "rcan", "rrdbnet", "srvgg"])
def test_basicsr_archs_build(name):
    kw = {"edsr": dict(num_feat=8, num_block=1), "msrresnet": dict(num_feat=8, num_block=1),
          "rcan": dict(num_feat=8, num_group=1, num_block=1, squeeze_factor=4),
          "rrdbnet": dict(num_feat=8, num_block=1, num_grow_ch=4), "srvgg": dict(num_feat=8, num_conv=2)}[name]
    model = build_arch(name, **kw).eval()
    with torch.no_grad():
        y = model(torch.rand(1, 3, 8, 8))
    assert y.shape[-1] > 8 and y.shape[1] == 3


def test_unknown_arch_and_bad_width_are_clear_errors():
    with pytest.raises(ValueError, match="unknown arch 'unet3000'.*sid_unet"):
        build_arch("unet3000")
    with pytest.raises(ValueError, match="width must be in"):
        build_arch("sid_unet", width=0)
    with pytest.raises(TypeError, match="width must be a number"):
        build_arch("res_unet", width="half")
    assert "sid_unet" in list_archs() and "edsr" in list_archs()
