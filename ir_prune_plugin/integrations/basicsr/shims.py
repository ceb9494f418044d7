"""Extra run-time shims so BasicSR 1.4.2 trains distributed on machines without CUDA.

Applied only by explicit calls from our entry points (:func:`apply_dist_shims`), never on import:

* ``basicsr.utils.dist_util.init_dist`` defaults to NCCL and divides the rank by
  ``torch.cuda.device_count()``; without CUDA we initialise a gloo process group instead
  (``parse_options`` imported the function by name, so both references are replaced).
* ``BaseModel.model_to_device`` wraps DDP with ``device_ids=[torch.cuda.current_device()]``;
  on a CPU model we wrap without device ids. GPU runs keep BasicSR's own code path.
"""
from __future__ import annotations

import logging
import os

import torch
import torch.distributed as dist
from torch.nn.parallel import DistributedDataParallel

log = logging.getLogger(__name__)
_applied: set[str] = set()


def _init_dist_cpu_aware(original):
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
    import basicsr.utils.dist_util as dist_util
    import basicsr.utils.options as options
    from basicsr.models.base_model import BaseModel

    patched = _init_dist_cpu_aware(dist_util.init_dist)
    dist_util.init_dist = patched
    options.init_dist = patched
    BaseModel.model_to_device = _model_to_device_cpu_aware(BaseModel.model_to_device)
    _applied.add("dist")
