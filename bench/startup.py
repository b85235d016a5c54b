"""Start-up: seconds from launching daphne (what `make run` starts) to `/readyz` 200, and its RSS then.

Each configuration starts a fresh `daphne faceportal.asgi:application` on a free loopback port with
the engine warming in the background (FACEPORTAL_WARM_ENGINE=1, as `make run`), polls /readyz every
50 ms, then reads the server's resident memory and whether TensorFlow is mapped into it, and stops
it. The database must already be migrated (run_all does it); the graph is already converted.

Run alone: `DATABASE_URL=... FACEPORTAL_FACES_DIR=../shared/faces .venv/bin/python bench/startup.py`.
"""

from __future__ import annotations

import http.client
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import REPO_ROOT, log, table  # noqa: E402

TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def ready(port: int) -> bool:
    try:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        connection.request("GET", "/readyz")
        return connection.getresponse().status == 200
    except OSError:
        return False


def start_once(env: dict[str, str]) -> dict[str, object]:
    import psutil

    port = free_port()
    daphne = Path(sys.executable).parent / "daphne"
    started = time.perf_counter()
    server = subprocess.Popen([str(daphne), "-b", "127.0.0.1", "-p", str(port), "faceportal.asgi:application"],
                              cwd=REPO_ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not ready(port):
            if server.poll() is not None or time.perf_counter() - started > TIMEOUT_S:
                return {"seconds": float("nan"), "rss": float("nan"), "tensorflow": "did not start"}
            time.sleep(0.05)
        seconds = time.perf_counter() - started
        time.sleep(1.0)  # the other pool thread finishes warming
        process = psutil.Process(server.pid)
        rss = process.memory_info().rss / 2**20
        maps = Path(f"/proc/{server.pid}/maps")
        tensorflow = "yes" if maps.exists() and "tensorflow" in maps.read_text() else "no"
        return {"seconds": seconds, "rss": rss, "tensorflow": tensorflow}
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


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
