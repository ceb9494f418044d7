"""benchmarks/mosp_curves.py: run specs are checked up front, the table lists every recorded point."""
import pytest
from conftest import load_benchmark


@pytest.fixture(scope="module")
def curves():
    return load_benchmark("mosp_curves")


def test_run_specs_parse_and_bad_ones_name_the_format(curves):
    assert curves.parse_run("uniform:0.5:1500:1") == {"kind": "uniform", "budget": 0.5, "steps": 1500, "seed": 1}
    assert curves.parse_run("dense::1200:0")["budget"] is None
    with pytest.raises(ValueError, match="KIND:BUDGET:STEPS:SEED"):
        curves.parse_run("wide:0.5:10:0")
    with pytest.raises(ValueError, match="needs a budget"):
        curves.parse_run("uniform::10:0")
    assert curves.parse_run("slice:0.5:600:2") == {"kind": "slice", "budget": 0.5, "steps": 600, "seed": 2}
    with pytest.raises(ValueError, match="a slice run needs a budget"):
        curves.parse_run("slice::600:0")
    assert curves.parse_run("dense-ft::1200:1")["kind"] == "dense-ft"
    with pytest.raises(ValueError, match="one of dense, uniform, slice, dense-ft"):
        curves.parse_run("slice:0.5:600")


def test_markdown_lists_each_point_and_the_final_scores(curves):
    run = {"kind": "uniform", "budget": 0.5, "steps": 300, "seed": 2, "width": 0.2966, "params": 684384,
           "curve": [(150, 24.951), (300, 27.16)], "final": {"psnr": 27.16, "psnr_CBSD68": 26.0}}
    md = curves.curves_markdown([run, {**run, "curve": []}])
    assert "| uniform x0.297 | 0.5 | 2 | 300 | 684,384 | 150: 24.95, 300: 27.16 | 27.16 | 26.00 | nan |" in md
    assert "(cached)" in md.splitlines()[-1]
    tuned = curves.curves_markdown([{**run, "kind": "dense-ft", "budget": None, "lr": 5e-4}])
    assert "| dense-ft x0.297, lr 0.0005 | - | 2 |" in tuned
