"""Bodies over a route's limit and requests sent too slowly, against a real daphne started the way
`make run` starts it (`python -m faceportal.server`): daphne reads and queues a whole body before
the application sees any of it, so only the server can refuse in time.

Every request here is anonymous: the limits hold before any credential is checked.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from tests.ship.live_server import REPO_ROOT, daphne, default_env, manage

SMALL_LIMIT = 64 * 1024
IMAGE_LIMIT = 2 * 1024 * 1024
HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 2.0
SMALL_ROUTES = ["/healthz", "/readyz", "/orgs", "/orgs/acme/people", "/orgs/acme/api-key", "/no/such/route",
                "/admin/login/", "/orgs/acme/enrolment-jobs/1",
                "/orgs/acme/export"]
IMAGE_ROUTES = ["/register/acme", "/recognize/acme", "/verify/acme", "/recognize/acme/", "/orgs/acme/enrolment-jobs",
                 "/orgs/acme/import"]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    var = tmp_path_factory.mktemp("var")
    env = default_env(FACEPORTAL_VAR_DIR=str(var), FACEPORTAL_WARM_ENGINE="0", FACEPORTAL_ENGINE_WORKERS="1",
                      FACEPORTAL_MAX_SMALL_BODY_BYTES=str(SMALL_LIMIT), FACEPORTAL_MAX_BODY_BYTES=str(IMAGE_LIMIT),
                      FACEPORTAL_HTTP_HEADER_TIMEOUT=str(HEADER_TIMEOUT),
                      FACEPORTAL_HTTP_BODY_TIMEOUT=str(BODY_TIMEOUT))
    manage("migrate", "--noinput", cwd=REPO_ROOT, env=env)
    with daphne(env=env, log_path=Path(var) / "daphne.log") as running:
        running.wait_ready(path="/healthz", timeout=60)
        yield running


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def daphne_pid(server) -> int:
    # The server runs as `python -m faceportal.server` directly, so its pid is the process's.
    return server.process.pid


def answer(sock: socket.socket, timeout: float = 15.0) -> tuple[int, dict | None, float]:
    """(status, JSON body or None, seconds until it came) of the one response on `sock`."""
    started = time.monotonic()
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        if not piece:
            break
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                   if line.lower().startswith(b"content-length:")), None)
    while length is not None and len(body) < length:
        piece = sock.recv(65536)
        if not piece:
            break
        body += piece
    try:
        decoded = json.loads(body) if body else None
    except ValueError:
        decoded = None
    return status, decoded, time.monotonic() - started


def connect(server) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=15)


def headers(path: str, framing: str) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n{framing}\r\n\r\n"
            .encode())


def assert_too_large(status: int, body: dict | None, *, limit: int) -> None:
    assert status == 413, (status, body)
    assert body["error"]["code"] == "request_too_large" and body["error"]["message"], body
    assert body["error"]["details"]["limit"] == limit


FAST = hypothesis_settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@FAST
@given(route=st.sampled_from(SMALL_ROUTES + IMAGE_ROUTES), excess=st.integers(1, 2**40))
def test_a_declared_length_over_the_routes_limit_is_refused_before_any_body_is_sent(server, route, excess):
    limit = IMAGE_LIMIT if route in IMAGE_ROUTES else SMALL_LIMIT
    with connect(server) as sock:
        sock.sendall(headers(route, f"Content-Length: {limit + excess}"))  # and not one byte of body
        status, body, _ = answer(sock)
    assert_too_large(status, body, limit=limit)


@FAST
# Chunks of at least 1 KiB: a body of tiny chunks that cannot reach the limit within the body
# deadline is the slow-body case (408), tested on its own below.
@given(route=st.sampled_from(SMALL_ROUTES + IMAGE_ROUTES), chunk=st.integers(1024, 256 * 1024))
def test_a_chunked_body_is_cut_off_once_it_passes_the_routes_limit(server, route, chunk):
    limit = IMAGE_LIMIT if route in IMAGE_ROUTES else SMALL_LIMIT
    with connect(server) as sock:
        sock.sendall(headers(route, "Transfer-Encoding: chunked"))
        block = b"%x\r\n%s\r\n" % (chunk, b"[" * chunk)
        sent = 0
        try:
            while sent <= 4 * limit:  # never the end of the body: the server must stop it
                sock.sendall(block)
                sent += chunk
        except OSError:
            pass
        status, body, _ = answer(sock)
    assert_too_large(status, body, limit=limit)


@FAST
@given(route=st.sampled_from(SMALL_ROUTES + IMAGE_ROUTES), size=st.integers(0, SMALL_LIMIT))
def test_bodies_within_the_limit_reach_the_application(server, route, size):
    """The limit refuses only what is over it: these get the application's own answer."""
    with connect(server) as sock:
        sock.sendall(headers(route, f"Content-Length: {size}") + b"{" * size)
        status, body, _ = answer(sock)
    assert status not in {0, 408, 413}, (status, body)


@pytest.mark.parametrize("megabytes,chunked", [(64, False), (256, True), (1024, False)])
def test_memory_stays_flat_after_oversized_bodies(server, megabytes, chunked):
    """A 1 GB POST to /healthz grew plain daphne by about 1 GB that it never gave back."""
    pid = daphne_pid(server)
    before = rss_mb(pid)
    peak = before
    block = b"a" * (1024 * 1024)
    framed = b"%x\r\n%s\r\n" % (len(block), block) if chunked else block
    for route in ("/healthz", "/register/acme"):
        with connect(server) as sock:
            sock.sendall(headers(route, "Transfer-Encoding: chunked" if chunked
                                 else f"Content-Length: {megabytes * 2**20}"))
            try:
                for _ in range(megabytes):
                    sock.sendall(framed)
                    peak = max(peak, rss_mb(pid))
            except OSError:
                pass
            status, body, _ = answer(sock)
        assert status == 413, (status, body)
    after = rss_mb(pid)
    assert peak - before < 40 and after - before < 40, (before, peak, after)


drips = st.lists(st.binary(min_size=1, max_size=3).filter(lambda b: b"\r" not in b and b"\n" not in b),
                 min_size=1, max_size=4)


def answered(sock: socket.socket) -> bool:
    """Whether the server has started its answer (peeked, not read)."""
    sock.settimeout(0.01)
    try:
        return bool(sock.recv(1, socket.MSG_PEEK))
    except (TimeoutError, BlockingIOError):
        return False


@hypothesis_settings(max_examples=4, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(pieces=drips, pause=st.floats(0.2, 0.6), route=st.sampled_from(["/healthz", "/recognize/acme"]))
def test_headers_sent_slowly_time_out(server, pieces, pause, route):
    """A client that sends its headers a few bytes at a time, each before the idle timeout, is cut
    off at the header deadline (408), not held for as long as it keeps dripping."""
    with connect(server) as sock:
        started = time.monotonic()
        sock.sendall(f"GET {route} HTTP/1.1\r\nHost: localhost\r\nX-Slow: ".encode())
        try:
            while time.monotonic() - started < HEADER_TIMEOUT + 6:
                for piece in pieces:
                    sock.sendall(piece)
                    time.sleep(pause)
                if answered(sock):
                    break
        except OSError:
            pass
        status, body, _ = answer(sock)
        elapsed = time.monotonic() - started
    assert status == 408, (status, body)
    assert body["error"]["code"] == "request_timeout"
    assert elapsed < HEADER_TIMEOUT + 4, elapsed


@hypothesis_settings(max_examples=3, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(declared=st.integers(100, SMALL_LIMIT), pause=st.floats(0.1, 0.4))
def test_a_body_sent_slowly_times_out(server, declared, pause):
    with connect(server) as sock:
        started = time.monotonic()
        sock.sendall(headers("/recognize/acme", f"Content-Length: {declared}"))
        try:
            for _ in range(int((BODY_TIMEOUT + 6) / pause)):
                sock.sendall(b"{")
                time.sleep(pause)
                if answered(sock):
                    break
        except OSError:
            pass
        status, body, _ = answer(sock)
        elapsed = time.monotonic() - started
    assert status == 408, (status, body)
    assert elapsed < BODY_TIMEOUT + 4, elapsed


def test_keep_alive_requests_each_get_their_own_header_deadline(server):
    """The deadline runs from a request's first byte: a keep-alive connection that pauses between
    quick requests is not cut off."""
    with connect(server) as sock:
        for _ in range(3):
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            status, body, _ = answer(sock)
            assert status == 200, (status, body)
            time.sleep(HEADER_TIMEOUT + 0.3)


def test_a_flood_of_tiny_websocket_frames_is_cut_off_in_the_server(server):
    """Daphne queues every frame for the application without limit: the flood must end at the
    server's protocol, while /healthz keeps answering and memory stays flat."""
    import asyncio

    import websockets

    env = server.env
    manage("create_org", "flood", cwd=REPO_ROOT, env=env)
    key = manage("create_api_key", "flood", "--user", "f", "--name", "k", cwd=REPO_ROOT, env=env).splitlines()[-1]
    url = f"ws://127.0.0.1:{server.port}/ws/recognize?token={key}&organization=flood&user=f&api_key_name=k"
    pid = daphne_pid(server)
    before = rss_mb(pid)

    async def flood(size: int) -> tuple[int, float]:
        started = time.monotonic()
        async with websockets.connect(url, origin=server.url, open_timeout=30) as socket_:
            assert json.loads(await socket_.recv())["type"] == "ready"
            try:
                for _ in range(200_000):
                    await socket_.send(b"\xff" * size)
                    await asyncio.sleep(0)
            except websockets.ConnectionClosed:
                pass
            return socket_.close_code, time.monotonic() - started

    for size in (1, 7, 64):
        code, seconds = asyncio.run(flood(size))
        assert code in (4420, 1006), code  # 1006: closed under a client still writing
        assert seconds < 10, seconds
        with connect(server) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            status, _, took = answer(sock)
        assert status == 200 and took < 2
    assert rss_mb(pid) - before < 60
