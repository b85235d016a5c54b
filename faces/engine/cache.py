"""One place that builds models: each model object is built once per worker thread, lazily.

dlib's networks and detectors keep scratch buffers inside the object, so sharing one instance
between threads is unsafe; one per engine-pool thread is cheap (tens of MB) and needs no locks.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

_local = threading.local()
_load_seconds: dict[str, float] = {}
_load_lock = threading.Lock()


def detector_cache_key(name: str) -> str:
    return f"detector:{name}"


def embedder_cache_key(name: str, runtime: str) -> str:
    return f"embedder:{name}:{runtime}"


def thread_model(key: str, factory: Callable[[], Any]) -> Any:
    models = getattr(_local, "models", None)
    if models is None:
        models = _local.models = {}
    if key not in models:
        started = time.perf_counter()
        models[key] = factory()
        elapsed = time.perf_counter() - started
        with _load_lock:
            _load_seconds.setdefault(key, elapsed)
        logger.info("model loaded", extra={"model": key, "seconds": round(elapsed, 3)})
    return models[key]


def model_load_seconds() -> dict[str, float]:
    with _load_lock:
        return dict(_load_seconds)
