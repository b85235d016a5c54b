"""Start-up: seconds from launching daphne (what `make run` starts) to `/readyz` 200, and its RSS then.

Each configuration starts a fresh `daphne faceportal.asgi:application` on a free loopback port with
the engine warming in the background (FACEPORTAL_WARM_ENGINE=1, as `make run`), polls /readyz every
50 ms, then reads the server's resident memory and whether TensorFlow is mapped into it, and stops
it. The database must already be migrated (run_all does it); the graph is already converted.

Run alone: `DATABASE_URL=... FACEPORTAL_FACES_DIR=../shared/faces .venv/bin/python bench/startup.py`.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import log, table  # noqa: E402

TIMEOUT_S = 180


def start_once(env: dict[str, str]) -> dict[str, object]:
    import psutil

    from tests.ship.live_server import daphne

    with tempfile.TemporaryDirectory() as scratch, daphne(env=env, log_path=Path(scratch) / "daphne.log") as server:
        try:
            seconds = server.wait_ready(timeout=TIMEOUT_S, poll=0.05)
        except RuntimeError:
            return {"seconds": float("nan"), "rss": float("nan"), "tensorflow": "did not start"}
        time.sleep(1.0)  # the other pool thread finishes warming
        rss = psutil.Process(server.process.pid).memory_info().rss / 2**20
        maps = Path(f"/proc/{server.process.pid}/maps")
        tensorflow = "yes" if maps.exists() and "tensorflow" in maps.read_text() else "no"
        return {"seconds": seconds, "rss": rss, "tensorflow": tensorflow}


def run(base_env: dict[str, str] | None = None) -> str:
    env = dict(base_env or os.environ)
    env["FACEPORTAL_WARM_ENGINE"] = "1"
    configs = [
        ("default", {}),
        ("previous default (HOG + dlib-bin)", {"DEEPFACE_DETECTOR_BACKEND": "dlib", "FACEPORTAL_DLIB_RUNTIME": "dlib"}),
    ]
    rows = []
    for label, overrides in configs:
        log(f"start-up: {label}")
        result = start_once(dict(env, **overrides))
        rows.append([label, result["seconds"], result["rss"], result["tensorflow"]])
    return table(
        "Start-up: daphne launched to /readyz 200, and the server's memory then",
        ["engine", "seconds to /readyz", "RSS MB", "TensorFlow loaded"], rows,
        note=("A fresh `daphne faceportal.asgi:application` per row, models warming in the background on the "
              "engine pool; RSS read 1 s after ready. Database migrated "
              "and ONNX graph converted beforehand (both part of `make run`'s install step)."),
    )


if __name__ == "__main__":
    run()
