"""Operators see the WebSocket: a real session through daphne moves both WebSocket metrics and logs
one JSON line per connect, refusal (with its close code) and close, with the HTTP lines' fields.

Real daphne on the default configuration, a real `websockets` client, /metrics scraped over HTTP and
the server's own stdout read back.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.request

import pytest
import websockets

from tests.ship.live_server import daphne_server, default_env, manage, small_jpeg_b64
from tests.websocket import socket_path

HTTP_FIELDS = {"method", "path", "route", "status", "duration_ms", "organization", "api_key_name",
               "api_key_user", "request_id", "time"}


def metric(base_url: str, name: str, labels: str = "") -> float:
    with urllib.request.urlopen(base_url + "/metrics", timeout=10) as response:
        text = response.read().decode()
    pattern = re.compile(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", re.M)
    found = pattern.search(text)
    return float(found.group(1)) if found else 0.0


def wait_for(predicate, *, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ws-observe")
    env = default_env(FACEPORTAL_VAR_DIR=str(tmp / "var"))
    live = daphne_server(var_dir=tmp / "var", log_path=tmp / "daphne.log", env=env)
    manage("create_org", "acme", cwd=live.cwd, env=env)
    key = manage("create_api_key", "acme", "--user", "alice", "--name", "kiosk", cwd=live.cwd, env=env)
    with live:
        live.wait_ready()
        yield live, key


def socket_url(server, **query) -> str:
    return f"ws://127.0.0.1:{server.port}" + socket_path(**query)


def log_lines(server, message: str) -> list[dict]:
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("message") == message]


def test_a_real_websocket_session_moves_both_metrics_and_logs_connect_and_close(server, manifest):
    live, key = server
    ok_before = metric(live.url, "faceportal_websocket_frames_total", '{outcome="ok"}')
    errors_before = metric(live.url, "faceportal_websocket_frames_total", '{outcome="error"}')
    assert metric(live.url, "faceportal_websocket_connections") == 0
    photo = small_jpeg_b64(manifest["Barack_Obama"][0].path, max_side=400)

    async def session() -> None:
        url = socket_url(live, token=key, organization="acme", user="alice", api_key_name="kiosk")
        async with websockets.connect(url, origin=f"http://127.0.0.1:{live.port}", max_size=None) as socket:
            ready = json.loads(await asyncio.wait_for(socket.recv(), 120))
            assert ready["type"] == "ready"
            assert metric(live.url, "faceportal_websocket_connections") == 1
            await socket.send(json.dumps({"image": photo}))
            result = json.loads(await asyncio.wait_for(socket.recv(), 120))
            assert result["type"] == "result", result
            await socket.send(json.dumps({"image": "not base64 at all"}))
            error = json.loads(await asyncio.wait_for(socket.recv(), 120))
            assert error["type"] == "error", error

    asyncio.run(session())
    wait_for(lambda: metric(live.url, "faceportal_websocket_connections") == 0)
    assert metric(live.url, "faceportal_websocket_frames_total", '{outcome="ok"}') == ok_before + 1
    assert metric(live.url, "faceportal_websocket_frames_total", '{outcome="error"}') == errors_before + 1

    wait_for(lambda: log_lines(live, "websocket close"))
    [connect] = log_lines(live, "websocket connect")
    [close] = log_lines(live, "websocket close")
    assert HTTP_FIELDS <= connect.keys() and HTTP_FIELDS <= close.keys()
    assert (connect["status"], connect["route"], connect["organization"], connect["api_key_name"]) == \
        (101, "ws_recognize", "acme", "kiosk")
    assert close["request_id"] == connect["request_id"]
    assert close["close_code"] == close["status"] and close["frames_processed"] == 1 and close["frames_rejected"] == 1
    assert re.search(r"[+-]\d\d:\d\d$", close["time"]), close["time"]  # the time zone is in the timestamp
    assert key not in live.log() and key.split("_")[-1] not in live.log()


def test_a_refused_websocket_logs_its_close_code_and_moves_no_gauge(server):
    live, key = server

    async def refused() -> int:
        url = socket_url(live, token=key[:-4] + "abcd", organization="acme", user="alice", api_key_name="kiosk")
        async with websockets.connect(url, origin=f"http://127.0.0.1:{live.port}") as socket:
            # The server says why in a last error message (daphne drops close reasons), then closes.
            last = json.loads(await asyncio.wait_for(socket.recv(), 60))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(socket.recv(), 60)
            assert last["type"] == "error" and last["close_code"] == closed.value.rcvd.code
            return closed.value.rcvd.code

    code = asyncio.run(refused())
    wait_for(lambda: [line for line in log_lines(live, "websocket refused") if line["status"] != 403])
    [line] = [line for line in log_lines(live, "websocket refused") if line["status"] != 403]
    assert line["close_code"] == line["status"] == code and 4000 <= code < 5000
    assert {"method", "path", "route", "status", "duration_ms", "request_id", "time"} <= line.keys()
    assert metric(live.url, "faceportal_websocket_connections") == 0


def test_a_websocket_from_a_foreign_origin_is_refused_with_one_line(server):
    live, key = server

    async def foreign() -> int:
        url = socket_url(live, token=key, organization="acme", user="alice", api_key_name="kiosk")
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with websockets.connect(url, origin="http://evil.example"):
                pass
        return refused.value.response.status_code

    assert asyncio.run(foreign()) == 403
    wait_for(lambda: [line for line in log_lines(live, "websocket refused") if line["status"] == 403])
    [line] = [line for line in log_lines(live, "websocket refused") if line["status"] == 403]
    assert line["close_code"] == 403 and "Origin" in line["reason"] and line["path"] == "/ws/recognize"
    assert key not in live.log()
