"""URL fetch against a real local HTTP server: FACEPORTAL_URL_FETCH_TIMEOUT bounds the whole
transfer, not each read, so a server that trickles bytes cannot hold a request thread.

The SSRF guard refuses loopback; the seam is `faces.images.url_fetch._is_public`, widened here to let
exactly this test server's address through (every other rule of the fetch stays as it is)."""

from __future__ import annotations

import io
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from PIL import Image

from faceportal.errors import InvalidImage
from faces import images
from faces.images import url_fetch


def png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (10, 200, 10)).save(buffer, format="PNG")
    return buffer.getvalue()


class Trickle(BaseHTTPRequestHandler):
    """Sends a PNG; on /slow one byte every `gap` seconds (each read is quick, the whole is not)."""

    gap = 0.05

    def do_GET(self):  # noqa: N802 - http.server's name
        body = png()
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path != "/slow":
            self.wfile.write(body)
            return
        for position in range(len(body)):
            try:
                self.wfile.write(body[position:position + 1])
                self.wfile.flush()
            except OSError:  # the client gave up: what the test wants
                return
            self.server.sent_bytes = position + 1
            time.sleep(self.gap)

    def log_message(self, *args):
        pass


@pytest.fixture
def local_server(monkeypatch, settings):
    server = ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    server.sent_bytes = 0
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    allowed = server.server_address[0]
    real_is_public = url_fetch._is_public
    monkeypatch.setattr(url_fetch, "_is_public", lambda address: address == allowed or real_is_public(address))
    settings.FACEPORTAL_URL_FETCH_ENABLED = True
    yield server
    server.shutdown()
    server.server_close()


def test_a_prompt_server_is_fetched(local_server):
    port = local_server.server_address[1]
    loaded = images.load(f"http://127.0.0.1:{port}/fast.png", index=0)
    assert loaded.size == (40, 30) and loaded.source_kind == "url"


def test_a_trickling_server_is_cut_off_at_the_whole_transfer_deadline(local_server, settings):
    settings.FACEPORTAL_URL_FETCH_TIMEOUT = 1.0
    port = local_server.server_address[1]
    total = len(png())
    # Each byte arrives well within the per-read timeout; the whole would take total * gap seconds.
    assert Trickle.gap < settings.FACEPORTAL_URL_FETCH_TIMEOUT < total * Trickle.gap / 2
    with pytest.raises(InvalidImage) as refused:
        images.load(f"http://127.0.0.1:{port}/slow", index=4)
    assert refused.value.code == "image_url_unreachable"
    assert "within 1 s" in refused.value.message
    assert refused.value.details["image_index"] == 4
    assert 0 < local_server.sent_bytes < total  # stopped mid-body, not after it


def test_the_guard_still_refuses_other_loopback_addresses(local_server, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a connection was attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    with pytest.raises(InvalidImage) as refused:
        images.load("http://127.0.0.2:80/x.png", index=0)
    assert refused.value.code == "image_url_forbidden"
