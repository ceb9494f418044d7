"""One-off (INVESTIGATION (f)): per-level activation RMS on 32- vs 192-px crops. The paths are this
session's cache files and the old 1e-3 shipped net (in git at 3137587), kept as the record of the run."""
import sys; sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[4]))
import torch
from ir_prune_plugin.archs import build_arch
from ir_prune_plugin.data import DenoiseDataset
from ir_prune_plugin.workloads.shipped import load_state
torch.set_num_threads(1)
nets = {"healthy s0 (shipped)": "/work/main/ir_prune_plugin/workloads/weights/sid_unet-10875223f424afb8.pt",
        "healthy s1": "/work/bench/cache/sid_unet-426631c554349ed0.pt",
        "collapsed s2": "/work/bench/cache/sid_unet-3d64f609d85dadf0.pt",
        "p64 s0 (26.25)": "p64_s0.pt"}
for name, path in nets.items():
    m = build_arch("sid_unet", width=0.625)
    sd = torch.load(path, map_location="cpu", weights_only=True)
    m.load_state_dict({k: v.float() for k, v in sd.items()}); m.eval()
    acts = {}
    for n in ("enc3", "enc4", "bottom", "dec4", "dec3", "dec2", "dec1", "out"):
        getattr(m, n).register_forward_hook(lambda mod, i, o, n=n: acts.__setitem__(n, o))
    line = []
    for c in (32, 192):
        ds = DenoiseDataset("val", sigma=25.0, val_size=c, seed=0)
        x = torch.stack([ds[i]["lq"] for i in range(len(ds))])
        with torch.no_grad(): m(x)
        # centre region rms to avoid border
        r = {k: float(v[..., v.shape[-2]//4: 3*v.shape[-2]//4 or 1, v.shape[-1]//4: 3*v.shape[-1]//4 or 1].pow(2).mean().sqrt()) for k, v in acts.items()}
        line.append(r)
    print(name); print("  " + "  ".join(f"{k}: {line[0][k]:.3g}->{line[1][k]:.3g}" for k in line[0]))
