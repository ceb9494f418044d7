"""BasicSR integration end to end: the demo YAMLs through the real ``train_pipeline`` (subprocesses).

Each run writes only under ``tmp_path`` (BasicSR's root is the working directory). Sizes are tiny
so the whole file stays within a few minutes on 2 CPU cores.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import yaml

if importlib.util.find_spec("basicsr") is None:
    pytest.skip("basicsr is not installed (pip install ir-prune-plugin[basicsr])", allow_module_level=True)

REPO = Path(__file__).resolve().parents[1]
DEMO = REPO / "basicsr_configs" / "demo"
pytestmark = pytest.mark.slow


def _set(opt: dict, dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for p in parents:
        opt = opt.setdefault(p, {})
    opt[last] = value


def _yaml(src: Path, dst: Path, overrides: dict[str, Any]) -> Path:
    opt = yaml.safe_load(src.read_text())
    for k, v in overrides.items():
        _set(opt, k, v)
    dst.write_text(yaml.safe_dump(opt, sort_keys=False))
    return dst


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env.setdefault("OMP_NUM_THREADS", "2")
    return env


def _run(cmd: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    proc = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    return proc


def _train(opt: Path, cwd: Path, *extra: str) -> subprocess.CompletedProcess:
    return _run([sys.executable, "-m", "ir_prune_plugin.train", "-opt", str(opt), *extra], cwd)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _torchrun(opt: Path, cwd: Path) -> subprocess.CompletedProcess:
    return _run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr",
                 "127.0.0.1", "--master_port", str(_free_port()), "-m", "ir_prune_plugin.train", "-opt", str(opt),
                 "--launcher", "pytorch"], cwd)


def _log_text(folder: Path, prefix: str) -> str:
    logs = sorted(folder.glob(f"{prefix}_*.log"))
    assert logs, f"no {prefix} log in {folder}"
    return "\n".join(p.read_text() for p in logs)


def _psnrs(text: str) -> list[float]:
    return [float(v) for v in re.findall(r"# psnr: ([-\d.]+)", text)]


def _load(path: Path, key: str = "params") -> tuple[torch.nn.Module, dict]:
    from ir_prune_plugin.integrations.basicsr import checkpoint as ckp
    ckpt = ckp.read_checkpoint(str(path))
    return ckp.build_from_checkpoint(str(path), ckpt, key), ckp.meta_of(ckpt)


def _test_yaml(train_opt: Path, ckpt: Path, dst: Path) -> Path:
    opt = yaml.safe_load(train_opt.read_text())
    test = {"name": opt["name"] + "_test", "model_type": "IRPruneModel", "num_gpu": 0,
            "manual_seed": 0, "datasets": {"test_1": dict(opt["datasets"]["val"], phase="test")},
            "network_g": opt["network_g"], "path": {"pretrain_network_g": str(ckpt), "strict_load_g": True},
            "val": dict(opt["val"], save_img=False)}
    if "scale" in opt:
        test["scale"] = opt["scale"]
    dst.write_text(yaml.safe_dump(test, sort_keys=False))
    return dst


def _reload_and_test(train_opt: Path, ckpt: Path, cwd: Path) -> tuple[str, str]:
    """BasicSR-style testing in a fresh process; returns (test log text, stdout)."""
    test_opt = _test_yaml(train_opt, ckpt, cwd / "test.yml")
    proc = _run([sys.executable, "-m", "ir_prune_plugin.integrations.basicsr.entry", "-opt", str(test_opt)], cwd)
    name = yaml.safe_load(test_opt.read_text())["name"]
    return _log_text(cwd / "results" / name, "test"), proc.stdout


def _val_psnr(net: torch.nn.Module, opt_path: Path) -> float:
    """Mean PSNR of ``net`` on the YAML's validation set, computed the way SRModel validates."""
    from basicsr.data import build_dataset
    from basicsr.metrics import calculate_metric
    from basicsr.utils import tensor2img

    from ir_prune_plugin.integrations.basicsr import register
    register()
    opt = yaml.safe_load(opt_path.read_text())
    val = build_dataset(dict(opt["datasets"]["val"], phase="val", scale=opt.get("scale", 1)))
    metric = dict(opt["val"]["metrics"]["psnr"])
    net.eval()
    values = []
    with torch.no_grad():
        for i in range(len(val)):
            item = val[i]
            out = net(item["lq"][None])
            values.append(calculate_metric({"img": tensor2img([out]), "img2": tensor2img([item["gt"][None]])},
                                           metric))
    return sum(values) / len(values)


def _params_logged(text: str) -> list[int]:
    return [int(v.replace(",", "")) for v in re.findall(r"with parameters: ([\d,]+)", text)]


SLS_FAST = {"train.total_iter": 40, "pruning.start_iter": 10, "pruning.options.search_steps": 15,
            "pruning.input_size": [16, 16], "logger.save_checkpoint_freq": 20, "val.val_freq": 20,
            "logger.print_freq": 5, "datasets.train.gt_size": 32, "datasets.train.length": 200,
            "datasets.val.val_size": 64}


def _train_until_killed(opt: Path, cwd: Path, log_dir: Path, marker: str, timeout: float = 400) -> None:
    """Start training, SIGKILL it once ``marker`` shows up in its log (a crash mid-run)."""
    proc = subprocess.Popen([sys.executable, "-m", "ir_prune_plugin.train", "-opt", str(opt)], cwd=cwd,
                            env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            logs = list(log_dir.glob("train_*.log")) if log_dir.is_dir() else []
            if logs and re.search(marker, logs[0].read_text()):
                break
            assert proc.poll() is None, f"training ended before {marker!r}:\n{proc.stderr.read()[-3000:]}"
            time.sleep(0.2)
        else:
            pytest.fail(f"{marker!r} did not appear within {timeout} s")
    finally:
        proc.kill()
        proc.wait()


def test_sls_demo_prunes_to_budget_reloads_and_resumes_after_a_kill(tmp_path: Path) -> None:
    from ir_prune_plugin.sparsity import check_nm, kept_macs, layer_macs
    opt = _yaml(DEMO / "sls_edsr_x2.yml", tmp_path / "sls.yml",
                {**SLS_FAST, "train.ema_decay": 0.5, "train.total_iter": 1000})
    exp = tmp_path / "experiments" / "irprune_demo_sls_edsr_x2"
    # killed mid-finetune, after the checkpoint of iteration 40 and its validation
    _train_until_killed(opt, tmp_path, exp, r"iter:\s+45,")
    text = _log_text(exp, "train")
    assert "SLS search started at iter 11" in text and "SLS search ended" in text
    psnr = _psnrs(text)
    # validations at 20 and 40 (and 60... when the kill lands late: it races the training loop)
    assert len(psnr) >= 2 and all(15 < p < 60 for p in psnr)
    assert (tmp_path / "tb_logger" / "irprune_demo_sls_edsr_x2").is_dir()

    # the finetuned checkpoint carries an N:M plan that meets the MACs budget, independently counted
    net, meta = _load(exp / "models" / "net_g_40.pth")
    assert meta["method"] == "sls" and meta["phase"] == "finetune"
    plan = net.irprune_nm_plan
    assert plan and check_nm(net, plan).layers
    dense = layer_macs(net, torch.rand(1, 3, 16, 16), names=list(plan))
    assert kept_macs(dense, plan) / sum(dense.values()) <= 0.25 + 1e-9
    zeros = {n: float((m.weight == 0).float().mean()) for n, m in net.named_modules() if n in plan}
    assert all(abs(zeros[n] - (1 - N / M)) < 1e-6 for n, (N, M) in plan.items())

    # the reloaded EMA network (what SRModel validates) reproduces the validation PSNR of iter 40
    ema, _ = _load(exp / "models" / "net_g_40.pth", "params_ema")
    assert ema.irprune_nm_plan == plan and check_nm(ema, plan).layers
    assert _val_psnr(ema, opt) == pytest.approx(psnr[1], abs=1e-3)

    # --auto_resume continues from the last training state written before the kill (>= 40)
    last = max(int(p.stem) for p in (exp / "training_states").glob("*.state"))
    assert last >= 40
    _train(opt, tmp_path, "--auto_resume", "--force_yml", f"train:total_iter={last + 10}")
    text2 = _log_text(exp, "train")
    assert re.search(rf"Resuming training from epoch: \d+, iter: {last}\.", text2)
    resumed = text2.split("Resuming training from")[-1]
    assert "Loaded pruned sls network (finetune)" in text2
    assert "SLS search started" not in resumed
    assert re.search(rf"iter:\s+{last + 5},", resumed) and re.search(rf"iter:\s+{last + 10},", resumed)
    assert not re.search(r"iter:\s+(5|10|15),", resumed)
    net2, meta2 = _load(exp / "models" / "net_g_latest.pth")
    assert meta2["phase"] == "finetune" and net2.irprune_nm_plan == plan


MOSP_FAST = {"logger.use_tb_logger": False, "train.total_iter": 20, "pruning.start_iter": 5, "pruning.finetune_iters": 1,
             "pruning.options.memory_input_size": [1, 3, 128, 128], "pruning.options.outer_stride": 524288,
             "pruning.options.inner_step": 262144, "pruning.options.sensitivity_points": [1],
             "logger.save_checkpoint_freq": 10, "val.val_freq": 10, "logger.print_freq": 5,
             "datasets.train.gt_size": 32, "datasets.train.length": 100, "datasets.val.val_size": 64}


def test_mosp_demo_meets_memory_budget_reloads_and_resumes(tmp_path: Path) -> None:
    from ir_prune_plugin.archs import build_arch
    from ir_prune_plugin.memory import estimate_peak_memory
    opt = _yaml(DEMO / "mosp_sidunet_denoise.yml", tmp_path / "mosp.yml", MOSP_FAST)
    _torchrun(opt, tmp_path)  # 2 CPU ranks (gloo): rank 0 prunes, every rank gets the same network
    exp = tmp_path / "experiments" / "irprune_demo_mosp_sidunet"
    text = _log_text(exp, "train")
    assert "MOSP pruned at iter 6" in text and "World size (gpu number): 2" in text
    ranks = [json.loads((exp / f"structure_rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["phase"] == "finetune" and ranks[0] == ranks[1]
    psnr = _psnrs(text)
    assert len(psnr) >= 2 and all(15 < p < 60 for p in psnr)
    history = json.loads((exp / "mosp_history.json").read_text())
    assert history["finished"] and history["records"]

    # independently: the dense net's peak at the memory size, half of it, and the pruned net's peak
    size = (1, 3, 128, 128)
    dense = build_arch("sid_unet", width=0.25)
    budget = 0.5 * estimate_peak_memory(dense, torch.empty(size, device="meta")).peak_bytes
    net, meta = _load(exp / "models" / "net_g_latest.pth")
    assert meta["method"] == "mosp" and meta["phase"] == "finetune"
    assert {k: list(v.shape) for k, v in net.state_dict().items()} == ranks[0]["shapes"]
    assert estimate_peak_memory(net, torch.empty(size, device="meta")).peak_bytes <= budget
    pruned_conv, dense_conv = dict(net.named_modules())["enc1.0"], dict(dense.named_modules())["enc1.0"]
    assert pruned_conv.out_channels < dense_conv.out_channels  # the peak lives at full resolution
    assert any(type(m).__name__ == "Compactor" for m in net.modules())
    x = torch.rand(1, 3, 40, 56)
    assert net(x).shape == x.shape  # any size still works after pruning

    test_text, _ = _reload_and_test(opt, exp / "models" / "net_g_latest.pth", tmp_path)
    assert _params_logged(test_text)[-1] == sum(p.numel() for p in net.parameters())
    assert _psnrs(test_text)[-1] == pytest.approx(psnr[-1], abs=1e-3)

    _train(opt, tmp_path, "--auto_resume", "--force_yml", "train:total_iter=25")
    text2 = _log_text(exp, "train")
    assert re.search(r"Resuming training from epoch: \d+, iter: 20\.", text2)
    resumed = text2.split("Resuming training from")[-1]
    assert "Loaded pruned mosp network (finetune)" in text2 and "MOSP pruned" not in resumed
    assert re.search(r"iter:\s+25,", resumed)
    net2, _ = _load(exp / "models" / "net_g_latest.pth")
    assert {k: v.shape for k, v in net2.state_dict().items()} == {k: v.shape for k, v in net.state_dict().items()}


def test_torchrun_two_cpu_ranks_end_the_sls_search_with_one_plan(tmp_path: Path) -> None:
    overrides = {**SLS_FAST, "train.total_iter": 24, "pruning.start_iter": 4, "pruning.options.search_steps": 10,
                 "logger.save_checkpoint_freq": 12, "val.val_freq": 12, "datasets.train.length": 100,
                 "logger.use_tb_logger": False}
    opt = _yaml(DEMO / "sls_edsr_x2.yml", tmp_path / "dist.yml", overrides)
    _torchrun(opt, tmp_path)
    exp = tmp_path / "experiments" / "irprune_demo_sls_edsr_x2"
    text = _log_text(exp, "train")
    assert "World size (gpu number): 2" in text and "SLS search ended" in text and _psnrs(text)
    ranks = [json.loads((exp / f"structure_rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["phase"] == "finetune" and ranks[0] == ranks[1]
    net, _ = _load(exp / "models" / "net_g_latest.pth")
    assert {k: list(v.shape) for k, v in net.state_dict().items()} == ranks[0]["shapes"]
    assert {k: list(v) for k, v in net.irprune_nm_plan.items()} == ranks[0]["nm_plan"]


def test_bad_pruning_blocks_fail_at_start_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ir_prune_plugin.integrations.basicsr.entry import train_main
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["irprune-train"])
    base = DEMO / "sls_edsr_x2.yml"
    opt = _yaml(base, tmp_path / "bad_method.yml", {"pruning.method": "magic"})
    with pytest.raises(SystemExit, match=r"pruning\.method 'magic' is unknown"):
        train_main(["-opt", str(opt)])
    raw = yaml.safe_load(base.read_text())
    del raw["pruning"]["budget"]
    (tmp_path / "no_budget.yml").write_text(yaml.safe_dump(raw))
    with pytest.raises(SystemExit, match=r"pruning\.budget is missing"):
        train_main(["-opt", str(tmp_path / "no_budget.yml")])
    opt = _yaml(base, tmp_path / "too_big.yml", {"pruning.budget": 1.25})
    with pytest.raises(SystemExit, match=r"pruning\.budget .*\(0, 1\), got 1.25"):
        train_main(["-opt", str(opt)])
    assert not (tmp_path / "experiments").exists()  # rejected before BasicSR made any folder

    # a budget this network cannot reach is found when the model is built, before iteration 1
    opt = _yaml(DEMO / "mosp_sidunet_denoise.yml", tmp_path / "unreachable.yml",
                {**MOSP_FAST, "pruning.budget": "1KB"})
    proc = subprocess.run([sys.executable, "-m", "ir_prune_plugin.train", "-opt", str(opt)], cwd=tmp_path,
                          env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode != 0 and "pruning.budget" in proc.stderr and "cannot be reached" in proc.stderr
    log = _log_text(tmp_path / "experiments" / "irprune_demo_mosp_sidunet", "train")
    assert "Start training" not in log
    empty = [str(d) for top in ("experiments", "tb_logger", "results") if (tmp_path / top).exists()
             for d in (tmp_path / top).rglob("*") if d.is_dir() and not any(d.iterdir())]
    assert not empty, f"the failed run left empty folders {empty}"  # the log (and yml copy) stay
