"""``irprune sweep`` as a user meets it: sizes, the default space, failed trials, ports, plots, reports."""
from __future__ import annotations

import dataclasses
import json
import shlex
import socket

import pytest

pytest.importorskip("nni")

from ir_prune_plugin.cli import build_parser, main  # noqa: E402
from ir_prune_plugin.integrations.nni import trial as trial_mod  # noqa: E402
from ir_prune_plugin.integrations.nni.launcher import (_trial_command, default_search_space,  # noqa: E402
                                                       failure_reason, free_port)
from ir_prune_plugin.integrations.nni.sweep_report import plot_fronts  # noqa: E402
from ir_prune_plugin.integrations.nni.trial import TrialSettings, run_trial  # noqa: E402

FAST = dict(patch=16, val_size=32, batch_size=2, pretrain_steps=2, train_steps=2)


def test_memory_size_round_trips_from_the_sweep_cli_to_the_trial():
    args = build_parser().parse_args(["sweep", "--out", "x", "--memory-size", "512x128"])
    assert args.memory_size == (512, 128)  # HEIGHTxWIDTH
    settings = TrialSettings(memory_size=args.memory_size)
    cmd = shlex.split(_trial_command(settings))
    trial_args = trial_mod._parser().parse_args(cmd[cmd.index("ir_prune_plugin.integrations.nni.trial") + 1:])
    assert trial_args.memory_size == "512x128"
    assert trial_mod.settings_from_args(trial_args).memory_size == (512, 128)
    assert trial_mod._memory_input(settings, __import__("torch").zeros(1, 3, 8, 8)) == (1, 3, 512, 128)


@pytest.fixture(scope="module")
def default_space_rows(tmp_path_factory):
    """The default space of the default net, and one real trial per method at its hardest budget."""
    settings = dataclasses.replace(TrialSettings(), **FAST, cache_dir=str(tmp_path_factory.mktemp("cache")))
    assert (settings.arch, settings.arch_kwargs, settings.memory_size) == (
        TrialSettings().arch, TrialSettings().arch_kwargs, TrialSettings().memory_size)  # the default net
    space = default_search_space(settings)
    lo, hi, step = space["sparse_ratio"]["_value"]
    rows = []
    for i, method in enumerate(space["method"]["_value"]):
        result = run_trial(settings, {"method": method, "sparse_ratio": hi, "lr": 1e-3})
        rows.append({"trial": f"t{i}", "status": "SUCCEEDED", "method": method, "sparse_ratio": hi, **result})
    return settings, space, rows


def test_default_space_is_what_every_method_reaches_and_its_hardest_trials_succeed(default_space_rows):
    settings, space, rows = default_space_rows
    lo, hi, step = space["sparse_ratio"]["_value"]
    assert 0 < lo < hi < 1 and step == 0.05
    assert hi <= 1 - 1 / settings.M  # SLS keeps at least 1/M
    assert {r["method"] for r in rows} == {"sls", "mosp", "l1"}
    for r in rows:  # the hardest budget of the space was met by each method
        assert r["peak_mb"] <= r["dense_peak_mb"] and r["macs"] < r["dense_macs"]
        assert 5 < r["default"] < 60 and 5 < r["dense_psnr"] < 60
    mosp = next(r for r in rows if r["method"] == "mosp")
    assert mosp["peak_mb"] <= (1 - hi) * mosp["dense_peak_mb"] + 1e-6
    # one step beyond the reach fails: the space is not needlessly narrow
    with pytest.raises(ValueError, match="cannot be reached"):
        run_trial(settings, {"method": "mosp", "sparse_ratio": min(0.95, hi + 0.2), "lr": 1e-3})


def test_a_failing_trial_ends_with_one_reason_line_the_launcher_reads(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("nni.get_next_parameter", lambda: None)
    argv = ["--pretrain-steps", "1", "--train-steps", "1", "--patch", "16", "--val-size", "16",
            "--params", json.dumps({"method": "mosp", "sparse_ratio": 0.95})]
    assert trial_mod.main(argv) == 1
    err = capsys.readouterr().err
    (tmp_path / "stderr").write_text("Traceback (most recent call last):\n  ...\n" + err)
    reason = failure_reason(tmp_path)
    assert reason.startswith("ValueError: ") and "sparse_ratio=0.95" in reason and "cannot be" in reason
    assert failure_reason(tmp_path / "missing").startswith("no stderr")


def test_taken_port_falls_back_to_a_free_one():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        taken = busy.getsockname()[1]
        port = free_port(taken)
        assert port != taken
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))  # really free
    assert free_port(port) == port


def test_plot_and_report_show_failed_trials_dense_point_and_size(default_space_rows, tmp_path):
    settings, space, rows = default_space_rows
    failed = {"trial": "tX", "status": "FAILED", "method": "mosp", "sparse_ratio": 0.9,
              "reason": "ValueError: memory budget 0.1 = 0.48 MiB cannot be reached"}
    all_rows = rows + [failed]
    from ir_prune_plugin.integrations.nni.sweep_report import pareto_front
    (tmp_path / "sweep_results.json").write_text(json.dumps({
        "experiment_id": "abc", "status": "DONE", "options": {"trial": dataclasses.asdict(settings)},
        "search_space": space, "trials": all_rows, "front_peak_mb": pareto_front(rows, "peak_mb"),
        "front_macs": pareto_front(rows, "macs")}))
    assert main(["report", str(tmp_path)]) == 0
    md = (tmp_path / "report.md").read_text()
    assert "cannot be reached" in md and "## Failed trials" in md and "HxW 256x256" in md
    assert (tmp_path / "pareto.png").read_bytes()[:4] == b"\x89PNG"
    import matplotlib.pyplot as plt
    png = tmp_path / "direct.png"
    plot_fronts(all_rows, png, dataclasses.asdict(settings))
    img = plt.imread(png)
    assert img.shape[0] > 400 and img.shape[1] > 1000


def test_report_names_the_folder_kinds_it_takes(tmp_path, capsys):
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "results.json" in err and "sweep_results.json" in err and "BasicSR" in err


def test_sweep_help_states_defaults_and_hxw(capsys):
    assert main(["sweep", "--help"]) == 0
    text = capsys.readouterr().out
    assert "HEIGHTxWIDTH" in text and "(default: 256x256)" in text and "(default: 8)" in text
    assert "free port" in text


@pytest.mark.slow
def test_default_sweep_on_the_default_net_has_no_failed_trial(tmp_path, monkeypatch, capsys):
    """A real NNI experiment with the derived default space; its preferred port is taken."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MPLCONFIGDIR", str(tmp_path / "mpl"))
    (tmp_path / "home").mkdir()
    out = tmp_path / "sweep"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        taken = busy.getsockname()[1]
        argv = ["sweep", "--out", str(out), "--trials", "3", "--concurrency", "2", "--tuner", "Random",
                "--port", str(taken), "--timeout", "900",
                *[a for k, v in FAST.items() for a in (f"--{k.replace('_', '-')}", str(v))]]
        rc = main(argv)
    captured = capsys.readouterr()
    text = captured.out
    assert "sweep trials" in captured.err and "3/3" in captured.err  # the progress bar: trials done / total
    saved = json.loads((out / "sweep_results.json").read_text())
    assert rc == 0, text
    assert len(saved["trials"]) == 3 and all(r["status"] == "SUCCEEDED" for r in saved["trials"]), saved["trials"]
    assert "3/3 trials succeeded" in text
    lo, hi, _ = saved["search_space"]["sparse_ratio"]["_value"]
    assert all(lo <= r["sparse_ratio"] <= hi for r in saved["trials"])
    trial = saved["options"]["trial"]
    assert trial["threads"] >= 1 and trial["cache_dir"] == str((out / "cache").resolve())
    assert saved["options"]["port"] != taken
    assert (out / "report.md").is_file() and (out / "pareto.png").stat().st_size > 0
    assert main(["report", str(out)]) == 0


def test_nni_logs_once_and_names_only_the_loopback_portal(tmp_path):
    import logging

    from ir_prune_plugin.integrations.nni.launcher import local_only_nni

    nni_log, exp_log = logging.getLogger("nni"), logging.getLogger("nni.experiment")
    before = nni_log.propagate
    with local_only_nni(tmp_path / "nni"):
        assert nni_log.propagate is False  # NNI's own stdout handler prints it; the root's would repeat it
        record = logging.LogRecord("nni.experiment", logging.INFO, __file__, 1,
                                   "Web portal URLs: ${CYAN}http://127.0.0.1:8080 http://10.1.2.3:8080", None, None)
        assert all(f.filter(record) for f in exp_log.filters)
        assert "127.0.0.1:8080" in record.getMessage() and "10.1.2.3" not in record.getMessage()
    assert nni_log.propagate is before and not exp_log.filters
