"""MOSP inside a BasicSR model: prune once on rank 0 with short finetunes, share the result."""
from __future__ import annotations

import itertools
import logging
import time
from typing import Any, Callable, Iterator

import torch
from torch import nn
from torch.utils.data import DataLoader

from ...channels.mosp import MOSPPruner
from . import dist_sync
from .options import PruningConfig, mosp_options

log = logging.getLogger(__name__)
PROGRESS_EVERY_S = 15.0  #: the BasicSR log gets a MOSP progress line at most this often (and at the first step)


class _ProgressLog:
    """Writes MOSP's progress (outer step, peak vs budget, elapsed, ETA) to BasicSR's logger, so
    ``train_<name>.log`` is not silent while the search runs (the tqdm bar reaches the console only)."""

    def __init__(self, pruner: Any) -> None:
        self.pruner, self.start, self.last = pruner, time.monotonic(), -float("inf")
        self.logger = logging.getLogger("basicsr")  # basicsr.utils.get_root_logger's name

    def __call__(self) -> None:
        now = time.monotonic()
        records = self.pruner.history.records
        if not records or now - self.last < PROGRESS_EVERY_S:
            return
        self.last = now
        rec, orig, budget = records[-1], self.pruner.original_peak, self.pruner.budget_bytes
        done = min(max((orig - rec.peak_bytes_before) / max(orig - budget, 1), 0.0), 1.0)
        elapsed = now - self.start
        eta = f"{elapsed * (1 - done) / done:.0f} s" if done > 0 else "unknown"
        self.logger.info("[MOSP] outer step %d: peak %.2f MiB -> budget %.2f MiB (dense %.2f MiB), %.0f%% "
                         "of the way, %.0f s elapsed, ETA %s", rec.outer + 1, rec.peak_bytes_before / 2 ** 20,
                         budget / 2 ** 20, orig / 2 ** 20, 100 * done, elapsed, eta)


def train_batches(dataset_opt: dict[str, Any], seed: int) -> Iterator[dict]:
    """Endless shuffled batches of the YAML's training set (for MOSP's own finetune/evaluate)."""
    from basicsr.data import build_dataset  # basicsr: loaded by the model that calls this, after our shims
    dataset = build_dataset(dict(dataset_opt, phase="train"))
    g = torch.Generator().manual_seed(int(seed))
    loader = DataLoader(dataset, batch_size=int(dataset_opt["batch_size_per_gpu"]), shuffle=True,
                        generator=g, drop_last=True, num_workers=0)
    if len(loader) == 0:
        raise ValueError(f"training set of {len(dataset)} items is smaller than batch_size_per_gpu")
    while True:
        yield from loader


def run_mosp(net: nn.Module, cfg: PruningConfig, example: torch.Tensor, batches: Iterator[dict],
             loss_fn: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], lr: float,
             device: torch.device, history_file: str | None = None,
             pruner: MOSPPruner | None = None) -> tuple[nn.Module, dict]:
    """MOSP on ``net`` (a copy is pruned) with BasicSR's pixel loss; returns (pruned net, summary).

    ``evaluate`` is the pixel loss on ``cfg.eval_batches`` fixed training batches; ``finetune``
    trains ``cfg.finetune_iters`` Adam steps after each outer step. The step-by-step history is
    written to ``history_file`` (JSON) as it goes. ``pruner``: one built earlier for this network
    and block (it restarts from ``net``'s current weights), so nothing is built twice.
    """
    held_out = [next(batches) for _ in range(cfg.eval_batches)]

    def evaluate(model: nn.Module) -> float:
        was = model.training
        model.eval()
        with torch.no_grad():
            loss = sum(float(loss_fn(model(b["lq"].to(device)), b["gt"].to(device))) for b in held_out)
        model.train(was)
        return loss / len(held_out)

    def finetune(model: nn.Module) -> None:
        progress()
        if cfg.finetune_iters == 0:
            return
        model.train()
        opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=lr)
        for batch in itertools.islice(batches, cfg.finetune_iters):
            loss = loss_fn(model(batch["lq"].to(device)), batch["gt"].to(device))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    if pruner is None:
        pruner = MOSPPruner(net, example, cfg.budget, evaluate=evaluate, finetune=finetune,
                            options=mosp_options(cfg))
    else:
        pruner.reset_weights(net)
        pruner.evaluate, pruner.finetune = evaluate, finetune
    progress = _ProgressLog(pruner)
    pruned = pruner.prune(history_file=history_file)
    hist = pruner.history
    summary = {"original_peak_bytes": int(hist.original_peak_bytes), "budget_bytes": int(hist.budget_bytes),
               "final_peak_bytes": int(hist.final_peak_bytes or 0), "inner_steps": len(hist.records)}
    return pruned, summary


def prune_once(net: nn.Module, run: Callable[[], tuple[nn.Module, dict]]) -> tuple[nn.Module, dict]:
    """Run ``run`` on every rank (same seed, same batches), then hand rank 0's network to all.

    Every rank computes the plan instead of idling in a collective: a long MOSP run would
    otherwise outlast the process group's timeout on the waiting ranks. Rank 0's result is then
    broadcast, so all ranks continue with the identical network even if floating-point
    nondeterminism made their own runs differ.
    """
    pruned, summary = run()
    if not dist_sync.is_dist():
        return pruned, summary
    device = next(net.parameters()).device
    shared = dist_sync.broadcast_object((pruned.cpu(), summary) if dist_sync.rank() == 0 else None)
    return shared[0].to(device), shared[1]
