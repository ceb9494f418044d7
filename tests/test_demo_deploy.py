"""The demo's deploy section (MOSP vs tiling vs both at one budget) on a small SID U-Net."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from ir_prune_plugin.archs import build_arch
from ir_prune_plugin.demo.deploy_section import deploy_section
from ir_prune_plugin.demo.render import table


def test_tiled_rows_meet_the_budget_and_cost_no_quality():
    dense = build_arch("sid_unet", width=0.125).eval()
    torch.manual_seed(0)   # the weights this test was written with: PyTorch's default init, not the arch's He init
    for m in dense.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d):
            m.reset_parameters()
    nn.init.normal_(dense.out.weight, std=0.2)  # the zero-initialised head would make the output the input
    size = (128, 192)
    # 160 px crops: several of the plan's tiles each; a pruned net would take the same path as the dense one
    sec = deploy_section(dense, {}, sigma=25, seed=0, memory_size=size, budget=0.25, val_size=160)
    rows = {r["method"]: r for r in sec["rows"]}
    assert set(rows) == {"MOSP alone", "dense, untiled", "tiling alone (dense)"}
    budget = 0.25 * rows["dense, untiled"]["peak_mb_est"]
    assert rows["MOSP alone"]["budget_met"] is False and "cannot be reached" in rows["MOSP alone"]["note"]
    tiled, untiled = rows["tiling alone (dense)"], rows["dense, untiled"]
    assert tiled["budget_met"] and tiled["peak_mb_est"] <= budget < untiled["peak_mb_est"]
    assert abs(tiled["psnr"] - untiled["psnr"]) < 0.01  # the measured overlap hides the seams
    assert tiled["macs_g"] > untiled["macs_g"]          # the overlaps cost extra work
    assert "tiles @2K" in table(sec["rows"]) and "25%" in sec["title"]
    with pytest.raises(ValueError, match="ratio"):
        deploy_section(dense, {}, sigma=25, seed=0, memory_size=size, budget=25)
