"""benchmarks/mosp_crop_check.py: a dense net scored at several crop sizes, missing weights reported, never trained."""
import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def crop_check():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("bench_mosp_crop_check", ROOT / "benchmarks" / "mosp_crop_check.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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
