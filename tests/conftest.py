"""Shared fixtures: the standard test images beside the checkout, deterministic seeds."""
from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"

# Hypothesis keeps its example database under the CWD by default: keep the checkout clean.
try:
    import tempfile

    from hypothesis.configuration import set_hypothesis_home_dir

    set_hypothesis_home_dir(tempfile.mkdtemp(prefix="irprune-hypothesis-"))
except ImportError:  # hypothesis is a test extra
    pass

# The test nets are tiny: one intra-op thread is several times faster than two on a 2-core box.
torch.set_num_threads(1)


@pytest.fixture
def shared_data() -> Path:
    """``../shared/data`` (Set5, Set14, CBSD68, Kodak24); skip when the folder is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"standard test images not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


def load_benchmark(name: str) -> ModuleType:
    """Import ``benchmarks/<name>.py`` (a script, not a package; its own imports resolve)."""
    if str(ROOT / "benchmarks") not in sys.path:   # the scripts import each other (``from mosp import``)
        sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
