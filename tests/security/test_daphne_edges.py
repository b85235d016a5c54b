"""What only a real daphne shows: Twisted's own form parsing (a multipart body without a boundary
gets Twisted's bare 400 with no body unless it is switched off) and close frames whose reason
daphne drops (the final error message carries it instead)."""

from __future__ import annotations

import asyncio
import json
import os
import urllib.request

import pytest
from django.db import connection

from faces.engine.config import deepface_home
from recognition.connections import CLOSE_UNAUTHORIZED
from tests.conftest import database_url
from tests.ship.live_server import daphne
from tests.websocket import socket_path

pytestmark = pytest.mark.django_db(transaction=True)

WAIT = 60


@pytest.fixture
def daphne_url(transactional_db, tmp_path):
    env = {**os.environ, "DATABASE_URL": database_url(connection.settings_dict),
           "FACEPORTAL_VAR_DIR": str(tmp_path / "var"), "DEEPFACE_HOME": str(deepface_home()),
           "FACEPORTAL_WARM_ENGINE": "0", "FACEPORTAL_ENGINE_WORKERS": "1", "ALLOWED_HOSTS": "localhost,127.0.0.1"}
    with daphne(env=env, log_path=tmp_path / "daphne.log") as server:
        server.wait_ready(path="/healthz", timeout=WAIT)
        yield server.url


def post(url: str, *, body: bytes, content_type: str, key: str) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, method="POST", headers={
        "Content-Type": content_type, "Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(request, timeout=WAIT) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as answer:
        return answer.code, answer.read()


@pytest.mark.parametrize("content_type", [
    "multipart/form-data",
    "multipart/form-data; boundary=",
    "multipart/form-data; boundary=\"unterminated",
    "multipart/form-data; charset=utf-8",
])
def test_multipart_without_a_usable_boundary_is_a_400_in_the_error_shape(daphne_url, make_org, make_key,
                                                                         content_type):
    issued = make_key(make_org("acme"))
    status, body = post(f"{daphne_url}/recognize/acme", body=b"--x\r\nnot really a form\r\n",
                        content_type=content_type, key=issued.plaintext)
    assert status == 400, body
    error = json.loads(body)["error"]
    assert error["code"] in {"malformed_request", "invalid_input"} and error["message"], error


def test_refused_websocket_says_why_in_a_final_message_though_daphne_drops_the_reason(daphne_url, make_org,
                                                                                      make_key):
    import websockets

    issued = make_key(make_org("acme"))
    ws_url = daphne_url.replace("http://", "ws://") + socket_path(issued, token=issued.plaintext[:-3] + "xyz")

    async def exchange():
        async with websockets.connect(ws_url, origin=daphne_url, open_timeout=WAIT) as socket_:
            final = json.loads(await asyncio.wait_for(socket_.recv(), WAIT))
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await asyncio.wait_for(socket_.recv(), WAIT)
            return final, closed.value.rcvd

    final, close_frame = asyncio.run(exchange())
    assert close_frame.code == CLOSE_UNAUTHORIZED
    assert close_frame.reason == ""  # what daphne does to every close reason
    assert final["type"] == "error" and final["close_code"] == CLOSE_UNAUTHORIZED
    assert final["error"]["code"] == "authentication_failed" and final["error"]["message"]
