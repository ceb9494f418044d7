"""Demo presets: ``quick`` (tests; 77 s measured at a load of 4 on 2 cores, 6 min at a load of 12),
default (target < 10 min on 2 cores, not met at a load of 10) and ``full``."""
from __future__ import annotations

from dataclasses import asdict, dataclass, replace


@dataclass(frozen=True)
class DemoConfig:
    """Sizes and step budgets of one demo run."""

    preset: str = "default"
    seed: int = 0
    width: float = 0.625         # SID U-Net width multiplier (1.0 = the paper's 7.76M-param net)
    sigma: float = 25.0          # denoising noise level (0-255 scale)
    patch: int = 32
    batch_size: int = 8
    pretrain_steps: int = 2400   # dense (and uniform-width) weights ship in the package: `irprune pretrain`
    finetune_steps: int = 1200   # every pruned model, compactor pre-finetune and MOSP's loop included:
    #                              the benchmark's budget (at 300 or 600 the baselines are finetune-limited)
    compactor_finetune_steps: int = 30
    budgets: tuple[float, ...] = (0.5,)   # MOSP section: ratios of the dense peak memory
    val_size: int = 192          # centre crop of the held-out photos used for PSNR/SSIM
    memory_size: tuple[int, int] = (1080, 2048)  # H, W at which peak memory is reported
    run_mosp: bool = True
    run_sls: bool = True
    run_combined: bool = True
    run_deploy: bool = True               # MOSP vs tiling vs both at 25 % of the dense peak (deploy_section.py)
    combined_memory_budget: float = 0.6   # MOSP part of the combined model (ratio of dense peak)
    combined_macs_budget: float = 0.5     # then SLS to this ratio of the dense model's MACs
    combined_M: int = 4                   # N:M group size; MOSP keeps widths multiples of it

    @classmethod
    def preset_named(cls, name: str, **overrides) -> "DemoConfig":
        """The ``quick``, ``default`` or ``full`` preset, with overrides."""
        presets = {
            "quick": cls(preset="quick", width=0.25, pretrain_steps=600, finetune_steps=8,
                         compactor_finetune_steps=2, val_size=48, patch=32, batch_size=4, combined_M=2,
                         combined_memory_budget=0.7, combined_macs_budget=0.6, run_deploy=False),
            "default": cls(),
            "full": cls(preset="full", width=0.75, patch=48, pretrain_steps=4000, finetune_steps=1000,
                        compactor_finetune_steps=300, budgets=(0.5, 0.25), val_size=256),
        }
        if name not in presets:
            raise ValueError(f"unknown demo preset {name!r}; use one of {', '.join(presets)}")
        return replace(presets[name], **{k: v for k, v in overrides.items() if v is not None})

    def to_dict(self) -> dict:
        """JSON-ready form (tuples as lists)."""
        d = asdict(self)
        d["memory_size"] = list(self.memory_size)
        d["budgets"] = list(self.budgets)
        return d
