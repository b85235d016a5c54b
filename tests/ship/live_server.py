"""A real FacePortal server in a subprocess, on the embedded default configuration.

Shared by the clean-clone `make run` test, the concurrent-writes test and `bench/concurrent_writes.py`:
they talk HTTP to daphne exactly as a client would, with nothing from the test process's settings.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# What `make test` and tests/settings.py set: a default install has none of them. The outer make's
# own variables (`make test PORT=...`) must not reach the `make run` under test either.
NOT_DEFAULT = ("DATABASE_URL", "REDIS_URL", "MONGODB_URI", "SECRET_KEY", "FACEPORTAL_API_KEY_PEPPER",
               "DJANGO_SETTINGS_MODULE", "FACEPORTAL_VAR_DIR", "PROMETHEUS_MULTIPROC_DIR",
               "MAKEFLAGS", "MFLAGS", "MAKELEVEL", "MAKEOVERRIDES")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def default_env(**extra: str) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if name not in NOT_DEFAULT}
    env.update(PYTHONUNBUFFERED="1", **extra)
    return env


def manage(*args: str, cwd: Path, env: dict[str, str], python: str = sys.executable) -> str:
    """`python manage.py ARGS` in `cwd`; its stdout, or an error carrying its stderr."""
    done = subprocess.run([python, "manage.py", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done.stdout.strip()


@dataclass
class Server:
    """A process group (make and daphne, or daphne alone) serving on `port`, logging to `log_path`."""

    command: list[str]
    cwd: Path
    env: dict[str, str]
    port: int
    log_path: Path
    process: subprocess.Popen | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Server:
        with open(self.log_path, "wb") as log:
            # Its own session, so stop() reaches daphne under make too.
            self.process = subprocess.Popen(self.command, cwd=self.cwd, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_ready(self, *, path: str = "/readyz", timeout: float = 180.0, poll: float = 0.25) -> float:
        """Seconds until `path` answered 200; raises with the server's log when it never does."""
        started = time.monotonic()
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited ({self.process.returncode}):\n{self.log()[-4000:]}")
            try:
                with urllib.request.urlopen(self.url + path, timeout=3) as response:
                    if response.status == 200:
                        return time.monotonic() - started
            except (OSError, urllib.error.HTTPError):
                pass
            if time.monotonic() - started > timeout:
                raise RuntimeError(f"{path} not ready after {timeout:.0f} s:\n{self.log()[-4000:]}")
            time.sleep(poll)

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            return self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            return self.process.wait()

    def __enter__(self) -> Server:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def daphne(*, env: dict[str, str], log_path: Path) -> Server:
    """daphne from this checkout on a free port, with exactly `env` (not started yet)."""
    port = free_port()
    # daphne through faceportal.server and -v 0, as in `make run`: its request limits, and no
    # plain-text access log beside the JSON request lines.
    return Server([sys.executable, "-m", "faceportal.server", "-v", "0", "-b", "127.0.0.1", "-p", str(port),
                   "faceportal.asgi:application"],
                  cwd=REPO_ROOT, env=env, port=port, log_path=log_path)


def daphne_server(*, var_dir: Path, log_path: Path, env: dict[str, str] | None = None) -> Server:
    """daphne from this checkout on the embedded default, its data in `var_dir` (migrated first)."""
    env = env or default_env(FACEPORTAL_VAR_DIR=str(var_dir))
    manage("migrate", "--noinput", cwd=REPO_ROOT, env=env)
    return daphne(env=env, log_path=log_path)


def call(base_url: str, method: str, path: str, *, key: str | None = None, body: dict | None = None,
         timeout: float = 120.0) -> tuple[int, dict]:
    """One JSON request; (status, decoded body). Never raises for an HTTP error status."""
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(base_url + path, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if key:
        request.add_header("Authorization", f"Bearer {key}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        raw = error.read()
        try:
            return error.code, json.loads(raw or b"{}")
        except ValueError:
            return error.code, {"raw": raw[:500].decode(errors="replace")}


def register_concurrently(base_url: str, *, key: str, organization: str, images: list[str], clients: int,
                          per_client: int) -> tuple[list[tuple[int, dict]], float]:
    """`clients` threads, each registering `per_client` new people (one image each) one after another.

    Returns every (status, body) and the wall-clock seconds the whole run took.
    """
    from concurrent.futures import ThreadPoolExecutor

    def client(number: int) -> list[tuple[int, dict]]:
        answers = []
        for i in range(per_client):
            # Few photos under many names: the same faces on purpose, so no 409 face_matches_existing_person.
            body = {"name": f"client {number} person {i}", "images": [images[(number + i) % len(images)]],
                    "allow_duplicate": True}
            answers.append(call(base_url, "POST", f"/register/{organization}", key=key, body=body))
        return answers

    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        answers = [answer for batch in pool.map(client, range(clients)) for answer in batch]
    return answers, time.monotonic() - started


def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def small_jpeg_b64(path: Path, *, max_side: int = 200) -> str:
    """The photo scaled down (the face still detectable), so many registrations stay cheap."""
    import cv2

    image = cv2.imread(str(path))
    scale = max_side / max(image.shape[:2])
    if scale < 1:
        image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return base64.b64encode(encoded.tobytes()).decode()
