"""``irprune demo``: one side-by-side study of the plugin's methods on embedded real photos."""
from .presets import DemoConfig
from .run import run_demo

__all__ = ["DemoConfig", "run_demo"]
