"""benchmarks/mosp_crop_check.py: a dense net scored at several crop sizes, missing weights reported, never trained."""
import pytest
from conftest import load_benchmark


@pytest.fixture(scope="module")
def crop_check():
    return load_benchmark("mosp_crop_check")


def test_shipped_quick_net_is_scored_per_crop_and_a_seed_without_weights_is_not_trained(crop_check, tmp_path):
    from ir_prune_plugin.studies.mosp_study import QUICK

    from dataclasses import replace

    from ir_prune_plugin.demo import DemoConfig

    quick = DemoConfig.preset_named("quick")   # the quick preset's shipped dense and uniform-width nets
    cfg = replace(QUICK, finetune_steps=quick.finetune_steps, pretrain_steps=quick.pretrain_steps)
    md = crop_check.check(cfg, tmp_path, [0, 5], [32, 48], uniform_budgets=(0.5,))
    rows = md.splitlines()
    assert rows[0] == "| seed | net | 32 px: net / noisy | 48 px: net / noisy |"
    assert [r.split("|")[2].strip() for r in rows[2:]] == ["dense", "uniform width @0.5"] * 2
    for row, gain in zip(rows[2:4], (3.0, 1.0)):   # the shipped quick nets beat the noisy input at both sizes
        for cell in (c.strip() for c in row.split("|")[3:5]):
            net, noisy = (float(v) for v in cell.split(" / "))
            assert net > noisy + gain
    assert rows[4].startswith(f"| 5 | dense | no weights in {tmp_path} |")
    assert rows[5].startswith(f"| 5 | uniform width @0.5 | no weights in {tmp_path} |")
    assert list(tmp_path.iterdir()) == []   # nothing was trained or cached
