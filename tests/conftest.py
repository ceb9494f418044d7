"""Shared fixtures: the standard test images beside the checkout, deterministic seeds."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"

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
