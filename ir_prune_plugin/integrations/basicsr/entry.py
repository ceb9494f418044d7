"""Entry points: BasicSR's train/test pipelines with our shims, registrations and early checks.

``python -m ir_prune_plugin.train -opt X.yml [--auto_resume] [--launcher pytorch] [--debug]``
``python -m ir_prune_plugin.integrations.basicsr.entry -opt test.yml`` (BasicSR-style testing)
Both use the current working directory as BasicSR's ``root_path`` (``experiments/``, ``results/``,
``tb_logger/`` are created there; ``--auto_resume`` looks there too).
"""
from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

import yaml

from ...compat import apply_basicsr_shims, apply_dist_shims
from .archs import arch_name
from .options import pruning_config
from .registry import register


def _precheck(argv: Sequence[str]) -> None:
    """Validate the ``pruning:`` block before BasicSR creates folders or starts processes."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("-opt", required=True)
    args, _ = parser.parse_known_args(list(argv))
    if not os.path.isfile(args.opt):
        raise SystemExit(f"option file {args.opt!r} does not exist")
    from basicsr.utils.options import ordered_yaml  # basicsr only after our shims (apply_basicsr_shims)
    with open(args.opt) as f:
        opt = yaml.load(f, Loader=ordered_yaml()[0])
    if isinstance(opt, dict) and opt.get("model_type") == "IRPruneModel":
        arch_name(opt.get("network_g") or {})
        if "pruning" in opt or opt.get("is_train", True):
            pruning_config(opt)


def _prepare(argv: Sequence[str] | None, check: bool) -> None:
    apply_basicsr_shims()
    apply_dist_shims()
    register()
    if argv is not None:
        sys.argv = [sys.argv[0], *argv]
    if check:
        try:
            _precheck(sys.argv[1:])
        except (TypeError, ValueError) as exc:
            raise SystemExit(f"invalid options: {exc}") from None


_RUN_FOLDERS = ("experiments", "tb_logger", "results")


def _remove_empty_folders(root: str, keep: set[str]) -> None:
    """Remove the run folders under ``root`` not in ``keep`` that hold no file (bottom-up)."""
    for name in _RUN_FOLDERS:
        top = os.path.join(root, name)
        if name in keep or not os.path.isdir(top):
            continue
        for folder, _dirs, _files in sorted(os.walk(top), key=lambda w: -len(w[0])):
            try:
                os.rmdir(folder)  # fails (and keeps it) when anything is left inside
            except OSError:
                pass


def train_main(argv: Sequence[str] | None = None) -> None:
    """Run BasicSR's ``train_pipeline`` with the working directory as root.

    A run that fails (e.g. an unreachable budget found when the model is built) leaves no
    empty ``experiments/``, ``tb_logger/`` or ``results/`` folders behind.
    """
    _prepare(argv, check=True)
    from basicsr.train import train_pipeline  # basicsr only after our shims (in _prepare)
    root = os.getcwd()
    existed = {n for n in _RUN_FOLDERS if os.path.isdir(os.path.join(root, n))}
    try:
        train_pipeline(root)
    except BaseException:
        _remove_empty_folders(root, existed)
        _close_process_group(wait=False)
        raise
    _close_process_group(wait=True)


def _close_process_group(wait: bool) -> None:
    """End a ``--launcher pytorch`` run's process group before the interpreter exits: a rank that
    finished first and exited with the group alive aborted ("terminate called without an active
    exception", SIGABRT) in 1 of ~10 torchrun runs. ``wait``: meet the other ranks first."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()


def test_main(argv: Sequence[str] | None = None) -> None:
    """Run BasicSR's ``test_pipeline`` (reloads pruned checkpoints) with the working directory as root."""
    _prepare(argv, check=False)
    from basicsr.test import test_pipeline  # basicsr only after our shims (in _prepare)
    test_pipeline(os.getcwd())


if __name__ == "__main__":
    test_main()
