"""Prometheus metrics: definitions, the helpers other code calls, and the exposition for /metrics.

Every daphne process keeps its own counters. With one process per container (the Compose stack,
`--scale web=N`) Prometheus scrapes each replica and `sum()` adds them up. When several processes
share one container and port, set PROMETHEUS_MULTIPROC_DIR (an empty, writable folder, cleared
at start) so they write to shared files and /metrics reports all of them (docs/ARCHITECTURE.md,
"Several daphne processes").
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector

# Face pipelines take tens of milliseconds to seconds; the defaults stop at 10 s with too few
# buckets in between.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.5, 5.0, 10.0, 30.0)

HTTP_REQUESTS = Counter(
    "faceportal_http_requests_total",
    "HTTP requests answered, by route name, method and status code.",
    ["route", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "faceportal_http_request_duration_seconds",
    "Time from request to response, by route name and method.",
    ["route", "method"],
    buckets=LATENCY_BUCKETS,
)
STAGE_LATENCY = Histogram(
    "faceportal_stage_duration_seconds",
    "Time spent in each stage of a face pipeline (decode, detect, align, embed, search, ...), by route.",
    ["route", "stage"],
    buckets=LATENCY_BUCKETS,
)
FACES_REGISTERED = Counter(
    "faceportal_faces_registered_total",
    "Faces added to galleries by registrations handled by this process.",
)
WEBSOCKET_CONNECTIONS = Gauge(
    "faceportal_websocket_connections",
    "Open WebSocket connections.",
    multiprocess_mode="livesum",
)
WEBSOCKET_FRAMES = Counter(
    "faceportal_websocket_frames_total",
    "WebSocket frames processed, by outcome (ok, error, dropped).",
    ["outcome"],
)


def observe_request(*, route: str, method: str, status: int, seconds: float) -> None:
    HTTP_REQUESTS.labels(route=route, method=method, status=str(status)).inc()
    HTTP_LATENCY.labels(route=route, method=method).observe(seconds)


def observe_stage_timings(*, route: str, timings_ms: Mapping[str, object]) -> None:
    """Record a result's `timings_ms` ({"decode": 3.1, "detect": 80.2, ...}) as stage latencies."""
    for stage, value in timings_ms.items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0:
            STAGE_LATENCY.labels(route=route, stage=str(stage)).observe(value / 1000.0)


def faces_registered(*, count: int) -> None:
    """Called by faces.services.person_register once the faces it added are committed."""
    FACES_REGISTERED.inc(count)


def websocket_connected() -> None:
    """Called once per authenticated connection (faceportal.websocket_observe, from the consumer) ..."""
    WEBSOCKET_CONNECTIONS.inc()


def websocket_disconnected() -> None:
    """... and this once when that connection closes."""
    WEBSOCKET_CONNECTIONS.dec()


def websocket_frame(*, outcome: str, count: int = 1) -> None:
    WEBSOCKET_FRAMES.labels(outcome=outcome).inc(count)


# Collectors whose values are read when scraped (the apps register theirs at start-up, e.g.
# faces/metrics.py); the multi-process exposition needs them again in its own registry.
_runtime_collectors: list[Collector] = []


def register_runtime_collector(collector: Collector) -> None:
    if collector not in _runtime_collectors:
        _runtime_collectors.append(collector)
        REGISTRY.register(collector)


def exposition() -> tuple[bytes, str]:
    """The text /metrics answers with, and its content type."""
    multiproc_dir = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if multiproc_dir:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=multiproc_dir)
        for collector in _runtime_collectors:
            registry.register(collector)
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
