"""Budget sweeps through NNI's experiment launcher, kept on 127.0.0.1 and inside the output folder.

Two documented run-time patches (nothing in site-packages is edited), active only inside
:func:`local_only_nni`:

* NNI 3.0's web server (``nni_node``) calls ``listen(port)``, i.e. on every interface. A Node
  preload script, passed through ``NODE_OPTIONS=--require``, makes such calls bind 127.0.0.1.
* ``nnictl``'s experiment registry is written to ``~/nni-experiments/.experiment`` whatever the
  working directory; its default folder is pointed inside the sweep's output folder.
* NNI gives its web server 3 s to answer after starting it, which a busy machine misses
  ("Create experiment failed: Expecting value ..."); the start-up check is given 60 tries instead.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

from ..._inputs import format_hw
from .trial import TrialSettings

_log = logging.getLogger(__name__)

SEARCH_SPACE = Path(__file__).with_name("search_space.json")
TERMINAL = ("DONE", "ERROR", "STOPPED")
START_TRIES = 60  # seconds NNI's web server may take to come up
TRIAL_DONE = ("SUCCEEDED", "FAILED", "USER_CANCELED", "SYS_CANCELED", "EARLY_STOPPED")

_BIND_JS = """\
// ir-prune-plugin: make listen(port) bind the loopback interface only (NNI's web server).
const net = require('net');
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (...args) {
  if ((typeof args[0] === 'number' || typeof args[0] === 'string') &&
      (args.length === 1 || typeof args[1] === 'function')) {
    args.splice(1, 0, '127.0.0.1');
  }
  return listen.apply(this, args);
};
"""


@dataclass(frozen=True)
class SweepOptions:
    """What to sweep and how: NNI experiment settings plus the fixed trial settings."""

    trials: int = 8
    concurrency: int = 1
    tuner: str = "TPE"
    port: int = 8080
    search_space: str | None = None        #: JSON file; None -> the repo's search_space.json
    timeout_s: float = 3600.0
    trial: TrialSettings = field(default_factory=TrialSettings)

    def __post_init__(self) -> None:
        for name in ("trials", "concurrency"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} must be an int >= 1, got {v!r}")
        if not 1024 <= self.port <= 65534:
            raise ValueError(f"port must be in [1024, 65534], got {self.port!r}")
        if not self.timeout_s > 0:
            raise ValueError(f"timeout_s must be > 0, got {self.timeout_s!r}")


@dataclass
class SweepResult:
    """Finished trials (params + metrics), the Pareto fronts, and the files written."""

    rows: list[dict[str, Any]]
    front_memory: list[dict[str, Any]]
    front_macs: list[dict[str, Any]]
    status: str
    experiment_id: str
    files: dict[str, str]


@contextlib.contextmanager
def local_only_nni(work_dir: Path) -> Iterator[None]:
    """Within the block, NNI's web server binds 127.0.0.1 and its registry lives under ``work_dir``."""
    import nni.experiment.launcher as nni_launcher
    import nni.tools.nnictl.config_utils as config_utils

    work_dir.mkdir(parents=True, exist_ok=True)
    script = work_dir / "bind_localhost.js"
    script.write_text(_BIND_JS, encoding="utf-8")
    old_env = os.environ.get("NODE_OPTIONS")
    old_defaults = config_utils.Experiments.__init__.__defaults__
    os.environ["NODE_OPTIONS"] = f"{old_env or ''} --require {shlex.quote(str(script))}".strip()
    config_utils.Experiments.__init__.__defaults__ = (str(work_dir / "registry"),)
    check = nni_launcher._check_rest_server

    def patient_check(port: int, retry: int = 3, url_prefix: str | None = None) -> None:
        return check(port, retry=max(retry, START_TRIES), url_prefix=url_prefix)

    nni_launcher._check_rest_server = patient_check
    try:
        yield
    finally:
        nni_launcher._check_rest_server = check
        config_utils.Experiments.__init__.__defaults__ = old_defaults
        if old_env is None:
            os.environ.pop("NODE_OPTIONS", None)
        else:
            os.environ["NODE_OPTIONS"] = old_env


def load_search_space(path: str | os.PathLike | None) -> dict[str, Any]:
    """Read and check an NNI search space (``{name: {'_type': ..., '_value': [...]}}``)."""
    path = Path(path) if path is not None else SEARCH_SPACE
    if not path.is_file():
        raise ValueError(f"search space file {str(path)!r} does not exist")
    try:
        space = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"search space file {str(path)!r} is not valid JSON: {exc}") from None
    from .trial import DEFAULT_PARAMS

    if not isinstance(space, dict) or not space:
        raise ValueError(f"search space {str(path)!r} must be a non-empty JSON object")
    for name, spec in space.items():
        if name not in DEFAULT_PARAMS:
            raise ValueError(f"search space {str(path)!r} has parameter {name!r}; the trial knows "
                             f"{sorted(DEFAULT_PARAMS)}")
        if not isinstance(spec, dict) or "_type" not in spec or "_value" not in spec:
            raise ValueError(f"search space entry {name!r} needs '_type' and '_value', got {spec!r}")
    return space


def _trial_command(s: TrialSettings) -> str:
    import ir_prune_plugin

    root = Path(ir_prune_plugin.__file__).resolve().parent.parent
    args = ["--task", s.task, "--arch", s.arch, "--arch-kwargs", json.dumps(s.arch_kwargs),
            "--memory-size", format_hw(s.memory_size)]
    for name in ("patch", "val_size", "batch_size", "pretrain_steps", "train_steps", "M", "seed", "threads"):
        args += [f"--{name.replace('_', '-')}", str(getattr(s, name))]
    if s.cache_dir:
        args += ["--cache-dir", s.cache_dir]
    cmd = [sys.executable, "-m", "ir_prune_plugin.integrations.nni.trial", *args]
    return f"PYTHONPATH={shlex.quote(str(root))} " + " ".join(shlex.quote(c) for c in cmd)


def pareto_front(rows: Sequence[dict[str, Any]], cost: str, score: str = "default") -> list[dict[str, Any]]:
    """Rows not dominated in (lower ``cost``, higher ``score``), sorted by cost."""
    ok = [r for r in rows if isinstance(r.get(cost), (int, float)) and isinstance(r.get(score), (int, float))]
    front = [r for r in ok if not any(
        o[cost] <= r[cost] and o[score] >= r[score] and (o[cost] < r[cost] or o[score] > r[score]) for o in ok)]
    return sorted(front, key=lambda r: (r[cost], -r[score]))


def plot_fronts(rows: Sequence[dict[str, Any]], path: Path) -> Path:
    """PSNR vs peak memory and vs MACs, one colour per method, fronts as lines."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), constrained_layout=True)
    for ax, cost, label, scale in ((axes[0], "peak_mb", "peak activation memory (MiB)", 1.0),
                                   (axes[1], "macs", "MACs (G)", 1e-9)):
        for method in sorted({r.get("method", "?") for r in rows}):
            pts = [r for r in rows if r.get("method", "?") == method]
            ax.scatter([r[cost] * scale for r in pts], [r["default"] for r in pts], label=method)
        front = pareto_front(rows, cost)
        ax.step([r[cost] * scale for r in front], [r["default"] for r in front], where="post",
                color="k", lw=1, label="Pareto front")
        ax.set_xlabel(label)
        ax.set_ylabel("PSNR (dB)")
        ax.grid(alpha=0.3)
    axes[0].legend()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _rows(exp: Any) -> list[dict[str, Any]]:
    rows = []
    for job in exp.list_trial_jobs():
        params = job.hyperParameters[0].parameters if job.hyperParameters else {}
        metric = None
        for m in job.finalMetricData or []:
            data = m["data"] if isinstance(m, dict) else getattr(m, "data", None)
            metric = json.loads(data) if isinstance(data, str) else data
            metric = json.loads(metric) if isinstance(metric, str) else metric
        row = {"trial": job.trialJobId, "status": job.status, **params}
        if isinstance(metric, dict):
            row.update(metric)
        elif isinstance(metric, (int, float)):
            row["default"] = float(metric)
        rows.append(row)
    return rows


def run_sweep(out_dir: str | os.PathLike, options: SweepOptions = SweepOptions()) -> SweepResult:
    """Run an NNI 'local' experiment over the search space; returns trials and Pareto fronts.

    Everything NNI writes goes under ``out_dir`` (``nni/`` holds the experiment directory and the
    registry); the web UI listens on ``127.0.0.1:<port>`` only. The experiment is stopped before
    returning, also on errors and timeouts.
    """
    from nni.experiment import Experiment

    if not isinstance(options, SweepOptions):
        raise TypeError(f"options must be SweepOptions, got {type(options).__name__}")
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    space = load_search_space(options.search_space)
    nni_dir = out / "nni"
    trial = options.trial
    if trial.cache_dir is None or not trial.threads:  # share pre-training; split the CPU between trials
        trial = dataclasses.replace(trial, cache_dir=trial.cache_dir or str(out / "cache"),
                                    threads=trial.threads or max(1, (os.cpu_count() or 1) // options.concurrency))
    exp = Experiment("local")
    cfg = exp.config
    cfg.experiment_name = "irprune-sweep"
    cfg.search_space = space
    cfg.trial_command = _trial_command(trial)
    cfg.trial_code_directory = str(out)
    cfg.trial_concurrency = options.concurrency
    cfg.max_trial_number = options.trials
    cfg.tuner.name = options.tuner
    cfg.tuner.class_args = {"optimize_mode": "maximize"}
    cfg.experiment_working_directory = str(nni_dir / "experiments")
    cfg.training_service.use_active_gpu = False
    status = "UNKNOWN"
    with local_only_nni(nni_dir):
        exp.start(options.port)
        try:
            deadline = time.monotonic() + options.timeout_s
            while True:
                status = exp.get_status()
                if status in TERMINAL:
                    break
                if status == "NO_MORE_TRIAL" and all(j.status in TRIAL_DONE for j in exp.list_trial_jobs()):
                    break
                if time.monotonic() > deadline:
                    _log.warning("sweep timed out after %.0f s (status %s); stopping", options.timeout_s, status)
                    status = "TIMEOUT"
                    break
                time.sleep(1.0)
            rows = _rows(exp)
        finally:
            exp.stop()
    for r in rows:
        if r["status"] != "SUCCEEDED":
            _log.warning("trial %s %s (logs: %s)", r["trial"], r["status"], nni_dir / "experiments" / exp.id)
    done = [r for r in rows if isinstance(r.get("default"), (int, float))]
    files = {"results": str(out / "sweep_results.json")}
    front_mem, front_macs = pareto_front(done, "peak_mb"), pareto_front(done, "macs")
    if done:
        files["plot"] = str(plot_fronts(done, out / "pareto.png"))
    Path(files["results"]).write_text(json.dumps(
        {"experiment_id": exp.id, "status": status, "options": asdict(options), "trials": rows,
         "front_peak_mb": front_mem, "front_macs": front_macs}, indent=1, default=str), encoding="utf-8")
    return SweepResult(rows, front_mem, front_macs, status, exp.id, files)
