"""Budget sweeps through NNI's local experiment launcher, on 127.0.0.1, inside the output folder."""
from __future__ import annotations

import json
import math
import os
import socket
import subprocess
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("nni")

from ir_prune_plugin.integrations.nni.launcher import (SweepOptions, load_search_space, local_only_nni,  # noqa: E402
                                                       pareto_front, run_sweep)
from ir_prune_plugin.integrations.nni.trial import TrialSettings  # noqa: E402


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _node() -> str:
    import nni_node

    return str(Path(nni_node.__path__[0]) / "node")


_LISTEN_JS = "const s=require('http').createServer();s.listen(0,()=>{console.log(s.address().address);s.close();});"


def test_web_server_patch_binds_loopback_only(tmp_path):
    env_before = os.environ.get("NODE_OPTIONS")
    plain = subprocess.run([_node(), "-e", _LISTEN_JS], capture_output=True, text=True, timeout=60)
    assert plain.stdout.strip() in ("::", "0.0.0.0")  # what NNI's server does on its own
    import nni.experiment.launcher as nni_launcher
    import nni.tools.nnictl.config_utils as cu

    check_before, registry_before = nni_launcher._check_rest_server, cu.Experiments.__init__.__defaults__
    with local_only_nni(tmp_path / "nni"):
        patched = subprocess.run([_node(), "-e", _LISTEN_JS], capture_output=True, text=True, timeout=60)
        assert cu.Experiments.__init__.__defaults__ == (str(tmp_path / "nni" / "registry"),)
        assert nni_launcher._check_rest_server is not check_before
    assert patched.stdout.strip() == "127.0.0.1", patched.stderr
    assert os.environ.get("NODE_OPTIONS") == env_before  # everything restored
    assert nni_launcher._check_rest_server is check_before
    assert cu.Experiments.__init__.__defaults__ == registry_before


def test_repo_search_space_is_valid_and_bad_ones_are_named(tmp_path):
    space = load_search_space(None)
    assert set(space) == {"method", "sparse_ratio", "lr"}
    assert set(space["method"]["_value"]) == {"sls", "mosp", "l1"}
    lo, hi = space["sparse_ratio"]["_value"][:2]
    assert 0 < lo < hi < 1
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"budget": {"_type": "uniform", "_value": [0, 1]}}))
    with pytest.raises(ValueError, match="'budget'"):
        load_search_space(bad)
    with pytest.raises(ValueError, match="does not exist"):
        load_search_space(tmp_path / "missing.json")


points = st.lists(st.tuples(st.integers(0, 20), st.integers(0, 20)), min_size=1, max_size=30)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)  # a loaded CI box draws slowly
@given(points)
def test_pareto_front_is_exactly_the_non_dominated_set(pts):
    rows = [{"peak_mb": float(c), "default": float(s), "i": i} for i, (c, s) in enumerate(pts)]
    front = pareto_front(rows, "peak_mb")
    ids = {r["i"] for r in front}

    def dominates(a, b):
        return a["peak_mb"] <= b["peak_mb"] and a["default"] >= b["default"] and (
            a["peak_mb"] < b["peak_mb"] or a["default"] > b["default"])

    for r in rows:
        assert (r["i"] in ids) == (not any(dominates(o, r) for o in rows))
    assert [r["peak_mb"] for r in front] == sorted(r["peak_mb"] for r in front)


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if text in cmd:
            found.append(f"{pid}: {cmd[:200]}")
    return found


@pytest.mark.slow
def test_two_trial_local_experiment_end_to_end(tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mpl"))  # matplotlib's own cache, not NNI's
    space = tmp_path / "space.json"
    space.write_text(json.dumps({"method": {"_type": "choice", "_value": ["l1", "sls"]},
                                 "sparse_ratio": {"_type": "choice", "_value": [0.5]}}))
    port = _free_port()
    trial = TrialSettings(patch=16, val_size=32, batch_size=2, pretrain_steps=2, train_steps=2,
                          memory_size=(64, 64))
    options = SweepOptions(trials=2, concurrency=2, port=port, search_space=str(space), timeout_s=170,
                           trial=trial)
    out = tmp_path / "out"

    start = time.monotonic()
    result = run_sweep(out, options)
    elapsed = time.monotonic() - start

    assert elapsed < 180
    assert result.status == "DONE"
    assert len(result.rows) == 2 and all(r["status"] == "SUCCEEDED" for r in result.rows), result.rows
    for r in result.rows:
        assert r["method"] in ("l1", "sls") and r["sparse_ratio"] == 0.5
        assert math.isfinite(r["default"]) and 5 < r["default"] < 60 and r["default"] == r["psnr"]
        assert r["peak_mb"] > 0 and r["macs"] > 0 and r["params"] > 0
    assert result.front_memory and all(f in result.rows for f in result.front_memory)
    saved = json.loads(Path(result.files["results"]).read_text())
    assert saved["experiment_id"] == result.experiment_id and len(saved["trials"]) == 2
    assert Path(result.files["plot"]).stat().st_size > 0
    assert (out / "nni" / "experiments" / result.experiment_id).is_dir()  # NNI wrote inside out/
    assert list(home.iterdir()) == []  # and nothing in the home folder
    deadline = time.monotonic() + 10
    while _processes_mentioning(result.experiment_id) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert _processes_mentioning(result.experiment_id) == []
    assert _processes_mentioning(str(out)) == []
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0  # web server gone
