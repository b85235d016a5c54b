"""Shared helpers for the benchmarks: Django set-up, the photo set, timing and table printing.

Benchmarks print; they never assert. Every ratio in a table compares numbers measured in the
same process, on the same photos, one after the other.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

from tests.photos import FACES_DIR, STRANGERS, Photo, load_manifest  # noqa: E402

__all__ = ["STRANGERS", "Photo"]


def faces_dir() -> Path:
    return FACES_DIR.resolve()


def setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "faceportal.settings")
    os.environ.setdefault("FACEPORTAL_WARM_ENGINE", "0")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("DEEPFACE_LOG_LEVEL", "40")
    import django

    django.setup()
    import logging

    logging.getLogger().setLevel(logging.WARNING)
    for noisy in ("faces", "deepface", "tensorflow", "absl"):
        logging.getLogger(noisy).setLevel(logging.ERROR)


def manifest() -> dict[str, list[Photo]]:
    """identity -> photos in manifest order (includes `_noface` and `_group`)."""
    return load_manifest(faces_dir())


def people() -> dict[str, list[Photo]]:
    return {name: photos for name, photos in manifest().items() if not name.startswith("_")}


def median(values: Iterable[float]) -> float:
    values = list(values)
    return statistics.median(values) if values else float("nan")


def percentile(values: Iterable[float], share: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def timed(fn: Callable, *args, **kwargs) -> tuple[float, object]:
    """(milliseconds, result)."""
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return (time.perf_counter() - started) * 1000, result


def table(title: str, header: list[str], rows: list[list[object]], note: str = "") -> str:
    """A GitHub-flavoured Markdown table (it reads fine in a terminal and pastes into docs/PERFORMANCE.md)."""

    def cell(value: object) -> str:
        if isinstance(value, float):
            if value != value:  # NaN
                return "–"
            if abs(value) >= 100:
                return f"{value:.0f}"
            if abs(value) >= 10:
                return f"{value:.1f}"
            return f"{value:.2f}" if abs(value) >= 1 else f"{value:.3f}"
        return str(value)

    lines = [f"### {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(value) for value in row) + " |" for row in rows]
    if note:
        lines += ["", note]
    text = "\n".join(lines) + "\n"
    print(text, flush=True)
    return text


def rss_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


def log(message: str) -> None:
    print(f"  .. {message}", file=sys.stderr, flush=True)
