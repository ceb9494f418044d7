import subprocess
import sys
import textwrap


def _run(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=300)


def test_basicsr_needs_the_shim_and_imports_after_it():
    plain = _run("import basicsr")
    assert plain.returncode != 0 and "functional_tensor" in plain.stderr  # still broken upstream
    fixed = _run("""
        from ir_prune_plugin.compat import apply_basicsr_shims
        apply_basicsr_shims(); apply_basicsr_shims()  # idempotent
        import basicsr
        from basicsr.data.degradations import add_gaussian_noise
        from basicsr.archs.edsr_arch import EDSR
        print('ok')
    """)
    assert fixed.returncode == 0, fixed.stderr
    assert fixed.stdout.strip() == "ok"


def test_cpu_resume_loads_state_without_cuda(tmp_path, monkeypatch):
    import torch

    from ir_prune_plugin.compat import apply_basicsr_shims

    apply_basicsr_shims()
    import basicsr.train as bt

    state_dir = tmp_path / "experiments" / "exp" / "training_states"
    state_dir.mkdir(parents=True)
    for it in (100, 200):
        torch.save({"iter": it, "epoch": 1}, state_dir / f"{it}.state")
    opt = {"auto_resume": True, "name": "exp", "path": {}}
    monkeypatch.chdir(tmp_path)  # BasicSR's auto-resume reads a CWD-relative path
    state = bt.load_resume_state(opt)
    assert state["iter"] == 200
    assert opt["path"]["resume_state"].endswith("200.state")


def test_import_ir_prune_plugin_makes_basicsr_classes_importable_in_a_user_script():
    done = _run("""
        import sys
        import ir_prune_plugin
        assert "torchvision" not in sys.modules  # the hook is lazy: nothing imported yet
        import torch
        from basicsr.archs.rcan_arch import RCAN
        net = RCAN(3, 3, num_feat=8, num_group=1, num_block=1, squeeze_factor=4, upscale=2)
        print(tuple(net(torch.rand(1, 3, 8, 8)).shape))
    """)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "(1, 3, 16, 16)"
