#!/usr/bin/env python3
"""One-command set-up and run for ir-prune-plugin: ``python3 dev.py demo`` / ``python3 dev.py test``.

Creates (once) a virtual environment outside the clone, keyed by the lock file, installs the
pinned stack into it, points an editable install of *this* checkout at it, then runs the job.
Later runs reuse the environment and only re-install when ``requirements/lock.txt`` changes.
Override the location with ``IRPRUNE_VENV=/path/to/venv``.
"""
from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent
LOCK = ROOT / "requirements" / "lock.txt"
# basicsr 1.4.2 must be built without build isolation (else pip re-installs torch in a build env).
NO_ISOLATION = ["basicsr==1.4.2"]
VENV = Path(os.environ.get("IRPRUNE_VENV", Path.home() / ".cache" / "ir-prune-plugin" / "venv"))
PY = VENV / "bin" / "python"


def _run(cmd: list[str], **kw) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run([str(c) for c in cmd], check=True,
                   env=dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1"), **kw)


def _spec_hash() -> str:
    h = hashlib.sha256(LOCK.read_bytes())
    h.update("\n".join(NO_ISOLATION).encode())
    return h.hexdigest()[:16]


def ensure_env() -> None:
    """Create or update the shared environment, then install this checkout into it (editable)."""
    VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(VENV.parent / ".lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        stamp = VENV / ".irprune-spec"
        want = _spec_hash()
        if not (PY.exists() and stamp.exists() and stamp.read_text().strip() == want):
            t0 = time.time()
            print(f"[dev] setting up {VENV} (first run: ~3 min, ~6.5 GB) ...", flush=True)
            if not PY.exists():
                _run([sys.executable, "-m", "venv", VENV])
                _run([PY, "-m", "pip", "install", "-q", "pip<25", "wheel"])
            _run([PY, "-m", "pip", "install", "-q", "-r", LOCK])
            _run([PY, "-m", "pip", "install", "-q", "--no-build-isolation", "--no-deps", *NO_ISOLATION])
            stamp.write_text(want)
            print(f"[dev] environment ready in {time.time() - t0:.0f} s", flush=True)
        probe = subprocess.run(
            [PY, "-c", "import ir_prune_plugin, os; print(os.path.dirname(ir_prune_plugin.__file__))"],
            capture_output=True, text=True, cwd="/")
        if probe.returncode != 0 or Path(probe.stdout.strip()) != ROOT / "ir_prune_plugin":
            _run([PY, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                  "--config-settings", "editable_mode=compat", "-e", ROOT])


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in {"demo", "test", "setup", "irprune"}:
        print("usage: python3 dev.py {demo|test|setup|irprune} [args...]", file=sys.stderr)
        return 2
    ensure_env()
    cmd, rest = argv[0], argv[1:]
    env = dict(os.environ, PYTHONNOUSERSITE="1")
    if cmd == "setup":
        return 0
    if cmd == "test":
        rc = subprocess.run([PY, "-m", "pytest", "-q", *rest], cwd=ROOT, env=env).returncode
        if rc == 5:  # pytest: no tests collected -- not a green run
            print("[dev] pytest collected no tests: failing", file=sys.stderr)
            return 1
        return rc
    args = ["demo", *rest] if cmd == "demo" else rest
    return subprocess.run([VENV / "bin" / "irprune", *args], env=env).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
