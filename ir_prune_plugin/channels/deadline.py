"""A wall-clock limit for pure-Python analysis that can blow up (Torch-Pruning group building).

Torch-Pruning's dependency propagation is Python code whose cost depends on the graph: on some
nets (SCUNet: windowed attention with many reshapes and index maps) it runs for many minutes.
:func:`time_limit` lets such a call run in the current thread and, past the limit, raises
:class:`AnalysisTimeout` *inside* it (``PyThreadState_SetAsyncExc``, delivered at the next Python
bytecode), so the caller gets a clear error instead of a hang. Only Python-level loops are
interrupted: a single long C call finishes first.

The limit counts the analysing thread's own CPU time (``time.pthread_getcpuclockid``), so a
loaded machine does not turn a normal analysis into a timeout; a wall-clock backstop of
:data:`WALL_FACTOR` times the limit still ends a thread that stalls without using CPU.
"""
from __future__ import annotations

import contextlib
import ctypes
import os
import threading
import time
from typing import Iterator

__all__ = ["AnalysisTimeout", "DEFAULT_LIMIT_S", "WALL_FACTOR", "time_limit"]

#: Default seconds for one dependency-graph analysis (override with ``IRPRUNE_ANALYSIS_LIMIT_S``).
DEFAULT_LIMIT_S = 40.0
#: The wall-clock backstop, as a multiple of the CPU-time limit.
WALL_FACTOR = 4.0


class AnalysisTimeout(TimeoutError):
    """A channel-dependency analysis exceeded its time limit."""


class _Interrupt(BaseException):
    """Injected into the analysing thread (a BaseException, so ``except Exception`` in the
    analysed code cannot swallow it); turned into :class:`AnalysisTimeout` at the boundary."""


def _limit_from_env() -> float:
    raw = os.environ.get("IRPRUNE_ANALYSIS_LIMIT_S")
    if raw is None:
        return DEFAULT_LIMIT_S
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"IRPRUNE_ANALYSIS_LIMIT_S must be a number of seconds, got {raw!r}") from None
    if value <= 0:
        raise ValueError(f"IRPRUNE_ANALYSIS_LIMIT_S must be positive, got {raw!r}")
    return value


_ACTIVE = threading.local()


@contextlib.contextmanager
def time_limit(what: str, seconds: float | None = None) -> Iterator[None]:
    """Raise :class:`AnalysisTimeout` in this thread if the body runs longer than ``seconds``
    (default :data:`DEFAULT_LIMIT_S` or ``$IRPRUNE_ANALYSIS_LIMIT_S``).

    Nested limits share the outermost one (one budget for a whole analysis)."""
    limit = _limit_from_env() if seconds is None else float(seconds)
    if limit <= 0:
        raise ValueError(f"time limit must be positive, got {seconds!r}")
    if getattr(_ACTIVE, "depth", 0):
        _ACTIVE.depth += 1
        try:
            yield
        finally:
            _ACTIVE.depth -= 1
        return
    _ACTIVE.depth = 1
    target = threading.get_ident()
    done = threading.Event()
    fired = threading.Event()

    try:  # the analysing thread's CPU clock (Linux, most Unixes); else wall-clock only
        clock = time.pthread_getcpuclockid(target)
        cpu_start = time.clock_gettime(clock)
    except (AttributeError, OSError):
        clock = None
    wall_end = time.monotonic() + (limit * WALL_FACTOR if clock is not None else limit)

    def over_limit() -> bool:
        if time.monotonic() >= wall_end:
            return True
        try:
            return clock is not None and time.clock_gettime(clock) - cpu_start >= limit
        except OSError:  # the thread is gone: nothing left to interrupt
            return False

    def watchdog() -> None:
        while not done.wait(min(0.25, limit)):
            if over_limit():
                fired.set()
                ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(target), ctypes.py_object(_Interrupt))
                return

    thread = threading.Thread(target=watchdog, name="irprune-time-limit", daemon=True)
    thread.start()
    try:
        yield
    except _Interrupt as exc:
        raise AnalysisTimeout(
            f"{what} did not finish within {limit:.0f} s of CPU time: Torch-Pruning's dependency analysis does not "
            "scale to this graph (typically windowed attention with many reshapes). Prune the parts "
            "of the network you care about with ignored_layers=..., or raise the limit with "
            "IRPRUNE_ANALYSIS_LIMIT_S") from None
    finally:
        _ACTIVE.depth = 0
        done.set()
        thread.join()
        if fired.is_set():
            # the exception may still be pending if the body ended just as it fired: clear it
            ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(target), None)
