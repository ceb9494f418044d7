"""IRPruneModel: BasicSR's SRModel with a ``pruning:`` block (MOSP or SLS) in its schedule.

Schedule: dense training (or a loaded ``pretrain_network_g``) until ``pruning.start_iter``, then
MOSP prunes channels to the memory budget (rank 0's result shared with every rank) or the SLS search
trains N:M scores until the MACs budget holds; the rest of ``train.total_iter`` finetunes.
After every structural change the optimizer, scheduler (its progress kept), DDP wrapper and
EMA net are rebuilt. Checkpoints carry the pruned architecture (see :mod:`.checkpoint`), so
``pretrain_network_g``, ``resume_state``, ``--auto_resume`` and BasicSR testing reload it.
"""
from __future__ import annotations

import copy
import json
import logging
import os
from collections import OrderedDict
from typing import Any

import torch
from torch import nn

from ...compat import apply_basicsr_shims

apply_basicsr_shims()  # this module subclasses BasicSR's SRModel: basicsr must import first
from basicsr.losses import build_loss  # noqa: E402
from basicsr.models.base_model import BaseModel  # noqa: E402
from basicsr.models.sr_model import SRModel  # noqa: E402
from basicsr.utils import get_root_logger  # noqa: E402

from ...channels.mosp import MOSPPruner  # noqa: E402
from ...sparsity import SLSPruner  # noqa: E402
from . import checkpoint as ckp  # noqa: E402
from . import dist_sync  # noqa: E402
from .archs import arch_name, build_network_g  # noqa: E402
from .mosp_stage import prune_once, run_mosp, train_batches  # noqa: E402
from .options import PruningConfig, mosp_options, parse_pruning_block, pruning_config, sls_options  # noqa: E402
from .sls_stage import SLSStage, load_plain_state, plain_copy  # noqa: E402
from .stats import network_stats, nm_plan as stats_plan  # noqa: E402

log = logging.getLogger(__name__)


class IRPruneModel(SRModel):
    """SRModel that prunes ``net_g`` as its YAML's ``pruning:`` block says, then finetunes it."""

    def __init__(self, opt: dict) -> None:
        arch_name(opt["network_g"])
        self.cfg: PruningConfig | None = pruning_config(opt) if opt["is_train"] or "pruning" in opt else None
        if self.cfg is not None and opt["is_train"]:
            total = int(opt["train"]["total_iter"])
            if self.cfg.start_iter >= total:
                raise ValueError(f"pruning.start_iter ({self.cfg.start_iter}) must be < train.total_iter ({total})")
            if self.cfg.method == "sls":
                steps = sls_options(self.cfg)[1].search_steps
                if self.cfg.start_iter + steps >= total:
                    log.warning("pruning.start_iter + options.search_steps (%d) >= train.total_iter (%d): "
                                "the run may end before the SLS search meets its budget",
                                self.cfg.start_iter + steps, total)
        BaseModel.__init__(self, opt)
        self.phase, self.stats, self._sls = "dense", {}, None
        self._mosp_pruner: MOSPPruner | None = None  # built by _check_budget, used by _start_pruning
        self._template: nn.Module | None = None  # mask-free twin of net_g while N:M masks are on
        self._train_opt = copy.deepcopy(opt.get("train"))
        self._ckpt: tuple[str, dict] | None = None
        net = self._initial_net()
        self.net_g = self.model_to_device(net)
        self.print_network(self.net_g)
        if self.cfg is not None and self.phase == "dense" and self.is_train:
            self._check_budget(net)
        self._refresh_stats()
        if self.is_train:
            self.init_training_settings()

    # --- building / loading ---------------------------------------------------------------------
    def _example(self) -> torch.Tensor:
        net_opt = self.opt["network_g"]
        ch = int(net_opt.get("num_in_ch", net_opt.get("in_ch", 3)))
        g = torch.Generator().manual_seed(0)
        return torch.rand((1, ch, *self.cfg.input_size), generator=g).to(self.device)

    def _initial_net(self) -> nn.Module:
        path = self.opt["path"].get("pretrain_network_g")
        if path is None:
            return build_network_g(self.opt["network_g"])
        ckpt = ckp.read_checkpoint(path)
        meta = ckp.meta_of(ckpt)
        key = self.opt["path"].get("param_key_g", "params")
        if meta is None:
            net = build_network_g(self.opt["network_g"])
            self.load_network(net, path, self.opt["path"].get("strict_load_g", True), key)
            return net
        self._ckpt = (path, ckpt)
        self.phase, self.stats = meta["phase"], dict(meta.get("stats", {}))
        if self.cfg is None:
            self.cfg = parse_pruning_block(meta["pruning"])
        get_root_logger().info(f"Loaded pruned {meta['method']} network ({self.phase}) from {path} [{key}]")
        return self._net_from_checkpoint(key, start_search=True)

    def _net_from_checkpoint(self, key: str, start_search: bool) -> nn.Module:
        path, ckpt = self._ckpt
        meta = ckp.meta_of(ckpt)
        net = ckp.build_from_checkpoint(path, ckpt, key).to(self.device)
        if meta["method"] == "sls" and self.phase in ("search", "finetune") and start_search:
            self._sls = SLSStage(self.cfg, self._example())
            net = self._sls.start(net, meta.get("sls_state"))
            self._template = self._sls.template
        return net

    def _check_budget(self, net: nn.Module) -> None:
        """Build the pruner now, so an unreachable budget fails before any training (MOSP keeps it
        and prunes with it later, from the weights of that time)."""
        try:
            if self.cfg.method == "mosp":
                pruner = MOSPPruner(net, self._example(), self.cfg.budget, options=mosp_options(self.cfg))
                self._mosp_pruner = pruner
                self.stats["dense_peak_mb"] = pruner.original_peak / 2 ** 20
                self.stats["budget_mb"] = pruner.budget_bytes / 2 ** 20
            else:  # the constructor checks M, the budget and the eligible layers (cheap)
                M, options = sls_options(self.cfg)
                SLSPruner(net, self._example(), self.cfg.budget, M=M, options=options)
        except (TypeError, ValueError) as exc:
            raise type(exc)(f"pruning block does not fit network_g (pruning.budget={self.cfg.budget!r}, "
                            f"pruning.options={dict(self.cfg.options)!r}): {exc}") from None

    def init_training_settings(self) -> None:
        """SRModel's set-up, with the EMA net copied from the (possibly pruned) ``net_g``."""
        self.net_g.train()
        train_opt = self._train_opt
        self.ema_decay = train_opt.get("ema_decay", 0)
        if self.ema_decay > 0:
            self.net_g_ema = self._new_ema(load=True)
        self.cri_pix = build_loss(copy.deepcopy(train_opt["pixel_opt"])).to(self.device) \
            if train_opt.get("pixel_opt") else None
        self.cri_perceptual = build_loss(copy.deepcopy(train_opt["perceptual_opt"])).to(self.device) \
            if train_opt.get("perceptual_opt") else None
        if self.cri_pix is None and self.cri_perceptual is None:
            raise ValueError("train.pixel_opt and train.perceptual_opt are both missing; give at least one loss")
        self.setup_optimizers()
        self.setup_schedulers()

    def _new_ema(self, load: bool) -> nn.Module:
        bare = self.get_bare_model(self.net_g)
        ema = copy.deepcopy(bare)
        if load and self._ckpt is not None and "params_ema" in self._ckpt[1]:
            if self._sls is not None:  # same masks as net_g, EMA weights
                load_plain_state(ema, self._ckpt[1]["params_ema"])
            else:
                ema = self._net_from_checkpoint("params_ema", start_search=False)
        elif load and self._ckpt is None and self.opt["path"].get("pretrain_network_g"):
            self.load_network(ema, self.opt["path"]["pretrain_network_g"],
                              self.opt["path"].get("strict_load_g", True), "params_ema")
        return ema.to(self.device).eval()

    def _carry_ema(self, old: nn.Module) -> nn.Module:
        """A fresh copy of ``net_g`` (its masks and their state) holding ``old``'s EMA weights."""
        new = copy.deepcopy(self.get_bare_model(self.net_g))
        old_params = dict(old.named_parameters())
        with torch.no_grad():
            for name, p in new.named_parameters():
                p.copy_(old_params[name])
        return new.eval()

    def model_ema(self, decay: float = 0.999) -> None:
        """BasicSR's parameter EMA, plus the buffers (N:M ranks, SLS scores) copied from ``net_g``."""
        super().model_ema(decay)
        ema_buffers = dict(self.net_g_ema.named_buffers())
        with torch.no_grad():
            for name, b in self.get_bare_model(self.net_g).named_buffers():
                if name in ema_buffers and ema_buffers[name].shape == b.shape:
                    ema_buffers[name].copy_(b)

    def setup_optimizers(self) -> None:
        """One optimizer over the weights of ``net_g`` (SLS updates its own scores in ``step()``)."""
        optim_opt = copy.deepcopy(self._train_opt["optim_g"])
        optim_type = optim_opt.pop("type")
        params = [p for p in self.get_bare_model(self.net_g).parameters() if p.requires_grad]
        self.optimizer_g = self.get_optimizer(optim_type, params, **optim_opt)
        self.optimizers = [self.optimizer_g]

    def setup_schedulers(self) -> None:
        """BasicSR's schedulers, built from a fresh copy of the options (BasicSR pops 'type')."""
        self.schedulers = []
        saved = self.opt["train"]
        self.opt["train"] = copy.deepcopy(self._train_opt)
        try:
            super().setup_schedulers()
        finally:
            self.opt["train"] = saved

    # --- structural changes ---------------------------------------------------------------------
    def _restructure(self, net: nn.Module, reason: str) -> None:
        """Swap in a new ``net_g``; rebuild DDP, optimizer, scheduler (progress kept) and EMA."""
        lr_now = self.optimizers[0].param_groups[0]["lr"] if self.optimizers else None
        sched_states = [s.state_dict() for s in self.schedulers]
        self.net_g = self.model_to_device(net.to(self.device))
        self.net_g.train()
        self.setup_optimizers()
        self.setup_schedulers()
        for sched, state in zip(self.schedulers, sched_states):
            state = {k: v for k, v in state.items() if k not in ("base_lrs", "_last_lr")}
            sched.load_state_dict(state)
        if lr_now is not None:
            self.optimizer_g.param_groups[0]["lr"] = lr_now
        if getattr(self, "ema_decay", 0) > 0:
            self.net_g_ema = self._new_ema(load=False)
        self._refresh_stats()
        self._write_structure(reason)
        get_root_logger().info(f"[irprune] {reason}: phase={self.phase} " +
                               " ".join(f"{k}={v:.4g}" for k, v in self.stats.items()))

    def _start_pruning(self, current_iter: int) -> None:
        bare = self.get_bare_model(self.net_g)
        if self.cfg.method == "sls":
            self._sls = SLSStage(self.cfg, self._example())
            self.phase = "search"
            net = self._sls.start(bare)
            self._template = self._sls.template
            self._restructure(net, f"SLS search started at iter {current_iter}")
            return
        lr = float(self._train_opt["optim_g"]["lr"])
        loss_fn = self.cri_pix if self.cri_pix is not None else (lambda o, g: self.cri_perceptual(o, g)[0])

        history_file = os.path.join(self.opt["path"]["experiments_root"], "mosp_history.json")

        def run() -> tuple[nn.Module, dict]:
            batches = train_batches(self.opt["datasets"]["train"], self.opt.get("manual_seed", 0))
            return run_mosp(bare, self.cfg, self._example(), batches, loss_fn, lr, self.device,
                            history_file if dist_sync.rank() == 0 else None, pruner=self._mosp_pruner)

        pruned, summary = prune_once(bare, run)
        self.phase = "finetune"
        self.stats["budget_mb"] = summary["budget_bytes"] / 2 ** 20
        self.stats["dense_peak_mb"] = summary["original_peak_bytes"] / 2 ** 20
        self._restructure(pruned, f"MOSP pruned at iter {current_iter} ({summary['inner_steps']} LP steps; "
                                  f"history in {history_file})")

    def _write_structure(self, reason: str) -> None:
        """Every rank records its architecture (``structure_rank<r>.json``) to make divergence visible."""
        root = self.opt["path"].get("experiments_root")
        if not root or not os.path.isdir(root):
            return
        bare = self.get_bare_model(self.net_g)
        plan = stats_plan(bare)
        plain = self._export(bare)[0]
        record = {"reason": reason, "phase": self.phase,
                  "shapes": {k: list(v.shape) for k, v in plain.state_dict().items()},
                  "nm_plan": {k: list(v) for k, v in plan.items()}}
        with open(os.path.join(root, f"structure_rank{dist_sync.rank()}.json"), "w") as f:
            json.dump(record, f, indent=1, sort_keys=True)

    def _refresh_stats(self) -> None:
        if self.cfg is None:
            return
        self.stats.update(network_stats(self.get_bare_model(self.net_g), self.cfg, self._example(),
                                        self._sls, self.phase))

    # --- training --------------------------------------------------------------------------------
    def optimize_parameters(self, current_iter: int) -> None:
        """One step; starts pruning/search at ``pruning.start_iter`` and ends the search at the budget."""
        if self.phase == "dense" and current_iter > self.cfg.start_iter:
            self._start_pruning(current_iter)
        self.optimizer_g.zero_grad()
        self.output = self.net_g(self.lq)
        l_total, loss_dict = 0, OrderedDict()
        if self.cri_pix:
            loss_dict["l_pix"] = self.cri_pix(self.output, self.gt)
            l_total = l_total + loss_dict["l_pix"]
        if self.cri_perceptual:
            l_percep, l_style = self.cri_perceptual(self.output, self.gt)
            for name, value in (("l_percep", l_percep), ("l_style", l_style)):
                if value is not None:
                    loss_dict[name] = value
                    l_total = l_total + value
        if self._sls is not None:
            reg = self._sls.regularization()  # MACs term while searching, then SR-STE decay (or 0)
            if self._sls.searching or reg.requires_grad:
                loss_dict["l_macs" if self._sls.searching else "l_srste"] = reg
                l_total = l_total + reg
        l_total.backward()
        self.optimizer_g.step()
        if self._sls is not None:
            if self._sls.after_step():
                self.phase = "finetune"
                if getattr(self, "net_g_ema", None) is not None:
                    self.net_g_ema = self._carry_ema(self.net_g_ema)  # EMA weights, frozen N:M masks
                self._refresh_stats()
                self._write_structure(f"SLS search ended at iter {current_iter}")
                get_root_logger().info(f"[irprune] SLS search ended at iter {current_iter}: " +
                                       " ".join(f"{k}={v:.4g}" for k, v in self.stats.items()))
            elif self._sls.searching:
                self.stats["macs_ratio"] = self._sls.kept_ratio()
        self.log_dict = self.reduce_loss_dict(loss_dict)
        self.log_dict.update(self.stats)
        if self.ema_decay > 0:
            self.model_ema(decay=self.ema_decay)

    def test(self) -> None:
        """Inference with the bare (never DDP-wrapped) network, so rank-0 validation cannot hang."""
        net = self.net_g_ema if hasattr(self, "net_g_ema") else self.get_bare_model(self.net_g)
        was = net.training
        net.eval()
        with torch.no_grad():
            self.output = net(self.lq)
        net.train(was)

    # --- checkpoints -----------------------------------------------------------------------------
    def _export(self, net: nn.Module) -> tuple[nn.Module, dict]:
        """A saveable (parametrization-free) version of ``net`` plus extra checkpoint entries."""
        if self._template is None:
            return net, {}
        plain, dense = plain_copy(net, self._template, dense=self.phase == "search")
        state: dict[str, Any] = {"pruner": self._sls.pruner.state_dict()}  # scores, ranks, momentum, steps
        if self.phase != "search":  # dense weights under the masks: SR-STE finetuning resumes exactly
            state["dense"] = dense
        return plain, {"sls_state": state}

    def save(self, epoch: int, current_iter: int) -> None:
        """BasicSR's save, with the pruned architecture and pruning state stored alongside."""
        if dist_sync.rank() == 0:
            label = "latest" if current_iter == -1 else current_iter
            path = os.path.join(self.opt["path"]["models"], f"net_g_{label}.pth")
            net, extra = self._export(self.get_bare_model(self.net_g))
            nets = {"params": net}
            if hasattr(self, "net_g_ema"):
                nets["params_ema"] = self._export(self.net_g_ema)[0]
            meta = {"method": self.cfg.method if self.cfg else None, "phase": self.phase,
                    "pruning": self.cfg.to_dict() if self.cfg else {}, "iter": int(current_iter),
                    "stats": {k: float(v) for k, v in self.stats.items()}, **extra}
            if self.phase == "search" and current_iter == -1:
                get_root_logger().warning(
                    "training ended during the SLS search: the saved network is dense with search "
                    "scores, not yet at the MACs budget; resume with a larger train.total_iter")
            ckp.save_checkpoint(path, nets, meta)
        self.save_training_state(epoch, current_iter)
