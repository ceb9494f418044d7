"""``python -m ir_prune_plugin.train -opt X.yml [--auto_resume] [--launcher pytorch] [--debug]``.

BasicSR's ``train_pipeline`` with the plugin's compatibility shims applied, its archs, datasets
and ``IRPruneModel`` registered, and the ``pruning:`` block validated before anything starts.
Outputs go to ``./experiments/<name>`` (the working directory is BasicSR's root path).
"""
from __future__ import annotations

from .integrations.basicsr.entry import train_main

if __name__ == "__main__":
    train_main()
