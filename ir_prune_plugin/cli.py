"""``irprune``: the plugin's command line (demo, export, memory, pretrain, prune, report, sweep)."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys
from typing import Any, NoReturn

from ._version import __version__

# Each subcommand lives in ir_prune_plugin/commands/<name>.py with add_parser(subparsers) and run(args).
COMMANDS = ("demo", "export", "memory", "pretrain", "prune", "report", "sweep")


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors (``irprune prune: error: argument --budget: ...``, exit 2) and
    every default shown in ``--help``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", argparse.ArgumentDefaultsHelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    """The ``irprune`` argument parser with every available subcommand."""
    parser = _Parser(
        prog="irprune", description="Memory- and compute-budgeted pruning for image-restoration networks.")
    parser.add_argument("--version", action="version", version=f"ir-prune-plugin {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
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
    parser = build_parser()
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
