"""Readiness: can this process serve requests now? One check per dependency, each answering why not."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import connection

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class CheckResult:
    ready: bool
    detail: str


def check_database() -> CheckResult:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        cursor.fetchone()
    return CheckResult(True, connection.vendor)


def check_cache() -> CheckResult:
    backend = settings.CACHES["default"]["BACKEND"]
    if backend.startswith("django_redis."):
        # django-redis is configured to swallow connection errors (Redis down must not fail
        # requests), so only a real PING on its connection tells whether Redis answers.
        from django_redis import get_redis_connection

        get_redis_connection("default").ping()
        return CheckResult(True, "redis")
    cache.set("faceportal:readyz", "1", timeout=5)
    if cache.get("faceportal:readyz") != "1":
        return CheckResult(False, "cache did not return the value just written")
    return CheckResult(True, backend.rsplit(".", 1)[-1])


def check_vector_store() -> CheckResult:
    from faces.index import get_index

    index = get_index()
    ready, detail = index.ready()
    return CheckResult(bool(ready), f"{index.name}: {detail}")


def check_model() -> CheckResult:
    from faces.engine.pipeline import engine_loaded, engine_warm_failure

    failure = engine_warm_failure()
    if failure is not None:  # the traceback is in the log ("face engine warm-up failed")
        return CheckResult(False, f"face model warm-up failed ({failure})")
    if not engine_loaded():  # the detector and the embedder must both be loaded
        return CheckResult(False, "face models are still loading")
    return CheckResult(True, f"{settings.DEEPFACE_EMBEDDER_MODEL} / {settings.DEEPFACE_DETECTOR_BACKEND}")


CHECKS: dict[str, Callable[[], CheckResult]] = {
    "database": check_database,
    "cache": check_cache,
    "vector_store": check_vector_store,
    "model": check_model,
}


def readiness() -> dict[str, CheckResult]:
    """Run every check; a check that raises is not ready, with the error's type and message."""
    results: dict[str, CheckResult] = {}
    for name, check in CHECKS.items():
        try:
            results[name] = check()
        except Exception as exc:  # any failure of a dependency means "not ready", never a 500
            # The message (addresses, reasons) goes to the log only; /readyz is public.
            logger.warning("readiness check failed", extra={"check": name, "error": f"{type(exc).__name__}: {exc}"})
            results[name] = CheckResult(False, f"{type(exc).__name__} while checking {name}")
    return results
