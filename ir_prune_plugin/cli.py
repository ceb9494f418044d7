"""``irprune``: the plugin's command line (demo, export, memory, pretrain, prune, report, sweep)."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Any, Iterable, NoReturn

from ._version import __version__
from .commands import SUMMARIES

# Each subcommand lives in ir_prune_plugin/commands/<name>.py with add_parser(subparsers) and run(args).
COMMANDS = tuple(SUMMARIES)


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``irprune prune: error: argument --budget: ...``, exit 2) and
    every default shown in ``--help``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser(load: Iterable[str] | None = None) -> argparse.ArgumentParser:
    """The ``irprune`` argument parser: every subcommand, with the arguments of those in ``load`` (all
    when None); the others are listed with their one-line help only.

    The subcommand modules import torch and the library at module level, so they are imported here,
    lazily and only when ``load`` names them: ``main`` loads just the command it runs, and
    ``irprune --help`` imports none of them.
    """
    wanted = set(COMMANDS if load is None else load)
    parser = _Parser(
        prog="irprune", description="Memory- and compute-budgeted pruning for image-restoration networks.")
    parser.add_argument("--version", action="version", version=f"ir-prune-plugin {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, summary in SUMMARIES.items():
        if name not in wanted:
            sub.add_parser(name, help=summary)
            continue
        try:
            module = importlib.import_module(f"ir_prune_plugin.commands.{name}")
        except ModuleNotFoundError as exc:  # an optional extra (e.g. nni) is missing
            if exc.name and exc.name.startswith("ir_prune_plugin.commands"):
                continue
            sub.add_parser(name, help=f"(unavailable: {exc})")
            continue
        module.add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``irprune`` console script."""
    words = [a for a in (sys.argv[1:] if argv is None else argv) if not a.startswith("-")]
    parser = build_parser(load=[words[0]] if words and words[0] in SUMMARIES else [])
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version or a bad argument (already reported in one line)
        return int(exc.code or 0)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, OSError) as exc:  # user errors: one line, no traceback
        if args.verbose:
            logging.exception("irprune %s failed", args.command)
        print(f"irprune {args.command}: error: {' '.join(str(exc).split()) or type(exc).__name__}",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"irprune {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
