"""N:M masks as removable ``torch.nn.utils.parametrize`` parametrizations.

Three masks share one layout (ranks of |w| inside each N:M group, see :mod:`.nm`):
``FixedNMMask`` keeps the N best-ranked weights (one-shot / finetune), ``ScoredNMMask`` keeps a
prefix chosen by ordered trainable scores (SLS search), ``STENMMask`` recomputes the mask from
the weights at every forward and passes gradients straight through to all weights (SR-STE).
"""
from __future__ import annotations

from typing import Iterable

import torch
from torch import nn
from torch.nn.utils import parametrize

from .nm import group_ranks, nm_mask


def ordered_gate(scores: torch.Tensor, threshold: float = 0.5) -> torch.Tensor:
    """Keep-gate over ranks 0..M-1 from M-1 scores: monotone non-increasing by construction.

    ``prob = cumprod(clamp(scores, 0, 1))`` can never rise again (every factor is <= 1), so the
    hard gate ``prob > threshold`` is always a prefix of ranks: smaller weights go first. The
    reference clamps to 1.03, which breaks this (e.g. scores (0.49, 1.03) keep rank 2 but drop
    rank 1). The straight-through estimator passes the gradient of ``prob`` to the hard gate;
    the clamp passes gradients through too (torch's clamp has zero gradient at the bound 1,
    where every score starts).
    """
    clamped = scores + (scores.clamp(0.0, 1.0) - scores).detach()
    prob = torch.cumprod(clamped, dim=0)
    hard = (prob > threshold).to(prob.dtype)
    ste = hard - prob.detach() + prob
    return torch.cat([torch.ones(1, dtype=prob.dtype, device=prob.device), ste])


class FixedNMMask(nn.Module):
    """Keep the ``N`` largest-magnitude weights of each group (ranks refreshed on demand)."""

    def __init__(self, weight: torch.Tensor, N: int, M: int, transposed: bool) -> None:
        super().__init__()
        self.N, self.M, self.transposed = int(N), int(M), bool(transposed)
        self.register_buffer("ranks", group_ranks(weight, M, transposed))

    def refresh(self, weight: torch.Tensor) -> None:
        """Recompute the magnitude ranks from ``weight`` (the dense original)."""
        self.ranks.copy_(group_ranks(weight, self.M, self.transposed))

    def mask(self) -> torch.Tensor:
        """The current 0/1 mask (same shape as the weight)."""
        return (self.ranks < self.N).float()

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return weight * (self.ranks < self.N).to(weight.dtype)


class ScoredNMMask(FixedNMMask):
    """SLS mask: weight * gate[rank] with M-1 ordered trainable scores (N = 1 + kept units).

    The scores are a gradient-carrying *buffer*, not a parameter: they are the pruner's state
    (updated by its own optimizer in ``SLSPruner.step``), so a user's optimizer built from
    ``model.parameters()`` only ever sees the weights.
    """

    def __init__(self, weight: torch.Tensor, M: int, transposed: bool) -> None:
        super().__init__(weight, M, M, transposed)
        self.register_buffer("scores", torch.ones(M - 1, dtype=weight.dtype, device=weight.device).requires_grad_())
        self.frozen_n: int | None = None
        self.straight_through = False  # after the search: SR-STE-style masks (recomputed, dense grads)

    def current_n(self) -> int:
        """N implied by the hard gate (or the frozen N once the search is over)."""
        if self.frozen_n is not None:
            return self.frozen_n
        with torch.no_grad():
            return int(ordered_gate(self.scores).round().sum())

    def soft_n(self) -> torch.Tensor:
        """N with straight-through gradient to the scores (for the MACs regulariser)."""
        return ordered_gate(self.scores).sum()

    def freeze(self, n: int | None = None, straight_through: bool = False) -> None:
        """Fix N (the current hard N by default) and stop training the scores.

        ``straight_through``: from now on recompute the N:M mask from the weights at every
        forward and pass gradients to all weights (SR-STE finetuning with this layer's N).
        """
        self.straight_through = bool(straight_through)
        self.frozen_n = self.current_n() if n is None else int(n)
        self.N = self.frozen_n
        self.scores.requires_grad_(False)

    def project(self) -> None:
        """Keep the scores inside [0, 1] so that gradients keep flowing through the clamp."""
        with torch.no_grad():
            self.scores.clamp_(0.0, 1.0)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        if self.frozen_n is not None and self.straight_through:
            return _StraightThrough.apply(weight, nm_mask(weight, self.N, self.M, self.transposed))
        if self.frozen_n is not None:
            return super().forward(weight)
        gate = ordered_gate(self.scores).to(weight.dtype)
        return weight * gate[self.ranks]


class _StraightThrough(torch.autograd.Function):
    """Forward ``w * mask``; backward passes the gradient to every weight (dense)."""

    @staticmethod
    def forward(ctx, weight: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        return weight * mask

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        return grad, None


class STENMMask(nn.Module):
    """SR-STE mask: magnitude N:M recomputed from the weight at every forward, dense gradient."""

    def __init__(self, N: int, M: int, transposed: bool) -> None:
        super().__init__()
        self.N, self.M, self.transposed = int(N), int(M), bool(transposed)

    def mask_of(self, weight: torch.Tensor) -> torch.Tensor:
        """Magnitude N:M mask of ``weight``."""
        return nm_mask(weight, self.N, self.M, self.transposed)

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return _StraightThrough.apply(weight, self.mask_of(weight))


def original(module: nn.Module) -> torch.Tensor:
    """The dense weight under a parametrization (or the weight itself)."""
    if parametrize.is_parametrized(module, "weight"):
        return module.parametrizations.weight.original
    return module.weight


def mask_module(module: nn.Module) -> nn.Module | None:
    """The N:M mask parametrization on ``module.weight`` (None when there is none)."""
    if not parametrize.is_parametrized(module, "weight"):
        return None
    for p in module.parametrizations.weight:
        if isinstance(p, (FixedNMMask, STENMMask)):
            return p
    return None


def load_dense_state(net: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load a mask-free state dict (plain ``<layer>.weight`` keys) into ``net`` whose layers may carry
    N:M parametrizations: masked weights go to their dense originals, mask buffers are kept."""
    masked = {name for name, m in net.named_modules() if mask_module(m) is not None}
    mapped = {}
    for key, value in state.items():
        layer, _, leaf = key.rpartition(".")
        if leaf == "weight" and layer in masked:
            key = f"{layer}.parametrizations.weight.original" if layer else "parametrizations.weight.original"
        mapped[key] = value
    missing, unexpected = net.load_state_dict(mapped, strict=False)
    missing = [k for k in missing if "parametrizations.weight.0." not in k]
    if missing or unexpected:
        raise ValueError(f"state does not fit the network: missing {missing[:6]}, unexpected {unexpected[:6]}")


def attach(module: nn.Module, mask: nn.Module) -> None:
    """Register ``mask`` on ``module.weight`` (unsafe=False: shape checked by parametrize)."""
    parametrize.register_parametrization(module, "weight", mask)


def squash(module: nn.Module) -> None:
    """Bake the mask into a plain weight and remove the parametrization."""
    if parametrize.is_parametrized(module, "weight"):
        parametrize.remove_parametrizations(module, "weight", leave_parametrized=True)


def srste_decay(pairs: Iterable[tuple[torch.Tensor, torch.Tensor]], lambda_w: float,
                device: torch.device) -> torch.Tensor:
    """SR-STE's decay ``lambda_w / 2 * sum ||(1 - mask) * W||^2`` over ``(W, mask)`` pairs.

    Its gradient on each dense weight is ``lambda_w * (1 - mask) * W``, the SR-STE term.
    """
    total = torch.zeros((), device=device)
    for w, mask in pairs:
        total = total + (w * (1 - mask)).pow(2).sum()
    return 0.5 * lambda_w * total


def kept_params(model: nn.Module, plan: dict[str, tuple[int, int]]) -> float:
    """N:M-effective parameters: an N:M layer of ``plan`` counts N/M of its weight, the rest in full.

    Search scores (parameters named ``*.scores``) are pruner state, not model parameters.
    """
    modules = dict(model.named_modules())
    total = sum(p.numel() for n, p in model.named_parameters() if not n.endswith(".scores"))
    pruned = sum(original(modules[k]).numel() * (1 - n / m) for k, (n, m) in plan.items() if k in modules)
    return float(total - pruned)
