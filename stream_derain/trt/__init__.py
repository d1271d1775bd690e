"""TensorRT engines: probing (tensorrt or tensorrt_rtx), building, caching.

Importing this package does not import TensorRT; :mod:`.probe` does, on demand.
"""

from __future__ import annotations

from .engine import BuildReport, EngineRequest, build_engine, get_engine

__all__ = ["BuildReport", "EngineRequest", "build_engine", "get_engine"]
