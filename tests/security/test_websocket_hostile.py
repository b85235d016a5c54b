"""Hostile WebSocket clients through the real ASGI app: malformed messages (100,000 `[`, lone
surrogates, wrong types) get an error reply and never kill the socket; every exit path frees the
process and per-key slots, even when `disconnect` never runs; the process cap is taken atomically
under concurrent handshakes."""

from __future__ import annotations

import asyncio
import json

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from apikeys.services import api_key_issue
from organizations.services import organization_create
from recognition.connections import CLOSE_BUSY, process_connections, websocket_slots
from tests.websocket import ORIGIN, application, socket_path

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT = 60

# Each is refused while the message is read (never queued for the model), so each gets one reply.
MALFORMED_TEXT = [
    "[" * 100_000,
    '{"a":' * 50_000 + "1" + "}" * 50_000,
    '{"image": [' + "[" * 100_000 + "]}",
    "not json at all",
    "",
    json.dumps([1, 2, 3]),
    '"just a string"',
    '{"image": "\\ud800"}',
    '{"image": 5}',
    '{"type": "nope"}',
    '{"type": "settings", "threshold": "high"}',
    '{"image": "x", "threshold": [[[[1]]]]}',
    '{"image": "x", "organization": "someone-else"}',
    "{" + "x" * 800_000 + "}",
]


async def open_ready(issued) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, socket_path(issued), headers=[ORIGIN])
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert connected
    ready = await communicator.receive_json_from(timeout=TIMEOUT)
    assert ready["type"] == "ready", ready
    return communicator


def make_tenants(count: int, keys_per_tenant: int, prefix: str = "tenant"):
    keys = []
    for number in range(count):
        org = organization_create(slug=f"{prefix}-{number}")
        keys.extend(api_key_issue(organization=org, user="u", name=f"k{k}") for k in range(keys_per_tenant))
    return keys


async def send_malformed(communicator: WebsocketCommunicator, count: int) -> list[str]:
    codes = []
    for number in range(count):
        if number % 5 == 4:
            message = {"type": "websocket.receive", "bytes": b""}  # an empty binary frame
        else:
            message = {"type": "websocket.receive", "text": MALFORMED_TEXT[number % len(MALFORMED_TEXT)]}
        await communicator.send_input(message)
        answer = await communicator.receive_json_from(timeout=TIMEOUT)
        assert answer["type"] == "error", answer
        assert set(answer["error"]) == {"code", "message", "details"}, answer
        codes.append(answer["error"]["code"])
    return codes


async def test_malformed_messages_from_ten_keys_leave_no_slot_taken(settings):
    settings.FACEPORTAL_WS_MAX_CONNECTIONS = 10
    settings.FACEPORTAL_WS_MAX_CONNECTIONS_PER_KEY = 1
    settings.FACEPORTAL_WS_MAX_FPS = 1000.0  # every message reaches the parser, none is rate-limited
    keys = await database_sync_to_async(make_tenants)(2, 5)
    sockets = [await open_ready(issued) for issued in keys]
    assert process_connections.held == 10

    codes = await asyncio.gather(*(send_malformed(socket, 50) for socket in sockets))
    seen = {code for per_key in codes for code in per_key}
    assert "internal_error" not in seen, seen
    assert {"malformed_message", "invalid_input", "forbidden", "frame_too_large"} <= seen, seen
    # Still open after 50 bad messages each: a well-formed settings message is answered.
    for socket in sockets:
        await socket.send_json_to({"type": "settings", "threshold": 0.9})
        assert (await socket.receive_json_from(timeout=TIMEOUT))["type"] == "settings"

    # Half leave politely; half vanish with their application cancelled, so `disconnect` never runs.
    for number, socket in enumerate(sockets):
        if number % 2:
            await socket.disconnect()
        else:
            socket.future.cancel()
            with pytest.raises(asyncio.CancelledError):
                await socket.future
    assert process_connections.held == 0
    assert all(websocket_slots.held(issued.api_key.pk) == 0 for issued in keys)

    fresh = (await database_sync_to_async(make_tenants)(1, 1, "fresh"))[0]
    newcomer = await open_ready(fresh)
    await newcomer.disconnect()
    # And every old key can come back, one slot each.
    again = [await open_ready(issued) for issued in keys]
    for socket in again:
        await socket.disconnect()
    assert process_connections.held == 0


async def test_a_crash_inside_the_consumer_frees_the_slots(settings, monkeypatch):
    """An exception that escapes the handlers (the old RecursionError path) kills the application
    before `disconnect`; the slots must come back anyway."""
    settings.FACEPORTAL_WS_MAX_CONNECTIONS = 1
    issued = (await database_sync_to_async(make_tenants)(1, 1))[0]
    socket = await open_ready(issued)
    assert process_connections.held == 1 and websocket_slots.held(issued.api_key.pk) == 1

    from recognition import consumers

    async def explode(self, message):
        raise RuntimeError("escaped the handler")

    monkeypatch.setattr(consumers.RecognizeConsumer, "websocket_receive", explode)
    await socket.send_to(text_data="{}")
    with pytest.raises(RuntimeError):
        await socket.future
    assert process_connections.held == 0 and websocket_slots.held(issued.api_key.pk) == 0
    monkeypatch.undo()
    again = await open_ready(issued)
    await again.disconnect()


async def test_concurrent_handshakes_never_overshoot_the_process_cap(settings):
    settings.FACEPORTAL_WS_MAX_CONNECTIONS = 3
    keys = await database_sync_to_async(make_tenants)(2, 5)

    async def attempt(issued) -> tuple[WebsocketCommunicator, dict]:
        communicator = WebsocketCommunicator(application, socket_path(issued), headers=[ORIGIN])
        connected, _ = await communicator.connect(timeout=TIMEOUT)
        assert connected
        return communicator, await communicator.receive_json_from(timeout=TIMEOUT)

    # All ten handshakes interleave at their awaits (throttle check, key check, engine).
    results = await asyncio.gather(*(attempt(issued) for issued in keys))
    ready = [socket for socket, first in results if first["type"] == "ready"]
    busy = [first for _, first in results if first["type"] == "error"]
    assert len(ready) == 3, [first for _, first in results]
    assert len(busy) == 7 and all(first["close_code"] == CLOSE_BUSY for first in busy)
    assert all(first["error"]["code"] == "server_busy" for first in busy)
    assert process_connections.held == 3
    for socket, _ in results:
        await socket.disconnect()
    assert process_connections.held == 0
