"""``irprune``: the plugin's command line (demo, memory, prune, report, sweep)."""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

# Each subcommand lives in ir_prune_plugin/commands/<name>.py with add_parser(subparsers) and run(args).
COMMANDS = ("demo", "memory", "prune", "report", "sweep")


def build_parser() -> argparse.ArgumentParser:
    """The ``irprune`` argument parser with every available subcommand."""
    from . import __version__

    parser = argparse.ArgumentParser(
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
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError) as exc:
        print(f"irprune {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
