"""ONNX Runtime's own execution plan: liveness in its order, checked against its real resident set."""
from __future__ import annotations

import pytest
import torch
from torch import nn

from ir_prune_plugin.deploy.onnx_export import export_onnx, ort_session
from ir_prune_plugin.deploy.ort_memory import peak_rss
from ir_prune_plugin.deploy.ort_options import MEMORY_PLAN
from ir_prune_plugin.deploy.ort_plan import ort_liveness
from ir_prune_plugin.memory import estimate_peak_memory

pytest.importorskip("onnxruntime")
MB = 2 ** 20


class CompactedSkip(nn.Module):
    """A skip connection thinned by a 1x1 compactor before a 3-conv body, concatenated at the end:
    run early (PyTorch's order) the skip costs 2 channels while the body runs, run late 16."""

    def __init__(self) -> None:
        super().__init__()
        self.head = nn.Conv2d(3, 16, 3, padding=1)
        self.compact = nn.Conv2d(16, 2, 1)
        self.body = nn.Sequential(nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1),
                                  nn.ReLU(), nn.Conv2d(16, 16, 3, padding=1))
        self.tail = nn.Conv2d(18, 3, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.head(x)
        skip = self.compact(f)
        return self.tail(torch.cat([self.body(f), skip], 1))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    model = CompactedSkip().eval()
    res = export_onnx(model, tmp_path_factory.mktemp("ort") / "skip.onnx", torch.rand(1, 3, 16, 16),
                      exporter="torchscript")
    return model, res.path


def test_execution_order_decides_the_peak_and_memory_plan_matches_the_estimate(exported):
    model, path = exported
    hw = (128, 96)
    plane = hw[0] * hw[1] * 4
    default = ort_liveness(path, hw, optimization="extended")
    plan = ort_liveness(path, hw, **MEMORY_PLAN)
    assert plan.order.index("/compact/Conv") < plan.order.index("/body/body.0/Conv")  # the file's order
    assert default.order.index("/compact/Conv") > default.order.index("/body/body.4/Conv")  # reverse DFS: late
    # late, the 16-channel head output stays live beside two body maps; early, 2 channels do
    assert default.peak_bytes == pytest.approx(48 * plane, abs=1024)
    assert plan.peak_bytes == pytest.approx(estimate_peak_memory(model, (1, 3, *hw)).peak_bytes, abs=1024)
    assert plan.peak_node == "/Concat" and set(plan.live_at_peak) >= {"/compact/Conv_output_0", "/Concat_output_0"}
    # ONNX Runtime's own arena statistics (its profiler): chunks in use include the input and workspaces
    assert plan.arena_held >= plan.arena_in_use_peak >= plan.peak_bytes
    x = torch.rand(1, 3, *hw)  # the settings change memory, not the result
    outs = [ort_session(path, **opts).run(None, {"input": x.numpy()})[0] for opts in ({}, MEMORY_PLAN)]
    assert abs(outs[0] - outs[1]).max() <= 1e-5


def test_computed_plan_matches_the_measured_resident_set(exported):
    _, path = exported
    hw = (512, 512)
    for order in ("default", "priority"):
        computed = ort_liveness(path, hw, optimization="extended", execution_order=order).peak_bytes
        measured = peak_rss("onnxruntime", path, hw, repeats=1, arena=False, mmap_threshold=65536,
                            optimization="extended", execution_order=order)
        assert measured.first_rise == pytest.approx(computed, rel=0.05), order


def test_bad_options(exported, tmp_path):
    _, path = exported
    with pytest.raises(ValueError, match="execution_order must be one of"):
        ort_liveness(path, (8, 8), execution_order="fastest")
    with pytest.raises(ValueError, match="optimization must be one of"):
        peak_rss("onnxruntime", path, (8, 8), optimization="max")
    with pytest.raises(ValueError, match="does not exist"):
        ort_liveness(tmp_path / "none.onnx", (8, 8))
    with pytest.raises(ValueError, match="positive input size"):
        ort_liveness(path, (0, 8))
