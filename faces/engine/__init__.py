"""The face engine: detection, alignment and embedding behind one small interface.

`get_engine()` returns the process-wide engine chosen by settings; models load lazily, once.
"""

from faces.engine.base import DetectedFace, EmbeddedFace, FaceBox
from faces.engine.pipeline import (
    FaceEngine,
    call_in_engine_pool,
    call_in_engine_pool_ranked,
    engine_loaded,
    engine_pool_in_flight,
    engine_pool_size,
    get_engine,
    map_in_engine_pool,
    on_engine_thread,
    run_in_engine_background,
    run_in_engine_pool,
    warm_in_background,
)

__all__ = [
    "DetectedFace",
    "EmbeddedFace",
    "FaceBox",
    "FaceEngine",
    "call_in_engine_pool",
    "call_in_engine_pool_ranked",
    "engine_loaded",
    "engine_pool_in_flight",
    "engine_pool_size",
    "get_engine",
    "map_in_engine_pool",
    "on_engine_thread",
    "run_in_engine_background",
    "run_in_engine_pool",
    "warm_in_background",
]
