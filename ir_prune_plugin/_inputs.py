"""The old, private name of :mod:`ir_prune_plugin.inputs`; kept so existing imports keep working."""
from .inputs import *  # noqa: F401,F403  (re-exports exactly inputs.__all__)
from .inputs import __all__  # noqa: F401
