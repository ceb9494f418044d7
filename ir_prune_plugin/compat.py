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
* distributed training without CUDA (:func:`apply_dist_shims`): ``basicsr.utils.dist_util.init_dist``
  defaults to NCCL and divides the rank by ``torch.cuda.device_count()``; without CUDA we initialise
  a gloo process group instead (``parse_options`` imported the function by name, so both references
  are replaced). ``BaseModel.model_to_device`` wraps DDP with
  ``device_ids=[torch.cuda.current_device()]``; on a CPU model we wrap without device ids.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import logging
import os
import sys
import types

__all__ = ["apply_all", "apply_basicsr_shims", "apply_dist_shims", "apply_torchvision_functional_tensor_shim",
           "install_import_hook"]

log = logging.getLogger(__name__)
_applied: set[str] = set()


FUNCTIONAL_TENSOR = "torchvision.transforms.functional_tensor"


def _fill_functional_tensor(module: types.ModuleType) -> None:
    """The removed module's contents: torchvision's private copy plus ``rgb_to_grayscale``."""
    # torchvision only when BasicSR imports the removed module (``import ir_prune_plugin`` stays torch-free)
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

    from basicsr.utils import scandir  # basicsr: optional extra, loaded only when BasicSR resumes

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
    import torch  # on first use, as everywhere in this module

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


def _init_dist_cpu_aware(original):
    import torch  # torch is imported on first use: ``import ir_prune_plugin`` installs this module's hook
    import torch.distributed as dist

    def init_dist(launcher: str, backend: str = "nccl", **kwargs):
        """BasicSR's ``init_dist``, falling back to gloo (no ``set_device``) without CUDA."""
        if torch.cuda.is_available():
            return original(launcher, backend=backend, **kwargs)
        if launcher not in ("pytorch", "slurm"):
            raise ValueError(f"invalid launcher {launcher!r}; use 'pytorch' or 'slurm'")
        if launcher == "slurm":
            os.environ.setdefault("RANK", os.environ.get("SLURM_PROCID", "0"))
            os.environ.setdefault("WORLD_SIZE", os.environ.get("SLURM_NTASKS", "1"))
            os.environ.setdefault("MASTER_PORT", str(kwargs.pop("port", None) or 29500))
            os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        if not dist.is_initialized():
            log.info("CUDA unavailable: initialising torch.distributed with the gloo backend")
            dist.init_process_group(backend="gloo")
    return init_dist


def _model_to_device_cpu_aware(original):
    from torch.nn.parallel import DistributedDataParallel  # on first use, as above

    def model_to_device(self, net):
        """BasicSR's ``model_to_device``, wrapping CPU models in DDP without ``device_ids``."""
        if self.opt.get("dist") and self.device.type == "cpu":
            net = net.to(self.device)
            return DistributedDataParallel(
                net, find_unused_parameters=self.opt.get("find_unused_parameters", False))
        return original(self, net)
    model_to_device.__wrapped__ = original
    return model_to_device


def apply_dist_shims() -> None:
    """Make ``--launcher pytorch|slurm`` work on CPU-only machines (gloo); idempotent."""
    if "dist" in _applied:
        return
    import basicsr.utils.dist_util as dist_util  # basicsr: optional extra, patched only when asked
    import basicsr.utils.options as options
    from basicsr.models.base_model import BaseModel

    patched = _init_dist_cpu_aware(dist_util.init_dist)
    dist_util.init_dist = patched
    options.init_dist = patched
    BaseModel.model_to_device = _model_to_device_cpu_aware(BaseModel.model_to_device)
    _applied.add("dist")


def apply_all() -> None:
    """Apply every shim whose host library is installed."""
    apply_torchvision_functional_tensor_shim()
    try:
        apply_basicsr_shims()
    except ImportError as exc:  # basicsr is an optional extra
        log.debug("basicsr shims skipped: %s", exc)
