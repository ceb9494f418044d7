"""Deployment under a memory budget: ONNX export checked against ONNX Runtime, ONNX Runtime's real
peak memory, and tiled inference sized to a budget (``TiledRestorer``).

Everything ONNX imports ``onnx``/``onnxruntime`` on first use (the optional ``[deploy]`` extra).
"""
from __future__ import annotations

from .tiled import TilePlan, TiledRestorer, WithTiles, receptive_radius

__all__ = ["TilePlan", "TiledRestorer", "WithTiles", "receptive_radius"]
