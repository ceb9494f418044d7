"""Dense vs 2:4 semi-structured sparse kernels: per layer and end to end (CUDA, sm >= 8.0, fp16).

Usage: python benchmarks/semi_structured.py --out /tmp/ss_bench [--feat 256 --blocks 8 --size 256]
On a machine without such a GPU it prints why and exits 0 (nothing to measure).
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from torch import nn
from torch.utils import benchmark

from ir_prune_plugin.archs import build_arch
from ir_prune_plugin.sparsity import nm_mask
from ir_prune_plugin.sparsity.semi_structured import to_semi_structured, why_not_semi_structured


def _time(fn, x: torch.Tensor) -> float:
    t = benchmark.Timer("fn(x)", globals={"fn": fn, "x": x}).blocked_autorange(min_run_time=0.5)
    return t.median * 1e3


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--feat", type=int, default=256)
    ap.add_argument("--blocks", type=int, default=8)
    ap.add_argument("--size", type=int, default=256, help="LR input side")
    ap.add_argument("--dtype", choices=["float16", "bfloat16"], default="float16")
    args = ap.parse_args(argv)
    dtype = getattr(torch, args.dtype)
    reason = why_not_semi_structured(dtype=dtype)
    if reason is not None:
        print(f"nothing to measure: {reason}")
        return 0
    model = build_arch("edsr", num_feat=args.feat, num_block=args.blocks, upscale=2).cuda().to(dtype).eval()
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.Conv2d) and m.in_channels % 4 == 0:
                m.weight.mul_(nm_mask(m.weight, 2, 4))
    x = torch.rand(1, 3, args.size, args.size, device="cuda", dtype=dtype)
    sparse = to_semi_structured(model, x)
    rows = []
    feats = {}
    hooks = [m.register_forward_hook(lambda m, a, o, n=n: feats.setdefault(n, a[0]))
             for n, m in model.named_modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    dense_mods, sparse_mods = dict(model.named_modules()), dict(sparse.named_modules())
    with torch.no_grad():
        for name, status in sparse.irprune_semi_structured.items():
            if status != "sparse":
                continue
            inp = feats[name]
            d, s = _time(dense_mods[name], inp), _time(sparse_mods[name], inp)
            rows.append({"layer": name, "shape": list(dense_mods[name].weight.shape), "dense_ms": d,
                         "sparse_ms": s, "speedup": d / s})
        end = {"dense_ms": _time(model, x), "sparse_ms": _time(sparse, x)}
    end["speedup"] = end["dense_ms"] / end["sparse_ms"]
    result = {"device": torch.cuda.get_device_name(), "dtype": args.dtype, "input": list(x.shape),
              "feat": args.feat, "blocks": args.blocks, "layers": rows, "end_to_end": end,
              "layer_status": sparse.irprune_semi_structured}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "semi_structured.json").write_text(json.dumps(result, indent=2))
    for r in rows:
        print(f"{r['layer']:24s} {r['dense_ms']:8.3f} ms dense {r['sparse_ms']:8.3f} ms sparse x{r['speedup']:.2f}")
    print(f"end to end: {end['dense_ms']:.3f} ms dense, {end['sparse_ms']:.3f} ms sparse, x{end['speedup']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
