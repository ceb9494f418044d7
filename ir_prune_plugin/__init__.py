"""ir-prune-plugin: memory- and compute-budgeted pruning (MOSP, SLS) for image-restoration nets."""
from ._version import __version__

__all__ = ["__version__"]
