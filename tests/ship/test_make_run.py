"""The README's main command on a fresh clone: `make run` serves, and one person is registered and recognised.

Clones the committed repository into a temporary folder, reuses this virtualenv through a symlink
(its install stamp kept valid, as on a machine that already ran `make install`), and runs `make run`
with none of the test environment: no DATABASE_URL, REDIS_URL, MONGODB_URI or secrets.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.ship.live_server import REPO_ROOT, Server, b64, call, default_env, free_port, manage

pytestmark = pytest.mark.skipif(shutil.which("git") is None or shutil.which("make") is None,
                                reason="needs git and make")


def fresh_clone(tmp_path: Path) -> Path:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "--quiet", str(REPO_ROOT), str(clone)], check=True, timeout=120)
    (clone / ".venv").symlink_to(Path(sys.prefix))
    # A clone's files are newer than the venv's install stamp; age the inputs so make keeps it.
    for requirements in clone.glob("requirements*.txt"):
        os.utime(requirements, (946684800, 946684800))  # 2000-01-01
    return clone


def test_make_run_from_a_fresh_clone_serves_and_recognises(tmp_path, manifest):
    clone = fresh_clone(tmp_path)
    assert not (clone / "var").exists()  # git ignores it: make run must create what it needs
    env = default_env()
    port = free_port()
    server = Server(["make", "run", f"PORT={port}", "HOST=127.0.0.1"], cwd=clone, env=env, port=port,
                    log_path=tmp_path / "make-run.log")
    with server:
        server.wait_ready(path="/readyz", timeout=240)
        log = server.log()
        assert "127.0.0.1" in log and "HOST=0.0.0.0" in log  # the banner says how to expose it

        python = str(clone / ".venv" / "bin" / "python")
        assert manage("create_org", "demo", cwd=clone, env=env, python=python) == "demo"
        key = manage("create_api_key", "demo", "--user", "ci", "--name", "make-run", cwd=clone, env=env,
                     python=python)

        person = next(name for name, photos in manifest.items() if not name.startswith("_") and len(photos) >= 2)
        enrol, probe = manifest[person][0], manifest[person][1]
        status, body = call(server.url, "POST", "/register/demo", key=key,
                            body={"name": person, "images": [b64(enrol.path)]})
        assert status == 201, body
        status, body = call(server.url, "POST", "/recognize/demo", key=key, body={"image": b64(probe.path)})
        assert status == 200, body
        matches = [face["match"]["name"] for face in body["faces"] if face["match"]]
        assert matches == [person], body
        status, body = call(server.url, "POST", "/recognize/demo", key=key, body={})
        assert status == 400 and body["error"]["code"], body
    assert server.process.returncode is not None
    assert (clone / "var" / "db.sqlite3").exists()
    assert_logs_as_documented(server.log())


def assert_logs_as_documented(log: str) -> None:
    """One JSON line per request, with a time zone; no daphne access line, no django.request repeat."""
    assert "Traceback" not in log, log[-3000:]
    records = [json.loads(line) for line in log.splitlines() if line.startswith("{")]
    requests = [r for r in records if r.get("name") == "faceportal.request"]
    assert [(r["path"], r["status"]) for r in requests if r["method"] == "POST"] == [
        ("/register/demo", 201), ("/recognize/demo", 200), ("/recognize/demo", 400)]
    assert all(re.search(r"T\d\d:\d\d:\d\d\.\d+\+00:00$", r["time"]) for r in records), records[:3]
    assert not [r for r in records if r.get("name") == "django.request"], "4xx logged twice"
    assert not re.search(r'\] "(GET|POST) /', log), "daphne's plain-text access log is on"
