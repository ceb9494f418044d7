"""Prunable channel units for MOSP: Torch-Pruning coupled groups, their masks and their removal.

A *unit* is one Torch-Pruning group rooted at a layer's output channels: every layer whose output
channels are removed together with the root's (residual adds couple several) plus the consumers
whose input channels follow. MOSP decides how many channels each unit loses; Torch-Pruning does
the surgery.
"""
from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from typing import Any, Iterator, Mapping, Sequence

import torch
import torch_pruning as tp
from torch import nn

from .compactor import Compactor

logger = logging.getLogger(__name__)

__all__ = ["Unit", "UnitGraph", "output_layers", "PRUNABLE_TYPES"]

PRUNABLE_TYPES = (nn.Conv1d, nn.Conv2d, nn.Conv3d, nn.ConvTranspose1d, nn.ConvTranspose2d,
                  nn.ConvTranspose3d, nn.Linear, Compactor)


@dataclass(frozen=True)
class Unit:
    """A coupled channel group: ``root`` decides, ``layers`` lose output channels with it."""

    root: str
    layers: tuple[str, ...]
    width: int


def _adapter() -> Any:
    """The project's Torch-Pruning adapter module, or None while it is not installed."""
    try:
        from ..integrations import torch_pruning as tpi  # noqa: PLC0415  (it imports channels)
    except ImportError as exc:
        if "torch_pruning" not in str(exc) or "integrations" not in str(exc):
            raise
        logger.warning("ir_prune_plugin.integrations.torch_pruning missing: plain Torch-Pruning rules")
        return None
    return tpi


def _tp_extras(model: nn.Module) -> dict[str, Any]:
    """Customized pruners etc. from the project's Torch-Pruning adapter (Compactor, PixelShuffle)."""
    tpi = _adapter()
    if tpi is None:
        return {}
    kwargs = dict(tpi.tp_kwargs(model))
    return {k: v for k, v in kwargs.items() if k in ("customized_pruners", "unwrapped_parameters")}


def _importance() -> Any:
    """Group L2 magnitude importance (with the adapter's Compactor support when it has one)."""
    tpi = _adapter()
    factory = None if tpi is None else (getattr(tpi, "magnitude_importance", None)
                                        or getattr(tpi, "CompactorMagnitudeImportance", None))
    return factory(p=2) if factory is not None else tp.importance.GroupMagnitudeImportance(p=2)


def output_layers(model: nn.Module, example_inputs: Any) -> list[str]:
    """Names of the prunable layers executed last (their widths set the model's output shape)."""
    order: list[str] = []
    hooks = [m.register_forward_hook(lambda _m, _i, _o, n=name: order.append(n))
             for name, m in model.named_modules() if isinstance(m, PRUNABLE_TYPES)]
    try:
        with torch.no_grad():
            model(*_as_tuple(example_inputs))
    finally:
        for h in hooks:
            h.remove()
    return order[-1:] if order else []


def _as_tuple(x: Any) -> tuple:
    return tuple(x) if isinstance(x, (tuple, list)) else (x,)


class UnitGraph:
    """Torch-Pruning dependency graph of ``model`` with MOSP's units, masking and removal."""

    def __init__(self, model: nn.Module, example_inputs: Any, ignored: Sequence[str] = ()) -> None:
        self.model = model
        self.example_inputs = example_inputs
        modules = dict(model.named_modules())
        unknown = [n for n in ignored if n not in modules]
        if unknown:
            raise ValueError(f"ignored layers {unknown} are not modules of the model; "
                             f"known prunable layers: {self._prunable_names(model)[:20]}")
        self.names = {m: n for n, m in modules.items()}
        was_training = model.training
        extras = _tp_extras(model)
        with torch.enable_grad():
            self.dg = tp.DependencyGraph().build_dependency(
                model, example_inputs=example_inputs, verbose=False, **extras)
        model.train(was_training)
        ignored_mods = [modules[n] for n in ignored]
        roots = tuple(PRUNABLE_TYPES) + tuple(extras.get("customized_pruners", {}).keys())
        self.units: dict[str, Unit] = {}
        for group in self.dg.get_all_groups(ignored_layers=ignored_mods, root_module_types=roots):
            root = group[0].dep.target.module
            layers = tuple(dict.fromkeys(
                self.names[d.target.module] for d, _ in group
                if self.dg.is_out_channel_pruning_fn(d.handler) and d.target.module in self.names))
            self.units[self.names[root]] = Unit(self.names[root], layers, len(group[0].idxs))
        self._imp = _importance()

    @staticmethod
    def _prunable_names(model: nn.Module) -> list[str]:
        return [n for n, m in model.named_modules() if isinstance(m, PRUNABLE_TYPES)]

    def widths(self) -> dict[str, int]:
        """Current output channels of every unit root."""
        out = {}
        for root in self.units:
            module = self.model.get_submodule(root)
            out[root] = int(self.dg.get_pruner_of_module(module).get_out_channels(module))
        return out

    def group(self, root: str, idxs: Sequence[int]) -> Any:
        """The Torch-Pruning group removing ``idxs`` of ``root``'s output channels."""
        module = self.model.get_submodule(root)
        pruner = self.dg.get_pruner_of_module(module)
        return self.dg.get_pruning_group(module, pruner.prune_out_channels, list(idxs))

    def channel_order(self, root: str) -> list[int]:
        """Channels of the unit, least important (group L2 magnitude) first; ties by index."""
        module = self.model.get_submodule(root)
        width = int(self.dg.get_pruner_of_module(module).get_out_channels(module))
        with torch.no_grad():
            scores = self._imp(self.group(root, range(width)))
        if scores is None:
            return list(range(width))
        scores = scores.detach().cpu().double()
        return sorted(range(width), key=lambda i: (float(scores[i]), i))

    @contextlib.contextmanager
    def masked(self, root: str, idxs: Sequence[int]) -> Iterator[None]:
        """Temporarily zero ``idxs`` of the unit's output channels (what removing them computes)."""
        handles = []
        for dep, dep_idxs in self.group(root, idxs):
            if not self.dg.is_out_channel_pruning_fn(dep.handler):
                continue
            module = dep.target.module
            if not isinstance(module, nn.Module) or not dep_idxs:
                continue
            dim = -1 if isinstance(module, nn.Linear) else 1
            index = torch.as_tensor(sorted(set(dep_idxs)), dtype=torch.long)
            handles.append(module.register_forward_hook(_zeroer(index, dim)))
        try:
            yield
        finally:
            for h in handles:
                h.remove()

    def remove(self, plan: Mapping[str, Sequence[int]]) -> None:
        """Physically remove output channels: ``{root: idxs}`` through Torch-Pruning groups."""
        for root, idxs in plan.items():   # one group at a time: concat offsets change as we go
            if len(idxs):
                self.group(root, idxs).prune()


def _zeroer(index: torch.Tensor, dim: int):
    def hook(_module: nn.Module, _inputs: Any, output: torch.Tensor) -> torch.Tensor:
        out = output.clone()
        out.index_fill_(dim if dim >= 0 else out.dim() + dim, index.to(out.device), 0.0)
        return out
    return hook
