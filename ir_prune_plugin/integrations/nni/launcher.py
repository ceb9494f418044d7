"""Budget sweeps through NNI's experiment launcher, kept on 127.0.0.1 and inside the output folder.

Two documented run-time patches (nothing in site-packages is edited), active only inside
:func:`local_only_nni`:

* NNI 3.0's web server (``nni_node``) calls ``listen(port)``, i.e. on every interface. A Node
  preload script, passed through ``NODE_OPTIONS=--require``, makes such calls bind 127.0.0.1.
* ``nnictl``'s experiment registry is written to ``~/nni-experiments/.experiment`` whatever the
  working directory; its default folder is pointed inside the sweep's output folder.
* NNI gives its web server 3 s to answer after starting it, which a busy machine misses
  ("Create experiment failed: Expecting value ..."); the start-up check is given 60 tries instead.
  Likewise the tuner process gets 120 s instead of 10 s to connect (same preload script).
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import shlex
import socket
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from tqdm.auto import tqdm

from ...archs import build_arch
from ...channels.mosp import MOSPOptions, MOSPPruner
from ...vocabulary import format_hw
from .sweep_report import pareto_front, plot_fronts
from .trial import DEFAULT_PARAMS, FAIL_MARK, TrialSettings, task_datasets

__all__ = ["SweepOptions", "SweepResult", "default_search_space", "failure_reason", "free_port",
           "load_search_space", "local_only_nni", "pareto_front", "plot_fronts", "run_sweep"]

_log = logging.getLogger(__name__)

SEARCH_SPACE = Path(__file__).with_name("search_space.json")  #: a full space; the default is derived per net
TERMINAL = ("DONE", "ERROR", "STOPPED")
START_TRIES = 60  # seconds NNI's web server may take to come up
TUNER_CONNECT_S = 120  # seconds the tuner process may take to connect (NNI: 10)
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
// ir-prune-plugin: NNI gives the tuner process 10 s to connect; a loaded machine needs longer.
const setTimeout0 = global.setTimeout;
global.setTimeout = function (fn, ms, ...rest) {
  if (ms === 10000 && typeof fn === 'function' && String(fn).includes('Tuner did not connect')) {
    ms = %d;
  }
  return setTimeout0.call(this, fn, ms, ...rest);
};
""" % (1000 * TUNER_CONNECT_S)


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


class _LoopbackURLs(logging.Filter):
    """Keep only the 127.0.0.1 address in NNI's "Web portal URLs" line: the server listens there only."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.msg, str) and record.msg.startswith("Web portal URLs"):
            urls = [u for u in record.msg.split() if "://127.0.0.1:" in u]
            record.msg = f"Web portal URL (this machine only): ${{CYAN}}{urls[0] if urls else ''}"
        return True


def free_port(preferred: int) -> int:
    """``preferred`` when nothing listens on it on 127.0.0.1, else a free port the OS picks."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", preferred))
            return preferred
        except OSError:
            pass
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _log.warning("port %d is in use; the NNI web UI takes port %d instead", preferred, port)
    return port


def default_search_space(settings: TrialSettings, step: float = 0.05) -> dict[str, Any]:
    """The shipped search space with ``sparse_ratio`` limited to what every method can reach on this net.

    MOSP's reach is the smallest peak its channel widths allow (``MOSPPruner.reachable_bytes``, as
    the trial builds it: ``min_channels=1``, no compactors) at ``settings.memory_size``; SLS keeps at
    least 1/M of the MACs; L1 reaches any ratio. The upper end is rounded down to ``step`` with a
    margin of one step, so no trial of the default sweep asks for an unreachable budget.
    """
    space = load_search_space(None)
    model = build_arch(settings.arch, **settings.arch_kwargs)
    x = task_datasets(settings)[0][0]["lq"].unsqueeze(0)
    size = (1, x.shape[1], *settings.memory_size)
    core = MOSPPruner(model, x, 0.99, options=MOSPOptions(memory_input_size=size, min_channels=1,
                                                          compactors=False))
    reach = {"mosp": 1.0 - core.reachable_bytes / core.original_peak, "sls": 1.0 - 1.0 / settings.M, "l1": 0.95}
    methods = space["method"]["_value"]
    top = min(reach[m] for m in methods)
    hi = round(math.floor(round(top / step, 6)) * step - step, 4)
    lo = min(round(step, 4), hi)
    if hi <= 0:
        raise ValueError(f"{settings.arch} {settings.arch_kwargs} cannot be pruned by all of {methods} at "
                         f"{settings.memory_size}: reachable sparse_ratio per method {reach}")
    space["sparse_ratio"] = {"_type": "quniform", "_value": [lo, hi, step]}
    _log.info("default search space: sparse_ratio in [%.2f, %.2f] (reachable: %s)", lo, hi,
              ", ".join(f"{m} {reach[m]:.3f}" for m in methods))
    return space


@contextlib.contextmanager
def local_only_nni(work_dir: Path) -> Iterator[None]:
    """Within the block, NNI's web server binds 127.0.0.1 and its registry lives under ``work_dir``."""
    # nni.experiment and nnictl's tooling (the experiment launcher, a web server) load only when a sweep starts
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
    nni_log = logging.getLogger("nni")
    propagate, url_filter = nni_log.propagate, _LoopbackURLs()
    nni_log.propagate = False  # NNI prints through its own stdout handler; the root's would repeat it
    logging.getLogger("nni.experiment").addFilter(url_filter)
    try:
        yield
    finally:
        logging.getLogger("nni.experiment").removeFilter(url_filter)
        nni_log.propagate = propagate
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
    root = Path(__file__).resolve().parents[3]  # the folder holding the ir_prune_plugin package
    args = ["--task", s.task, "--arch", s.arch, "--arch-kwargs", json.dumps(s.arch_kwargs),
            "--memory-size", format_hw(s.memory_size)]
    for name in ("patch", "val_size", "batch_size", "pretrain_steps", "train_steps", "M", "seed", "threads"):
        args += [f"--{name.replace('_', '-')}", str(getattr(s, name))]
    if s.cache_dir:
        args += ["--cache-dir", s.cache_dir]
    cmd = [sys.executable, "-m", "ir_prune_plugin.integrations.nni.trial", *args]
    return f"PYTHONPATH={shlex.quote(str(root))} " + " ".join(shlex.quote(c) for c in cmd)


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


def failure_reason(trial_dir: Path) -> str:
    """Why a trial failed: its one-line reason from stderr, else the last line there, else a pointer."""
    try:
        lines = [ln.strip() for ln in (trial_dir / "stderr").read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return f"no stderr in {trial_dir}"
    marked = [ln[len(FAIL_MARK):].strip() for ln in lines if ln.startswith(FAIL_MARK)]
    return marked[-1] if marked else (lines[-1] if lines else f"no error output (see {trial_dir})")


class _Progress:
    """Trials done / running / failed on a tqdm bar, plus one log line per finished trial."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.bar = tqdm(total=total, desc="sweep trials", unit="trial", disable=not enabled)
        self.seen: set[str] = set()

    def update(self, jobs: list[Any], trial_dir: Path) -> None:
        counts = {"running": 0, "waiting": 0, "failed": 0}
        for j in jobs:
            if j.status in ("RUNNING", "UNKNOWN"):
                counts["running"] += 1
            elif j.status == "WAITING":
                counts["waiting"] += 1
            elif j.status in TRIAL_DONE:
                counts["failed"] += j.status != "SUCCEEDED"
                if j.trialJobId not in self.seen:
                    self.seen.add(j.trialJobId)
                    params = j.hyperParameters[0].parameters if j.hyperParameters else {}
                    why = "" if j.status == "SUCCEEDED" else f": {failure_reason(trial_dir / j.trialJobId)}"
                    _log.info("trial %s %s %s%s", j.trialJobId, params, j.status, why)
                    self.bar.update(1)
        self.bar.set_postfix(counts, refresh=True)

    def close(self) -> None:
        self.bar.close()


def run_sweep(out_dir: str | os.PathLike, options: SweepOptions = SweepOptions(), *,
              progress: bool = True) -> SweepResult:
    """Run an NNI 'local' experiment over the search space; returns trials and Pareto fronts.

    Everything NNI writes goes under ``out_dir`` (``nni/`` holds the experiment directory and the
    registry); the web UI listens on ``127.0.0.1:<port>`` only (another free port when that one is
    taken). Without ``options.search_space`` the space is :func:`default_search_space` of the
    trial's net. Failed trials keep their reason (``row['reason']``). The experiment is stopped
    before returning, also on errors and timeouts.
    """
    from nni.experiment import Experiment  # the experiment launcher loads only when a sweep starts

    if not isinstance(options, SweepOptions):
        raise TypeError(f"options must be SweepOptions, got {type(options).__name__}")
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    nni_dir = out / "nni"
    trial = options.trial
    if trial.cache_dir is None or not trial.threads:  # share pre-training; split the CPU between trials
        trial = dataclasses.replace(trial, cache_dir=trial.cache_dir or str(out / "cache"),
                                    threads=trial.threads or max(1, (os.cpu_count() or 1) // options.concurrency))
    space = load_search_space(options.search_space) if options.search_space else default_search_space(trial)
    port = free_port(options.port)
    options = dataclasses.replace(options, trial=trial, port=port)  # what ran, as recorded
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
    _log.info("starting NNI experiment: %d trials, %d at a time, web UI on http://127.0.0.1:%d",
              options.trials, options.concurrency, port)
    with local_only_nni(nni_dir):
        exp.start(port)
        trial_dir = nni_dir / "experiments" / exp.id / "trials"
        bar = _Progress(options.trials, progress)
        try:
            deadline = time.monotonic() + options.timeout_s
            while True:
                status = exp.get_status()
                jobs = exp.list_trial_jobs()
                bar.update(jobs, trial_dir)
                if status in TERMINAL:
                    break
                if status == "NO_MORE_TRIAL" and all(j.status in TRIAL_DONE for j in jobs):
                    break
                if time.monotonic() > deadline:
                    _log.warning("sweep timed out after %.0f s (status %s); stopping", options.timeout_s, status)
                    status = "TIMEOUT"
                    break
                time.sleep(1.0)
            rows = _rows(exp)
        finally:
            bar.close()
            exp.stop()
    for r in rows:
        if r["status"] == "FAILED":
            r["reason"] = failure_reason(trial_dir / r["trial"])
        elif r["status"] != "SUCCEEDED":
            r["reason"] = f"{r['status']} when the sweep ended ({status})"
    done = [r for r in rows if isinstance(r.get("default"), (int, float))]
    files = {"results": str(out / "sweep_results.json")}
    front_mem, front_macs = pareto_front(done, "peak_mb"), pareto_front(done, "macs")
    if rows:
        files["plot"] = str(plot_fronts(rows, out / "pareto.png", asdict(trial)))
    Path(files["results"]).write_text(json.dumps(
        {"experiment_id": exp.id, "status": status, "options": asdict(options), "search_space": space,
         "trials": rows, "front_peak_mb": front_mem, "front_macs": front_macs}, indent=1, default=str),
        encoding="utf-8")
    return SweepResult(rows, front_mem, front_macs, status, exp.id, files)
