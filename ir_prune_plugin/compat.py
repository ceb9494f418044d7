"""Run-time compatibility shims for the host libraries, all in one place.

Nothing here edits site-packages. Each shim is idempotent and applied by an explicit call
(our entry points call :func:`apply_all`), except the import hook below:

* ``basicsr`` 1.4.2 imports ``torchvision.transforms.functional_tensor``, removed in
  torchvision 0.17. ``import ir_prune_plugin`` installs :func:`install_import_hook`, a finder at
  the *end* of ``sys.meta_path`` that answers for that one module name only when torchvision no
  longer has it, so ``import ir_prune_plugin`` then ``from basicsr.archs.rcan_arch import RCAN``
  works in a user's script (nothing is imported until basicsr asks for the module).
* ``basicsr.train.load_resume_state`` calls ``torch.cuda.current_device()`` and fails on a
  machine without CUDA: on such machines we replace it with a version that loads to the CPU.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import logging
import sys
import types

log = logging.getLogger(__name__)
_applied: set[str] = set()


FUNCTIONAL_TENSOR = "torchvision.transforms.functional_tensor"


def _fill_functional_tensor(module: types.ModuleType) -> None:
    """The removed module's contents: torchvision's private copy plus ``rgb_to_grayscale``."""
    from torchvision.transforms import _functional_tensor as private
    from torchvision.transforms import functional as public

    module.__dict__.update({k: v for k, v in vars(private).items() if not k.startswith("__")})
    module.rgb_to_grayscale = public.rgb_to_grayscale


class _FunctionalTensorFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``torchvision.transforms.functional_tensor`` when no earlier finder does."""

    def find_spec(self, fullname: str, path: object = None, target: object = None):  # noqa: D102
        if fullname != FUNCTIONAL_TENSOR:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):  # noqa: D102
        return None  # the default module object

    def exec_module(self, module: types.ModuleType) -> None:  # noqa: D102
        _fill_functional_tensor(module)


def install_import_hook() -> None:
    """Append the ``functional_tensor`` finder to ``sys.meta_path`` (once; cheap: imports nothing)."""
    if not any(isinstance(f, _FunctionalTensorFinder) for f in sys.meta_path):
        sys.meta_path.append(_FunctionalTensorFinder())


def apply_torchvision_functional_tensor_shim() -> None:
    """Provide ``torchvision.transforms.functional_tensor`` (removed in torchvision 0.17)."""
    if FUNCTIONAL_TENSOR in sys.modules:
        return
    install_import_hook()
    importlib.import_module(FUNCTIONAL_TENSOR)


def _load_resume_state_cpu(opt):
    """BasicSR's ``load_resume_state`` without the CUDA call (maps the state to the CPU)."""
    import os.path as osp

    from basicsr.utils import scandir

    resume_state_path = None
    if opt["auto_resume"]:
        state_path = osp.join("experiments", opt["name"], "training_states")
        if osp.isdir(state_path):
            states = list(scandir(state_path, suffix="state", recursive=False, full_path=False))
            if states:
                latest = max(float(v.split(".state")[0]) for v in states)
                resume_state_path = osp.join(state_path, f"{latest:.0f}.state")
                opt["path"]["resume_state"] = resume_state_path
    elif opt["path"].get("resume_state"):
        resume_state_path = opt["path"]["resume_state"]
    if resume_state_path is None:
        return None
    import torch

    device = f"cuda:{torch.cuda.current_device()}" if torch.cuda.is_available() else "cpu"
    state = torch.load(resume_state_path, map_location=device, weights_only=False)
    from basicsr.utils import check_resume
    check_resume(opt, state["iter"])
    return state


def apply_basicsr_shims() -> None:
    """Make ``import basicsr`` work on current torchvision and BasicSR's resume work on CPU."""
    if "basicsr" in _applied:
        return
    apply_torchvision_functional_tensor_shim()
    import basicsr.train as bt  # noqa: F401  (import only after the shim above)
    import torch

    if not torch.cuda.is_available():
        bt.load_resume_state = _load_resume_state_cpu
    _applied.add("basicsr")


def apply_all() -> None:
    """Apply every shim whose host library is installed."""
    apply_torchvision_functional_tensor_shim()
    try:
        apply_basicsr_shims()
    except ImportError as exc:  # basicsr is an optional extra
        log.debug("basicsr shims skipped: %s", exc)
