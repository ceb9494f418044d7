"""The ``irprune`` subcommands: one module per command, each with ``add_parser(subparsers)`` and ``run(args)``.

The modules import torch and the library at module level; :data:`SUMMARIES` holds each command's
one-line help, so ``irprune --help`` lists every command without importing any of them.
"""
from __future__ import annotations

import argparse

__all__ = ["SUMMARIES", "add_command"]

#: command name -> its one-line help (``irprune --help``), in the order the help lists them
SUMMARIES: dict[str, str] = {
    "demo": "run the side-by-side pruning study on embedded photos",
    "export": "export a network to ONNX (dynamic HxW) and check it against ONNX Runtime",
    "memory": "peak activation memory of a network at a given input size",
    "pretrain": "train the demo's dense (and uniform-width) U-Nets; write fp16 weights + manifest",
    "prune": "prune a network with MOSP (peak memory) or SLS (N:M under a MACs budget)",
    "report": "re-render report.md and plots of a finished demo, sweep or BasicSR run",
    "sweep": "sweep methods/budgets with an NNI experiment, print the Pareto front",
}


def add_command(subparsers: argparse._SubParsersAction, name: str, description: str) -> argparse.ArgumentParser:
    """Add subcommand ``name`` with its one-line help from :data:`SUMMARIES` and its ``--help`` text."""
    return subparsers.add_parser(name, help=SUMMARIES[name], description=description)
