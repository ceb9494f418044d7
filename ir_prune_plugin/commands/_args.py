"""Argument types shared by the ``irprune`` subcommands: each checks one argument while argparse parses.

A bad value raises :class:`argparse.ArgumentTypeError`, so argparse stops with exit code 2 and one
line naming the flag (``irprune prune: error: argument --budget: ...``) before any work starts.
"""
from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any, Callable

from ..budgets import check_memory_budget, parse_macs_budget
from ..vocabulary import parse_hw

__all__ = ["existing_file", "hw_size", "int_at_least", "json_object", "macs_ratio", "memory_budget",
           "output_file", "output_file_ending"]


def int_at_least(low: int) -> Callable[[str], int]:
    """An ``int`` type that rejects values below ``low``."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer >= {low}, got {text!r}") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
        return value
    parse.__name__ = f"int >= {low}"
    return parse


def json_object(text: str) -> dict[str, Any]:
    """A JSON object such as ``'{"width": 0.5}'`` (keyword arguments for an arch)."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise argparse.ArgumentTypeError(
            f"must be a JSON object such as '{{\"width\": 0.5}}', got {text!r} ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"must be a JSON object such as '{{\"width\": 0.5}}', got {text!r}")
    return value


def hw_size(text: str) -> tuple[int, int]:
    """``'1080x2048'`` (HEIGHTxWIDTH) -> ``(1080, 2048)``."""
    try:
        return parse_hw(text, "size")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def memory_budget(text: str) -> str:
    """A MOSP budget, checked as :mod:`ir_prune_plugin.budgets` reads it everywhere: a ratio of the
    dense peak (``0.5``, ``'50%'``), bytes (``40000000``) or a size (``'384MB'``)."""
    try:
        return check_memory_budget(text)
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def macs_ratio(text: str) -> float:
    """An SLS budget: the kept share of the prunable MACs, ``0.25`` or ``'25%'``."""
    try:
        return parse_macs_budget(text, name="the kept share of the prunable MACs")
    except (TypeError, ValueError) as exc:
        raise argparse.ArgumentTypeError(f"{exc}; got {text!r}") from None


def existing_file(text: str) -> Path:
    """A path to an existing, readable file."""
    path = Path(text).expanduser()
    if not path.is_file():
        what = "is a directory" if path.is_dir() else "does not exist"
        raise argparse.ArgumentTypeError(f"{text!r} {what}; expected a file")
    if not os.access(path, os.R_OK):
        raise argparse.ArgumentTypeError(f"{text!r} is not readable")
    return path


def output_file(text: str) -> Path:
    """A file path that can be written: not a directory, in an existing, writable folder."""
    path = Path(text).expanduser()
    if not text.strip():
        raise argparse.ArgumentTypeError("an empty path; give a file name such as pruned.pt")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is a directory; give a file name inside it, "
                                         f"e.g. {str(path / 'pruned.pt')!r}")
    folder = path.parent
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"folder {str(folder)!r} of {text!r} does not exist; create it first")
    if not os.access(folder, os.W_OK | os.X_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise argparse.ArgumentTypeError(f"{text!r} cannot be written (no permission)")
    if str(path.resolve()).startswith(("/proc/", "/sys/", "/dev/")):
        raise argparse.ArgumentTypeError(f"{text!r} is on a kernel file system; choose a normal folder")
    return path


def output_file_ending(suffix: str) -> Callable[[str], Path]:
    """An :func:`output_file` type that also requires the file name to end in ``suffix`` (e.g. ``'.onnx'``)."""
    def parse(text: str) -> Path:
        path = output_file(text)
        if path.suffix.lower() != suffix:
            raise argparse.ArgumentTypeError(f"must name a {suffix} file, got {text!r}")
        return path
    parse.__name__ = f"{suffix} file"
    return parse
