"""Scratch: dense SID U-Net x0.625 pretraining recipes vs the large-input collapse."""
import sys, json, time, itertools
sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[4]))
import torch
from torch.utils.data import DataLoader
from ir_prune_plugin.archs import build_arch
from ir_prune_plugin.data import DenoiseDataset
from ir_prune_plugin.loops import fit, evaluate

recipe, seed, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
steps = int(sys.argv[4]) if len(sys.argv) > 4 else 1200
LR = float(sys.argv[5]) if len(sys.argv) > 5 else 1e-3
tag = sys.argv[6] if len(sys.argv) > 6 else ""
torch.set_num_threads(1)
torch.manual_seed(seed)
model = build_arch("sid_unet", width=0.625)

def stream(stages):
    """stages: list of (n_steps, patch, bs); yields batches."""
    for k, (n, p, bs) in enumerate(stages):
        ds = DenoiseDataset("train", sigma=25.0, patch=p, seed=seed * 100 + k, length=n * bs)
        g = torch.Generator().manual_seed(seed + k)
        for b in itertools.islice(DataLoader(ds, batch_size=bs, shuffle=True, generator=g, drop_last=True), n):
            yield b

if recipe == "base":
    stages = [(steps, 32, 8)]
elif recipe == "p64":
    stages = [(steps, 64, 2)]
elif recipe.startswith("prog"):   # prog60 -> 60 % at 32x8 then 64x2
    f = int(recipe[4:]) / 100
    n1 = int(steps * f)
    stages = [(n1, 32, 8), (steps - n1, 64, 2)]
elif recipe.startswith("big"):   # big75 -> 75 % at 32x8 then 1x128
    f = int(recipe[3:]) / 100
    n1 = int(steps * f)
    stages = [(n1, 32, 8), (steps - n1, 128, 1)]
elif recipe == "prog3":
    n = steps // 3
    stages = [(n, 32, 8), (n, 48, 4), (steps - 2 * n, 64, 2)]
val = {c: DenoiseDataset("val", sigma=25.0, val_size=c, seed=seed) for c in (32, 192)}
curve = []
def hook(i):
    if (i + 1) % 100 == 0:
        curve.append((i + 1, round(evaluate(model, val[192])["psnr"], 2)))
        model.train()
t = time.time()
fit(model, list(stream(stages)), steps, lr=LR, batch_size=8, seed=seed, progress=False, clip_grad_norm=0.5,
    after_step=hook)
res = {"recipe": recipe, "seed": seed, "steps": steps, "curve": curve, "s": round(time.time() - t),
       **{f"psnr{c}": round(evaluate(model, DenoiseDataset("val", sigma=25.0, val_size=c, seed=seed))["psnr"], 2)
          for c in (32, 64, 192, 384)}}
torch.save(model.state_dict(), f"{out}/{recipe}{tag}_s{seed}.pt")
print(json.dumps(res))
open(f"{out}/{recipe}{tag}_s{seed}.json", "w").write(json.dumps(res))
