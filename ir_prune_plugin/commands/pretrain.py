"""``irprune pretrain``: train the demo's dense and uniform-width nets and write them as shipped weights."""
from __future__ import annotations

import argparse
import shlex
import shutil
import tempfile
import time
from pathlib import Path

from ..data import DenoiseDataset
from ..demo import DemoConfig
from ..demo.run import study_config
from ..loops import evaluate
from ..studies.mosp_study import denoise_key, dense_unet, uniform_candidates, uniform_key, uniform_unet
from ..workloads.pretrained import weights_name
from ..workloads.shipped import SHIPPED_DIR, load_state, read_manifest, save_fp16, update_manifest
from . import add_command
from ._args import int_at_least


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``pretrain`` subcommand to ``irprune``."""
    p = add_command(
        subparsers, "pretrain",
        "Train the nets `irprune demo --PRESET` starts from (the dense SID U-Net and, for each MOSP "
        "budget, the uniform-width U-Net trained from scratch, the best of the preset's restarts) exactly "
        "as the demo would, and write them in fp16 with a manifest of their held-out PSNR (and of each "
        "restart's). With the default --out this rewrites the weights shipped in the package; a run of "
        "the preset's own recipe (no --pretrain-steps / --finetune-steps) removes the nets of the same "
        "preset, seed and role it replaces.")
    p.add_argument("--preset", choices=("quick", "default", "full"), default="default")
    p.add_argument("--out", type=Path, default=None,
                   help="output folder (default: the package's ir_prune_plugin/workloads/weights)")
    p.add_argument("--cache-dir", type=Path, default=None,
                   help="reuse fp32 weights trained by this exact key from this cache (default: train anew)")
    p.add_argument("--seed", type=int_at_least(0), default=None, help="default: the preset's (0)")
    p.add_argument("--pretrain-steps", type=int_at_least(1), default=None,
                   help="override the preset's pretraining steps")
    p.add_argument("--finetune-steps", type=int_at_least(1), default=None,
                   help="override the preset's finetune steps (the uniform-width nets train pretrain + finetune)")
    roles = p.add_mutually_exclusive_group()
    roles.add_argument("--no-uniform", action="store_true", help="only the dense net")
    roles.add_argument("--no-dense", action="store_true",
                       help="only the uniform-width nets (after a change of the finetune budget, which "
                            "leaves the dense net as it is)")
    p.add_argument("--no-progress", action="store_true", help="hide progress bars")
    p.set_defaults(func=run)


def superseded(manifest: dict[str, dict], staged: list[tuple[Path, str, dict]], preset: str,
               seed: int) -> list[str]:
    """The manifest's weights that the preset's own nets just staged replace: same preset, training
    seed, role and budget, another name (an older recipe); entries without those fields are kept."""
    roles = {(e["role"], e["budget"]) for _, _, e in staged}
    written = {name for _, name, _ in staged}
    return [name for name, e in manifest.items()
            if name not in written and Path(name).name == name and e.get("preset") == preset
            and (e.get("key") or {}).get("seed") == seed and (e.get("role"), e.get("budget")) in roles]


def run(args: argparse.Namespace) -> int:
    """Run ``irprune pretrain``; returns the exit code."""
    demo = DemoConfig.preset_named(args.preset, seed=args.seed, pretrain_steps=args.pretrain_steps,
                                   finetune_steps=args.finetune_steps)
    cfg = study_config(demo)
    out = args.out if args.out is not None else SHIPPED_DIR
    val = DenoiseDataset("val", sigma=cfg.sigma, val_size=cfg.val_size, seed=demo.seed)
    noisy = evaluate(None, val)["psnr"]
    command = "irprune pretrain " + shlex.join(
        [f"--preset={args.preset}"] + [f"--{k.replace('_', '-')}={v}" for k, v in
                                       (("seed", args.seed), ("pretrain_steps", args.pretrain_steps),
                                        ("finetune_steps", args.finetune_steps)) if v is not None])
    jobs = ([] if args.no_dense else [("dense", None)]) + \
        ([] if args.no_uniform else [("uniform-width", b) for b in cfg.budgets])
    staged: list[tuple[Path, str, dict]] = []
    with tempfile.TemporaryDirectory() as tmp:
        cache = args.cache_dir if args.cache_dir is not None else Path(tmp) / "cache"
        for role, budget in jobs:
            t = time.time()
            if budget is None:
                model, steps, factor = dense_unet(cfg, cache, demo.seed, not args.no_progress, shipped=False), \
                    cfg.pretrain_steps, 1.0
            else:   # the restarts first (trained here, or cached), then the one kept of them
                restarts = None if cfg.uniform_restarts == 1 else uniform_candidates(
                    cfg, budget, cache, demo.seed, not args.no_progress, shipped=False)
                model, factor = uniform_unet(cfg, budget, cache, demo.seed, not args.no_progress, shipped=False)
                steps = cfg.pretrain_steps + cfg.finetune_steps
            arch = {"type": "sid_unet", "width": float(model.width)}
            key = denoise_key(cfg, demo.seed, steps) if budget is None else uniform_key(cfg, demo.seed)
            chosen = {} if budget is None or restarts is None else {"restarts": [
                {"seed": c.seed, "selection_l1": round(c.loss, 6), "psnr": round(evaluate(c.model, val)["psnr"], 4)}
                for c in restarts]}
            filename = weights_name(arch, key)
            path = save_fp16(model, Path(tmp) / "staged" / filename)   # written to ``out`` only if all pass
            reloaded = load_state(type(model)(width=model.width), path)   # score what ships (fp16)
            q = evaluate(reloaded, val)
            if q["psnr"] < noisy:   # a collapsed training (INVESTIGATION (e)): never ship it
                raise ValueError(
                    f"the {role} net ({filename}, seed {demo.seed}) scores {q['psnr']:.2f} dB against "
                    f"{noisy:.2f} dB for the noisy input itself: its training collapsed; nothing was written "
                    f"to {out}. Try another --seed (see benchmarks/results/mosp/INVESTIGATION.md (e))")
            staged.append((path, filename, {
                "role": role, "budget": budget, "width_factor": round(factor, 4), "arch": arch, "key": key,
                "preset": args.preset, "command": command, "seconds": round(time.time() - t, 1),
                "val": {"sigma": cfg.sigma, "val_size": cfg.val_size, "seed": demo.seed},
                "psnr": round(q["psnr"], 4), "ssim": round(q["ssim"], 5), "noisy_psnr": round(noisy, 4), **chosen}))
            print(f"{role}{'' if budget is None else f' @{budget:g} memory'}: {filename} "
                  f"{q['psnr']:.2f} dB (noisy input {noisy:.2f} dB)")
        out.mkdir(parents=True, exist_ok=True)
        for path, filename, _ in staged:
            shutil.copyfile(path, out / filename)
        own_recipe = args.pretrain_steps is None and args.finetune_steps is None
        stale = superseded(read_manifest(out), staged, args.preset, demo.seed) if own_recipe else []
        update_manifest(out, {filename: entry for _, filename, entry in staged}, drop=stale)   # one write
        for name in stale:   # only once the manifest no longer names them
            (out / name).unlink(missing_ok=True)
            print(f"removed {name}: superseded by this run")
    print(f"weights and manifest.json in {out}")
    return 0
