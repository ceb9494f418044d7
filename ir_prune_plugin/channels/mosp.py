"""MOSP: memory-oriented structural pruning to a peak activation-memory budget.

Outer loop: profile the pruning groups (tensors live together at one execution step) at
``memory_input_size``; take the group with the most bytes and cut it by ``outer_stride``;
finetune. Inner loop: split that cut into ``inner_step`` pieces; for each, measure per-unit
sensitivities by masking the least important channels, solve the HiGHS MILP
(:func:`~.lp.solve_memory_lp`) and remove the channels physically with Torch-Pruning.

The caller's model is never modified: the pruner works on deep copies and ``prune()`` returns
a new, physically smaller module.
"""
from __future__ import annotations

import copy
import logging
import math
import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from ..inputs import check_example_inputs, model_dtype, primary_output
from ..budgets import BudgetLike, parse_memory_budget
from ..memory import estimate_peak_memory
from ..memory.groups import GroupCost
from ..vocabulary import SITES_ATTR, format_bytes
from .compactor import insert_compactors
from .deadline import time_limit
from .history import MOSPHistory, StepRecord, check_history_path, check_resume, model_fingerprint
from .lp import floor_sensitivities, solve_memory_lp
from .plan_apply import replay_history
from .rules.reparam import fuse_reparam
from .safety import check_forward
from .sensitivity import Evaluator, call_evaluate, measure_sensitivities
from .tp_graph import UnsupportedArchitectureError, output_layers
from .units import UnitGraph

log = logging.getLogger(__name__)

__all__ = ["MOSPOptions", "MOSPPruner", "check_finetuned", "group_costs"]

Finetune = Callable[[nn.Module], "nn.Module | None"]


@dataclass(frozen=True)
class MOSPOptions:
    """MOSP settings (paper defaults where it has them)."""

    memory_input_size: tuple[int, ...] = (1, 3, 1080, 2048)  #: input the peak is estimated at
    outer_stride: int = 2 * 2 ** 20          #: bytes cut from the worst group per outer step
    inner_step: int | None = None            #: bytes per LP step; None: largest per-channel bytes
    compactors: bool = True                  #: insert compactors on long skips first
    min_channels: int | float = 4            #: per-unit floor: int channels, or a fraction of width
    round_to: int | None = None              #: remove channels in multiples of this
    ignored_layers: tuple[str, ...] = ()     #: never pruned (the output layer always is)
    sensitivity_points: tuple[int, ...] = (1, 2)   #: channel counts (x round_to) masked per unit
    seed: int = 0
    max_outer_steps: int = 10_000            #: safety stop
    #: picks the image tensor from a tuple/dict output for the default ``evaluate``
    #: (None: the output itself, or its first tensor); not recorded in the history
    output_fn: Callable[[Any], torch.Tensor] | None = None

    def __post_init__(self) -> None:
        size = tuple(self.memory_input_size)
        if len(size) < 3 or any(isinstance(s, bool) or not isinstance(s, int) or s <= 0 for s in size):
            raise ValueError(f"memory_input_size must be positive ints (N, C, H, W), got {self.memory_input_size!r}")
        object.__setattr__(self, "memory_input_size", size)
        for name in ("outer_stride", "max_outer_steps"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise ValueError(f"{name} must be a positive int, got {v!r}")
        if self.inner_step is not None and (isinstance(self.inner_step, bool)
                                            or not isinstance(self.inner_step, int) or self.inner_step <= 0):
            raise ValueError(f"inner_step must be None or a positive int of bytes, got {self.inner_step!r}")
        mc = self.min_channels
        if isinstance(mc, bool) or not (isinstance(mc, int) and mc >= 1 or isinstance(mc, float) and 0 < mc < 1):
            raise ValueError(f"min_channels must be an int >= 1 or a fraction in (0, 1), got {mc!r}")
        if self.round_to is not None and (isinstance(self.round_to, bool) or not isinstance(self.round_to, int)
                                          or self.round_to < 1):
            raise ValueError(f"round_to must be None or an int >= 1, got {self.round_to!r}")
        pts = tuple(self.sensitivity_points)
        if not pts or any(isinstance(p, bool) or not isinstance(p, int) or p < 1 for p in pts):
            raise ValueError(f"sensitivity_points must be positive ints, got {self.sensitivity_points!r}")
        object.__setattr__(self, "sensitivity_points", pts)
        if isinstance(self.ignored_layers, str):
            raise TypeError(f"ignored_layers must be a sequence of module names, got the str {self.ignored_layers!r}")
        object.__setattr__(self, "ignored_layers", tuple(self.ignored_layers))
        if any(not isinstance(n, str) for n in self.ignored_layers):
            raise TypeError(f"ignored_layers must be module names (str), got {self.ignored_layers!r}")
        if not isinstance(self.compactors, bool):
            raise TypeError(f"compactors must be True or False, got {self.compactors!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise TypeError(f"seed must be an int >= 0, got {self.seed!r}")
        if self.output_fn is not None and not callable(self.output_fn):
            raise TypeError(f"output_fn must be a callable (output -> tensor) or None, got {self.output_fn!r}")


def _profile(model: nn.Module, size: Sequence[int]) -> Any:
    """Peak-memory profile at ``size``, in the dtype of the model's weights (fp16/bf16 halve it)."""
    return estimate_peak_memory(model, torch.empty(tuple(size), device="meta", dtype=model_dtype(model)))


def group_costs(profile: Any, graph: UnitGraph) -> list[GroupCost]:
    """Express each profile group in unit widths (layers outside any unit count as fixed).

    A unit channel costs ``sum(bpc[layer] * multiplicity[layer])`` over the unit's layers in the
    group (multiplicity ``r*r`` for a conv feeding a PixelShuffle, else 1). A layer that holds
    only part of the unit's channels (multiplicity 0: one side of a concat, one chunk) is priced
    pro rata, ``bpc * its channels / unit width`` per unit channel (rounded down, the remainder
    fixed): exact at the current widths, an estimate of the slope that the profile re-taken at
    the end corrects.
    """
    owner: dict[str, tuple[str, int]] = {}
    for u in graph.units.values():   # a layer in several groups is priced by the one it cuts whole
        for layer, mult in u.out_layers.items():
            if layer not in owner or mult and not owner[layer][1]:
                owner[layer] = (u.root, mult)
    widths = graph.widths()
    costs = []
    for g in profile.groups:
        per_unit: dict[str, int] = {}
        fixed = int(g.bytes)
        for layer, bpc, channels in zip(g.layers, g.bytes_per_channel, g.out_channels):
            if layer not in owner or bpc == 0:
                continue
            root, mult = owner[layer]
            share = int(bpc) * mult if mult else int(bpc) * int(channels) // max(widths[root], 1)
            per_unit[root] = per_unit.get(root, 0) + share
            fixed -= share * widths[root] if not mult else int(bpc) * int(channels)
        costs.append(GroupCost(int(g.step), tuple(g.layers), fixed, per_unit))
    return costs


def _distortion_loss(reference_model: nn.Module, args: tuple[torch.Tensor, ...],
                     output_fn: Callable[[Any], torch.Tensor] | None = None) -> Evaluator:
    """Default ``evaluate``: L1 distance to the unpruned model's output on the example inputs
    (of the first output tensor, or of ``output_fn(output)``, for a tuple/dict output)."""
    with torch.no_grad():
        reference = primary_output(reference_model.eval()(*args), output_fn).detach().clone()

    def evaluate(model: nn.Module) -> float:
        with torch.no_grad():
            return float(F.l1_loss(primary_output(model(*args), output_fn).float(), reference.float()))
    return evaluate


class MOSPPruner:
    """Prune ``model``'s channels until the estimated peak activation memory meets ``memory_budget``.

    ``memory_budget``: ratio of the original peak (0 < r < 1), ``"r%"``, a size (``"384MB"``) or
    int bytes, at ``options.memory_input_size``. ``evaluate(model) -> float`` is a loss on a
    held-out batch (lower is better; default: L1 to the original model's output on
    ``example_inputs``). ``finetune(model)`` runs after each outer step and may return a
    replacement module. ``resume`` (a :class:`MOSPHistory` or its JSON path) replays recorded
    removals (weights as sliced from ``model``; the finetuning in between is not replayed) and
    continues from there.

    Lifecycle: the constructor validates and decides nothing; :meth:`prune` decides and applies,
    recording the plan in ``history`` (:meth:`state_dict`), which ``channels.plan_apply.apply_history``
    replays on a fresh copy. The constructor is not free on purpose: it profiles the copy once
    (one meta-device ``torch.export``, no real memory) and builds the channel groups, because
    that *is* the validation -- a ratio or percentage budget only becomes bytes against the dense
    peak (``budget_bytes``, which the NNI and BasicSR adapters need before any run), and whether
    the budget is reachable at all depends on the smallest peak the groups allow
    (``reachable_bytes``). Raising that error here, before the caller trains or wraps anything,
    is what the tests and adapters rely on; the same profile then prices every candidate of the
    run (group bytes are linear in widths), so :meth:`prune` does not profile again until it
    confirms the end. With ``options.compactors`` the copy with compactors is profiled once more.
    """

    def __init__(self, model: nn.Module, example_inputs: Any, memory_budget: BudgetLike, *,
                 evaluate: Evaluator | None = None, finetune: Finetune | None = None,
                 options: MOSPOptions | None = None,
                 resume: MOSPHistory | str | os.PathLike | None = None, strict_resume: bool = True) -> None:
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        options = MOSPOptions() if options is None else options
        if not isinstance(options, MOSPOptions):
            raise TypeError(f"options must be MOSPOptions, got {type(options).__name__}")
        for name, fn in (("evaluate", evaluate), ("finetune", finetune)):
            if fn is not None and not callable(fn):
                raise TypeError(f"{name} must be callable or None, got {type(fn).__name__}")
        example_inputs = check_example_inputs(model, example_inputs)
        self.options, self.example_inputs, self.finetune = options, example_inputs, finetune
        self._check_input_size(example_inputs)
        if isinstance(resume, (str, os.PathLike)):
            resume = MOSPHistory.load(resume)
        if resume is not None and not isinstance(resume, MOSPHistory):
            raise TypeError(f"resume must be a MOSPHistory or a path, got {type(resume).__name__}")
        if not isinstance(strict_resume, bool):
            raise TypeError(f"strict_resume must be True or False, got {strict_resume!r}")

        model = copy.deepcopy(model)
        fuse_reparam(model)   # prune re-parameterised blocks in their deploy form (same eval output)
        reference = copy.deepcopy(model)
        profile = _profile(reference, options.memory_input_size)
        self.original_peak = int(profile.peak_bytes)
        self.budget_bytes = parse_memory_budget(memory_budget, self.original_peak)
        self.model_key = model_fingerprint(model)
        self._strict_resume = strict_resume
        if resume is not None:
            check_resume(resume, self.model_key, _options_dict(options), self.budget_bytes, strict=strict_resume)
        self._default_evaluate = evaluate is None
        self.evaluate = evaluate if evaluate is not None else \
            _distortion_loss(reference, example_inputs, options.output_fn)

        work = _with_compactors(model, example_inputs) if options.compactors else copy.deepcopy(model)
        self.compactor_sites = list(getattr(work, SITES_ATTR, []) or [])
        with time_limit(f"MOSP's channel analysis of {type(model).__name__}"):
            self.ignored = tuple(dict.fromkeys(options.ignored_layers + tuple(output_layers(work, example_inputs))))
            graph = UnitGraph(work, example_inputs, self.ignored)
        self._shapes = graph.shapes
        if not graph.units:
            left = "; ".join(f"{r}: {why}" for r, why in sorted(graph.refused.items()))
            raise UnsupportedArchitectureError(
                "the model has no prunable layer (no channel group of Conv/ConvTranspose/Linear/Compactor outside "
                f"ignored layers {list(self.ignored)}" + (f"; left alone: {left}" if left else "")
                + "); nothing for MOSP to prune")
        self.min_widths = {r: self._min_width(u.channels) for r, u in graph.units.items()}
        if getattr(work, SITES_ATTR, None) and not getattr(model, SITES_ATTR, None):
            profile = _profile(work, options.memory_input_size)  # compactors were inserted: re-profile
        # Group bytes are linear in the widths with fixed coefficients (spatial sizes do not change),
        # so this one profile serves the whole run (re-taken only to confirm the end).
        costs = group_costs(profile, graph)
        self._costs, self._start_peak = costs, int(profile.peak_bytes)
        self.reachable_bytes = max(c.bytes(self.min_widths) for c in costs)
        if self.budget_bytes < self.reachable_bytes:
            raise ValueError(self._unreachable(memory_budget, graph, costs))
        self._work = work
        #: channel groups left alone (channel-mixing ops, or removal broke the forward): root -> reason
        self.refused: dict[str, str] = dict(graph.refused)
        self.history = self._new_history()
        self._resume = resume

    def _new_history(self) -> MOSPHistory:
        return MOSPHistory(self.budget_bytes, self.original_peak, _options_dict(self.options),
                           model=self.model_key, compactor_sites=[dict(s) for s in self.compactor_sites],
                           ignored=list(self.ignored))

    def reset_weights(self, model: nn.Module) -> None:
        """Start the next :meth:`prune` from ``model``'s current weights (the same architecture, e.g.
        after more training) without building the pruner again; the default ``evaluate`` follows."""
        missing, unexpected = self._work.load_state_dict(model.state_dict(), strict=False)
        missing = [k for k in missing if not k.startswith("compactors.")]
        if missing or unexpected:
            raise ValueError(f"model does not fit this pruner: missing {missing[:5]}, unexpected {unexpected[:5]}")
        if self._default_evaluate:
            self.evaluate = _distortion_loss(copy.deepcopy(model), self.example_inputs, self.options.output_fn)

    # ------------------------------------------------------------------ state
    def state_dict(self) -> dict[str, Any]:
        """The plan so far (the history of removals, plain containers): save it to resume or apply."""
        return {"history": self.history.to_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Resume from :meth:`state_dict`: the next :meth:`prune` replays its removals, then continues."""
        if not isinstance(state, dict) or "history" not in state:
            raise TypeError(f"state must be a dict from MOSPPruner.state_dict(), got {type(state).__name__}")
        history = MOSPHistory.from_dict(state["history"])
        check_resume(history, self.model_key, _options_dict(self.options), self.budget_bytes,
                     strict=self._strict_resume)
        self._resume = history

    def _unreachable(self, memory_budget: BudgetLike, graph: UnitGraph, costs: list[GroupCost]) -> str:
        """Why the budget is out of reach, naming the option that binds."""
        opts = self.options
        read = (f"{memory_budget!r} (an int is read as bytes; pass a ratio such as 0.5 or a size such as "
                f"'384MB')" if isinstance(memory_budget, int) else repr(memory_budget))
        advice = "raise the budget or lower min_channels" + (" or round_to" if (opts.round_to or 1) > 1 else "")
        if opts.round_to and opts.round_to > 1:
            loose = {r: self._min_width(u.channels, 1) for r, u in graph.units.items()}
            if self.budget_bytes >= max(c.bytes(loose) for c in costs):
                advice = (f"round_to={opts.round_to} is what binds (units narrower than about twice it "
                          "cannot lose a whole block): lower round_to or raise the budget")
        return (f"memory budget {read} = {format_bytes(self.budget_bytes)} ({self.budget_bytes} bytes) cannot "
                f"be reached: with min_channels={opts.min_channels!r} and round_to={opts.round_to!r} the "
                f"smallest peak is {format_bytes(self.reachable_bytes)} ({self.reachable_bytes} bytes); {advice}")

    def _check_input_size(self, example_inputs: tuple[torch.Tensor, ...]) -> None:
        first = example_inputs[0]
        size = self.options.memory_input_size
        if first.dim() != len(size) or first.shape[1] != size[1]:
            raise ValueError(f"options.memory_input_size {size} does not match the example input "
                             f"shape {tuple(first.shape)} (rank and channels must agree)")

    def _min_width(self, width: int, step: int | None = None) -> int:
        """Smallest width a unit can reach: the min_channels floor, in whole round_to blocks."""
        mc = self.options.min_channels
        floor = max(1, min(width, math.ceil(mc * width) if isinstance(mc, float) else mc))
        step = step or self.options.round_to or 1
        return width - (width - floor) // step * step

    # ------------------------------------------------------------------ running
    def prune(self, history_file: str | os.PathLike | None = None, *, progress: bool = True) -> nn.Module:
        """Run MOSP and return the pruned model (a new module; the caller's model is untouched).

        ``history_file``: the history is written there (JSON) after every inner step, so an
        interrupted run can be resumed with ``MOSPPruner(..., resume=history_file)``.
        """
        if history_file is not None:
            history_file = check_history_path(history_file)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.options.seed)
            model = copy.deepcopy(self._work)
            self.history = self._new_history()
            if self._resume is not None:
                model = self._replay(model, self._resume, progress)
            model = self._run(model, history_file, progress)
        check_forward(model, self.example_inputs, self._shapes, change="MOSP")
        if self.refused:
            log.warning("MOSP left %d channel group(s) alone (channel-mixing ops, or removal broke the forward): %s",
                        len(self.refused), ", ".join(sorted(self.refused)))
        return model

    def _replay(self, model: nn.Module, history: MOSPHistory, progress: bool) -> nn.Module:
        model = replay_history(model, history, self.example_inputs, self.ignored, progress=progress)
        self.history.records.extend(history.records)
        return model

    def _run(self, model: nn.Module, history_file: Any, progress: bool) -> nn.Module:
        opts = self.options
        step = opts.round_to or 1
        graph = UnitGraph(model, self.example_inputs, self.ignored)
        costs, start_peak = self._costs, self._start_peak  # the constructor's profile (same graph)
        total_mb = max(start_peak - self.budget_bytes, 0) / 2 ** 20
        bar = tqdm(total=round(total_mb, 2), desc="MOSP", unit="MiB", leave=False, disable=not progress)
        outer = max((r.outer for r in self.history.records), default=-1) + 1
        while True:
            widths = graph.widths()
            worst = max(costs, key=lambda c: c.bytes(widths))
            worst_bytes = worst.bytes(widths)
            bar.n = round(min(max(start_peak - worst_bytes, 0) / 2 ** 20, total_mb), 2)
            bar.refresh()
            if worst_bytes <= self.budget_bytes:
                profile = _profile(model, opts.memory_input_size)
                if profile.peak_bytes <= self.budget_bytes:
                    break
                log.warning("MOSP: linear group model said %d bytes but the profile says %d; re-profiling",
                            worst_bytes, profile.peak_bytes)
                costs = group_costs(profile, graph)
                priced = max(c.bytes(widths) for c in costs)
                if priced <= self.budget_bytes:   # nothing left to cut: re-profiling again would loop forever
                    raise ValueError(
                        f"memory budget {format_bytes(self.budget_bytes)} ({self.budget_bytes} bytes) cannot be "
                        f"reached on {type(model).__name__}: the channel groups account for {priced} bytes at "
                        f"the peak but the profile measures {profile.peak_bytes} at step {profile.peak_step}; "
                        "the rest is held by tensors no group can cut. Raise the budget")
                continue
            if outer >= opts.max_outer_steps:
                raise RuntimeError(f"MOSP stopped after max_outer_steps={opts.max_outer_steps} outer steps at "
                                   f"{format_bytes(worst_bytes)} > budget {format_bytes(self.budget_bytes)}; "
                                   "raise options.max_outer_steps or options.outer_stride")
            target = min(opts.outer_stride, worst_bytes - self.budget_bytes)
            peak = max(c.bytes(widths) for c in costs)
            cut, inner = 0, 0
            while cut < target:
                rec = self._inner_step(graph, worst, widths, target - cut, outer, inner, peak, step)
                self.history.records.append(rec)
                if history_file is not None:
                    self.history.save(history_file)
                cut += rec.group_bytes_before - rec.group_bytes_after
                widths = graph.widths()
                inner += 1
            if self.finetune is not None:
                returned = check_finetuned(model, self.finetune(model))
                if returned is not model:
                    model = returned
                    graph = UnitGraph(model, self.example_inputs, self.ignored)
            outer += 1
        bar.close()
        self.history.finished = True
        self.history.final_peak_bytes = int(profile.peak_bytes)
        if history_file is not None:
            self.history.save(history_file)
        log.info("MOSP: peak %s -> %s (budget %s) in %d outer steps", format_bytes(self.original_peak),
                 format_bytes(profile.peak_bytes), format_bytes(self.budget_bytes), outer)
        return model

    def _inner_step(self, graph: UnitGraph, group: GroupCost, widths: dict[str, int], remaining: int,
                    outer: int, inner: int, peak: int, step: int) -> StepRecord:
        t0 = time.perf_counter()
        self.refused.update(graph.refused)
        roots = sorted(r for r, b in group.per_unit.items()
                       if b > 0 and widths[r] > self.min_widths[r] and r not in self.refused)
        if not roots:
            left = sorted(r for r in group.per_unit if r in self.refused)
            raise RuntimeError(
                f"group at step {group.step} ({format_bytes(group.bytes(widths))}) is over budget but every "
                "unit in it is at its minimum width" + (
                    f" or was left alone because removing its channels broke the forward pass: "
                    + "; ".join(f"{r}: {self.refused[r]}" for r in left) if left else
                    " (budget below the reachable minimum?)"))
        mem = [group.per_unit[r] for r in roots]
        upper = [widths[r] - self.min_widths[r] for r in roots]
        need = min(self.options.inner_step or max(mem), remaining)
        base = call_evaluate(self.evaluate, graph.model)
        sens, _raw = measure_sensitivities(graph, roots, upper, self.evaluate,
                                           self.options.sensitivity_points, step, base)
        lp = solve_memory_lp(floor_sensitivities(sens), mem, need, upper, step)
        removed = {r: sorted(graph.channel_order(r)[:d]) for r, d in zip(roots, lp.removal) if d > 0}
        before = group.bytes(widths)
        removed = graph.remove(removed)
        self.refused.update(graph.refused)
        new_widths = graph.widths()
        return StepRecord(
            outer=outer, inner=inner, group_step=group.step, group_layers=group.layers,
            group_bytes_before=before, group_bytes_after=group.bytes(new_widths), peak_bytes_before=peak,
            need_bytes=int(need), base_loss=base, sensitivities=dict(zip(roots, sens)),
            bytes_per_channel=dict(zip(roots, mem)), lp_removal=dict(zip(roots, lp.removal)),
            removed=removed, widths={r: new_widths[r] for r in removed},
            seconds=time.perf_counter() - t0)


def _with_compactors(model: nn.Module, example_inputs: Any) -> nn.Module:
    """A copy of ``model`` with compactors on its long skips; an fx-untraceable model (BasicSR's
    EDSR/RCAN/RRDBNet, whose skips are short residual adds) is copied without them, with a warning."""
    if getattr(model, SITES_ATTR, None):   # already adapted (e.g. a saved MOSP model): keep them
        return copy.deepcopy(model)
    try:
        work = insert_compactors(model, example_inputs)
    except ValueError as exc:
        if "cannot capture the graph" not in str(exc):
            raise
        log.warning("MOSP: no compactors inserted (%s); pruning without them", exc)
        return copy.deepcopy(model)
    # No site selected: keep the user's own module, not the fx rewrite, whose leaf blocks export
    # without their inner module paths (the memory model then could not price their layers).
    return work if getattr(work, SITES_ATTR, None) else copy.deepcopy(model)


def check_finetuned(model: nn.Module, returned: Any) -> nn.Module:
    """What ``finetune(model)`` may return: None (trained in place) or a module of the same
    structure (every parameter/buffer name and shape of ``model``)."""
    if returned is None or returned is model:
        return model
    if not isinstance(returned, nn.Module):
        raise TypeError(f"finetune(model) must return None (trained in place) or the model, got "
                        f"{type(returned).__name__} {returned!r:.60}")
    have = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    got = {k: tuple(v.shape) for k, v in returned.state_dict().items()}
    if have != got:
        missing = sorted(set(have) - set(got))[:3]
        changed = sorted(k for k in set(have) & set(got) if have[k] != got[k])[:3]
        raise ValueError(f"finetune(model) returned a {type(returned).__name__} whose structure is not the "
                         f"pruned model's (missing {missing}, reshaped {changed}); return None after "
                         "training the model it was given in place, or that same model")
    return returned


def _options_dict(options: MOSPOptions) -> dict[str, Any]:
    d = asdict(options)
    d.pop("output_fn")  # a callable: not JSON, and it does not change which channels go
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}
