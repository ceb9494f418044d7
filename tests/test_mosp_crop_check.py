"""benchmarks/mosp_crop_check.py: a dense net scored at several crop sizes, missing weights reported, never trained."""
import pytest
from conftest import load_benchmark


@pytest.fixture(scope="module")
def crop_check():
    return load_benchmark("mosp_crop_check")


def test_shipped_quick_net_is_scored_per_crop_and_a_seed_without_weights_is_not_trained(crop_check, tmp_path):
    from ir_prune_plugin.studies.mosp_study import QUICK

    md = crop_check.check(QUICK, tmp_path, [0, 5], [32, 48])
    rows = md.splitlines()
    assert rows[0] == "| seed | 32 px: net / noisy | 48 px: net / noisy |"
    cells = [c.strip() for c in rows[2].split("|")[2:4]]
    for cell in cells:   # the shipped quick net beats the noisy input at both sizes
        net, noisy = (float(v) for v in cell.split(" / "))
        assert net > noisy + 3
    assert rows[3].startswith(f"| 5 | no weights in {tmp_path} |")
    assert list(tmp_path.iterdir()) == []   # nothing was trained or cached
