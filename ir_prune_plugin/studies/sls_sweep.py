"""SLS evidence over budgets and seeds: SLS vs SR-STE vs one-shot, the plan ablation, adaptive inference.

One seed = one pruning run from the dense EDSR (pretrained once, ``SweepConfig.pretrain_seed``):
at every MACs budget each N:M method prunes a copy and trains it for the same number of steps
(``StudyConfig.finetune_steps``) with that seed:

- ``sls``: SLS search (inside the step budget) then SR-STE finetuning with the searched N per layer;
- ``sls-plan``: the plan ``sls`` searched, applied to the *dense* weights and finetuned with SR-STE
  for all the steps; against ``sr-ste`` (the uniform plan of equal MACs, finetuned by the same
  SR-STE rule, see ``tests/test_sls_study.py``) it isolates the plan from the finetuning;
- ``sr-ste`` / ``one-shot``: uniform N = budget x M.

Then :class:`~ir_prune_plugin.sparsity.adaptive.AdaptiveRestorer` mixes the seed's SLS models per
tile at several MACs budgets; each SLS model alone (same tiling, and untiled) is the reference.
Rows are written after every model (``seed<S>.json``), so a killed run resumes where it stopped.
"""
from __future__ import annotations

import json
import logging
import statistics
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import nn

from ..atomic import write_text_atomic
from ..budgets import parse_macs_budget
from ..data import SRDataset
from ..io import load_pruned, save_pruned
from ..loops import evaluate
from ..macs import total_macs
from ..sparsity import FitOptions
from ..sparsity.adaptive import AdaptiveRestorer, macs_per_pixel
from ..tiling import TileOptions, tile_grid
from ..workloads.figures import finish_figure
from .sls_study import DEEP, StudyConfig, pretrained_edsr, prune_nm, score_model

__all__ = ["SWEEP_METHODS", "BUDGETS", "ADAPTIVE_POINTS", "SweepConfig", "run_seed", "adaptive_curve", "summarize",
           "markdown_tables", "plot_sweep", "plot_adaptive"]

log = logging.getLogger(__name__)

SWEEP_METHODS = ("sls", "sr-ste", "one-shot", "sls-plan")
BUDGETS = (0.25, 0.125, 0.0625)  # the issue's 1/4, 1/8, 1/16 of the prunable layers' MACs
ADAPTIVE_POINTS = (0.25, 0.75)


@dataclass(frozen=True)
class SweepConfig:
    """Budgets (shares of the prunable layers' MACs), methods and the adaptive curve's points.

    ``adaptive_points``: positions in (0, 1) between the cheapest and the costliest SLS model's
    MACs per pixel at which the adaptive mix is measured (empty: no adaptive study).
    ``pretrain_seed``: every seed prunes the dense net pretrained with this seed (the usual
    protocol: one trained model, several pruning runs); ``None``: each seed pretrains its own.
    """

    study: StudyConfig = DEEP
    budgets: tuple[float, ...] = BUDGETS
    methods: tuple[str, ...] = SWEEP_METHODS
    adaptive_points: tuple[float, ...] = ADAPTIVE_POINTS
    tiles: TileOptions = field(default_factory=lambda: TileOptions(tile=48, overlap=4))
    pretrain_seed: int | None = 0

    def __post_init__(self) -> None:
        if not self.budgets:
            raise ValueError("budgets is empty; give at least one MACs share, e.g. (0.25,)")
        for b in self.budgets:
            try:  # the budgets module holds the rule: a ratio in (0, 1), at least 1/M
                if isinstance(b, str):
                    raise TypeError("a number, not text")
                parse_macs_budget(b, self.study.M, name="budget")
            except (TypeError, ValueError) as exc:
                raise ValueError(f"budget {b!r} must be in [1/M, 1) = [{1 / self.study.M:g}, 1) for "
                                 f"N:{self.study.M} ({exc})") from None
        unknown = sorted(set(self.methods) - set(SWEEP_METHODS))
        if unknown or not self.methods:
            raise ValueError(f"methods {list(self.methods)} must be a non-empty subset of {SWEEP_METHODS}")
        if "sls-plan" in self.methods and "sls" not in self.methods:
            raise ValueError("'sls-plan' finetunes the plan that 'sls' searched: add 'sls' to methods")
        if "sls" in self.methods and any(abs(b * self.study.M - 1) < 1e-9 for b in self.budgets):
            warnings.warn(f"budget 1/M = {1 / self.study.M:g} leaves every layer at N=1 (the least an N:"
                          f"{self.study.M} plan keeps): SLS has no plan to search there, its rows measure "
                          "only its training; use M >= 2/budget for a real search", stacklevel=2)
        if any(not 0 < t < 1 for t in self.adaptive_points):
            raise ValueError(f"adaptive_points must lie in (0, 1), got {list(self.adaptive_points)}")
        if self.adaptive_points and ("sls" not in self.methods or len(self.budgets) < 2):
            raise ValueError("the adaptive study mixes the SLS models of >= 2 budgets: add 'sls' and "
                             "a second budget, or set adaptive_points=()")


def _model_path(out: Path, seed: int, budget: float) -> Path:
    return out / "models" / f"sls_seed{seed}_b{budget:g}.pt"


def run_seed(cfg: SweepConfig, out_dir: str | Path, seed: int, eval_sets: dict[str, Any], *,
             cache_dir: str | Path | None = None, progress: bool = False) -> dict:
    """Every (budget, method) of one seed, then the adaptive curve; writes and returns ``seed<S>.json``.

    ``eval_sets`` maps a set name to a paired dataset (whole LR/HR images). Rows already in the
    file are kept (resume); the SLS models are saved under ``models/`` for the adaptive study.
    """
    if not eval_sets:
        raise ValueError("eval_sets is empty; pass e.g. {'Set5': dataset}")
    out = Path(out_dir)
    (out / "models").mkdir(parents=True, exist_ok=True)
    path = out / f"seed{seed}.json"
    state: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    if state and state.get("config") != _config_dict(cfg):
        raise ValueError(f"{path} was written by another configuration; use a fresh --out directory")
    state.update(config=_config_dict(cfg), seed=seed)
    rows: list[dict] = state.setdefault("rows", [])
    done = {(r["budget"], r["method"]) for r in rows}

    def save() -> None:
        write_text_atomic(path, json.dumps(state, indent=2))

    st = cfg.study
    cache = Path(cache_dir) if cache_dir is not None else out / "cache"
    dense = pretrained_edsr(st, cache, seed if cfg.pretrain_seed is None else cfg.pretrain_seed, progress)
    x = torch.zeros(1, 3, st.macs_input, st.macs_input)
    dense_macs = total_macs(dense, x)
    if (None, "dense") not in done:
        scores = score_model(dense, eval_sets, dense_macs, dense_macs, named=True)
        rows.append({"budget": None, "method": "dense", **scores})
        save()
    train = SRDataset("train", scale=2, patch=st.patch, seed=seed + 1, names=st.train_names)
    fopts = FitOptions(lr=st.finetune_lr, batch_size=st.batch_size, seed=seed, progress=progress)
    for budget in cfg.budgets:
        for method in cfg.methods:
            if (budget, method) in done:
                continue
            t0 = time.time()
            plan = None
            if method == "sls-plan":
                plan = next(r["plan_n"] for r in rows if r["budget"] == budget and r["method"] == "sls")
            model, info = prune_nm(method, dense, x, budget, st, train, fopts, plan=plan)
            if method == "sls":
                save_pruned(model, _model_path(out, seed, budget))
            macs = info.pop("macs")
            scores = score_model(model, eval_sets, dense_macs, macs, named=True)
            rows.append({"budget": budget, "method": method, **scores, **info, "seconds": time.time() - t0})
            log.info("seed %d, budget %g, %s: %s", seed, budget, method,
                     {k: v for k, v in rows[-1].items() if k.startswith("psnr")})
            save()
    if cfg.adaptive_points and "adaptive" not in state:
        budgets = sorted(cfg.budgets)
        models = [load_pruned(_model_path(out, seed, b)).eval() for b in budgets]
        val = SRDataset("val", scale=2, val_size=st.val_size)
        quality = [evaluate(m, val, crop_border=2, y_channel=True)["psnr"] for m in models]
        untiled = {b: next(r for r in rows if r["budget"] == b and r["method"] == "sls") for b in budgets}
        state["adaptive"] = adaptive_curve(models, quality, eval_sets, cfg.adaptive_points, cfg.tiles)
        for r in state["adaptive"]:
            if r["method"] == "single":
                b = budgets[r["model"]]
                r["sls_budget"] = b
                r["untiled"] = {k: v for k, v in untiled[b].items() if k.startswith("psnr")}
        save()
    return state


def _config_dict(cfg: SweepConfig) -> dict:
    return json.loads(json.dumps(asdict(cfg)))  # tuples -> lists, as read back from JSON


class _AtBudget(nn.Module):
    """``restorer(x, budget)`` as a plain model for :func:`evaluate`, summing the MACs it spends.

    ``budget`` is in the models' own MACs per pixel; each image gets it times its tiles' area
    over its own area, so that tile overlap (which every row pays) does not eat into the mix.
    """

    def __init__(self, restorer: AdaptiveRestorer, budget: float | None) -> None:
        super().__init__()
        self.restorer, self.budget = restorer, budget
        self.macs, self.pixels = 0.0, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        budget = None
        if self.budget is not None:
            budget = self.budget * sum(b.h * b.w for b in tile_grid(h, w, self.restorer.tiles)) / (h * w)
        out = self.restorer(x, budget)
        self.macs += self.restorer.last_macs
        self.pixels += h * w
        return out


def _measure(restorer: AdaptiveRestorer, budget: float | None, sets: dict[str, Any]) -> dict:
    run = _AtBudget(restorer, budget)
    row = {f"psnr_{name}": evaluate(run, ds, crop_border=2, y_channel=True)["psnr"] for name, ds in sets.items()}
    return {**row, "macs_per_pixel": run.macs / run.pixels}


def adaptive_curve(models: Sequence[nn.Module], quality: Sequence[float], sets: dict[str, Any],
                   points: Sequence[float], tiles: TileOptions) -> list[dict]:
    """Each model alone and the per-tile mix at ``points`` between the cheapest and costliest model.

    Every row runs through the same tiling (so tile overlap costs every row alike); MACs are
    the weight MACs actually spent per LR pixel (N:M layers at N/M), Y-PSNR per set.
    """
    costs = [macs_per_pixel(m) for m in models]
    rows = [{"method": "single", "model": k, "macs_per_pixel_nominal": c,
             **_measure(AdaptiveRestorer([m], [c], scale=2, tiles=tiles), None, sets)}
            for k, (m, c) in enumerate(zip(models, costs))]
    mix = AdaptiveRestorer(list(models), costs, scale=2, quality=list(quality), tiles=tiles)
    for t in points:
        budget = min(costs) + t * (max(costs) - min(costs))
        rows.append({"method": "adaptive", "budget_per_pixel_nominal": budget, **_measure(mix, budget, sets)})
    return rows


def _mean_std(values: Sequence[float]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def _interp(points: list[tuple[float, float]], x: float) -> float:
    """Piecewise-linear y at ``x`` through sorted (x, y) ``points`` (clamped at the ends)."""
    pts = sorted(points)
    if x <= pts[0][0]:
        return pts[0][1]
    for (x0, y0), (x1, y1) in zip(pts, pts[1:]):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0) if x1 > x0 else max(y0, y1)
    return pts[-1][1]


def summarize(seeds: Sequence[dict]) -> dict:
    """Mean ± std over seeds of every (budget, method), paired margins, and the adaptive gains.

    Margins are per-seed differences (same dense net, same budget) averaged over seeds:
    ``sls - sr-ste``, ``sls - one-shot``, ``sls-plan - sr-ste`` (the plan ablation). The adaptive
    gain of a mix is its PSNR minus the line through the single models (same tiling) at its MACs,
    and minus the best single model that costs no more.
    """
    if not seeds:
        raise ValueError("no seed results to summarize")
    sets = [k[5:] for k in seeds[0]["rows"][0] if k.startswith("psnr_")]  # as given (Set5, Set14)
    table: dict[str, dict] = {}
    for key in dict.fromkeys((r["budget"], r["method"]) for s in seeds for r in s["rows"]):
        found = [r for s in seeds for r in s["rows"] if (r["budget"], r["method"]) == key]
        entry: dict[str, Any] = {"budget": key[0], "method": key[1], "n": len(found)}
        for col in [f"psnr_{n}" for n in sets] + ["macs_ratio", "prunable_ratio"]:
            if all(col in r for r in found):
                entry[col] = _mean_std([r[col] for r in found])
        entry["projected"] = sum(bool(r.get("projected")) for r in found)
        table[f"{key[0]}|{key[1]}"] = entry
    margins = []
    for budget in dict.fromkeys(r["budget"] for s in seeds for r in s["rows"] if r["budget"] is not None):
        for a, b in (("sls", "sr-ste"), ("sls", "one-shot"), ("sls-plan", "sr-ste"), ("sls-plan", "sls")):
            diffs = {n: [] for n in sets}
            for s in seeds:
                by = {r["method"]: r for r in s["rows"] if r["budget"] == budget}
                if a in by and b in by:
                    for n in sets:
                        diffs[n].append(by[a][f"psnr_{n}"] - by[b][f"psnr_{n}"])
            if diffs[sets[0]]:
                margins.append({"budget": budget, "a": a, "b": b, "n": len(diffs[sets[0]]),
                                **{f"delta_{n}": _mean_std(d) for n, d in diffs.items()}})
    return {"sets": sets, "seeds": [s["seed"] for s in seeds], "table": list(table.values()),
            "margins": margins, "adaptive": _summarize_adaptive(seeds, sets)}


def _summarize_adaptive(seeds: Sequence[dict], sets: list[str]) -> list[dict]:
    out = []
    per_seed = [s["adaptive"] for s in seeds if s.get("adaptive")]
    if not per_seed:
        return out
    for i, r in enumerate(per_seed[0]):
        same = [rows[i] for rows in per_seed]
        entry: dict[str, Any] = {"method": r["method"], "model": r.get("model"), "n": len(same),
                                 "macs_per_pixel": _mean_std([x["macs_per_pixel"] for x in same])}
        for n in sets:
            entry[f"psnr_{n}"] = _mean_std([x[f"psnr_{n}"] for x in same])
            if r["method"] == "adaptive":
                line, best = [], []
                for rows, x in zip(per_seed, same):
                    singles = [(s["macs_per_pixel"], s[f"psnr_{n}"]) for s in rows if s["method"] == "single"]
                    line.append(x[f"psnr_{n}"] - _interp(singles, x["macs_per_pixel"]))
                    best.append(x[f"psnr_{n}"] - max(p for c, p in singles if c <= x["macs_per_pixel"] + 1e-9))
                entry[f"gain_vs_line_{n}"] = _mean_std(line)
                entry[f"gain_vs_best_single_{n}"] = _mean_std(best)
        out.append(entry)
    return out


def _pm(v: tuple[float, float] | None, fmt: str = "{:.2f}") -> str:
    return "" if v is None else f"{fmt.format(v[0])} ± {fmt.format(v[1])}"


def markdown_tables(summary: dict) -> str:
    """The README tables: PSNR mean ± std per budget and method, the paired margins, the adaptive curve."""
    sets = summary["sets"]
    budgets = [b for b in dict.fromkeys(e["budget"] for e in summary["table"]) if b is not None]
    methods = list(dict.fromkeys(e["method"] for e in summary["table"] if e["budget"] is not None))
    by = {(e["budget"], e["method"]): e for e in summary["table"]}
    lines = ["| method | " + " | ".join(f"{b:g} of MACs: " + " / ".join(sets) for b in budgets) + " |",
             "|---|" + "---|" * len(budgets)]
    dense = by.get((None, "dense"))
    if dense:
        cell = " / ".join(_pm(dense[f"psnr_{n}"]) for n in sets)
        lines.append("| dense | " + " | ".join([cell] * len(budgets)) + " |")
    for m in methods:
        cells = []
        for b in budgets:
            e = by.get((b, m))
            cells.append("" if e is None else " / ".join(_pm(e[f"psnr_{n}"]) for n in sets)
                         + (f" ({e['projected']} projected)" if e.get("projected") else ""))
        lines.append(f"| {m} | " + " | ".join(cells) + " |")
    lines += ["", "| paired margin (dB) | budget | " + " | ".join(sets) + " |", "|---|---|" + "---|" * len(sets)]
    for mg in summary["margins"]:
        lines.append(f"| {mg['a']} − {mg['b']} | {mg['budget']:g} | "
                     + " | ".join(_pm(mg[f"delta_{n}"]) for n in sets) + " |")
    if summary["adaptive"]:
        lines += ["", "| adaptive curve (same tiling) | MACs / LR pixel | " + " | ".join(sets)
                  + " | vs line through singles | vs best cheaper single |", "|---|---|" + "---|" * (len(sets) + 2)]
        for e in summary["adaptive"]:
            name = f"SLS model {e['model']}" if e["method"] == "single" else "adaptive mix"
            gains = [" / ".join(_pm(e.get(f"{g}_{n}"), "{:+.2f}") for n in sets) if e["method"] == "adaptive" else ""
                     for g in ("gain_vs_line", "gain_vs_best_single")]
            lines.append(f"| {name} | {_pm(e['macs_per_pixel'], '{:.0f}')} | "
                         + " | ".join(_pm(e[f"psnr_{n}"]) for n in sets) + " | " + " | ".join(gains) + " |")
    return "\n".join(lines) + "\n"


def _panels(path: str | Path, sets: list[str], draw, xlabel: str, title: str) -> Path:
    """One panel per evaluation set: ``draw(ax, set_name)`` plots the series; PSNR on y."""
    import matplotlib  # matplotlib: heavy, only when a figure is drawn
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(sets), figsize=(5.5 * len(sets), 4), squeeze=False)
    for ax, n in zip(axes[0], sets):
        draw(ax, n)
        ax.set(xlabel=xlabel, ylabel=f"PSNR {n} (dB, Y)", title=f"{title} ({n})")
    return finish_figure(fig, axes, path)


def plot_sweep(summary: dict, path: str | Path) -> Path:
    """PSNR (mean ± std over seeds) vs whole-model MACs ratio, one panel per evaluation set."""
    def draw(ax, n: str) -> None:
        for m in dict.fromkeys(e["method"] for e in summary["table"]):
            pts = sorted((e["macs_ratio"][0], *e[f"psnr_{n}"]) for e in summary["table"] if e["method"] == m)
            ax.errorbar([p[0] for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], marker="o",
                        capsize=3, label=m, linestyle="none" if m == "dense" else "-")
        ax.set_xscale("log", base=2)

    return _panels(path, summary["sets"], draw, "MACs / dense MACs (whole model, log2)",
                   "x2 SR, EDSR: N:M at equal MACs")


def plot_adaptive(summary: dict, path: str | Path) -> Path:
    """The adaptive mix's PSNR-vs-MACs curve beside the single SLS models (mean ± std over seeds)."""
    def draw(ax, n: str) -> None:
        for method, style in (("single", "s--"), ("adaptive", "o-")):
            pts = sorted((e["macs_per_pixel"][0], *e[f"psnr_{n}"]) for e in summary["adaptive"]
                         if e["method"] == method)
            ax.errorbar([p[0] / 1e3 for p in pts], [p[1] for p in pts], yerr=[p[2] for p in pts], fmt=style,
                        capsize=3, label="single SLS models" if method == "single" else "adaptive per-tile mix")

    return _panels(path, summary["sets"], draw, "kMACs per LR pixel (tiled, N:M at N/M)",
                   "Adaptive restorer vs single models")
