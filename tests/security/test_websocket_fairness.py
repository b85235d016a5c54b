"""One tenant cannot take the WebSocket capacity from the others: its keys together hold at most
FACEPORTAL_WS_MAX_CONNECTIONS_PER_ORGANIZATION sockets, sockets that send nothing are closed after
FACEPORTAL_WS_IDLE_TIMEOUT, and a connection flooding tiny messages is closed instead of taking
the event loop."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from recognition.connections import (
    CLOSE_FLOODING,
    CLOSE_IDLE,
    CLOSE_TOO_MANY_FOR_ORGANIZATION,
    organization_slots,
    process_connections,
    websocket_slots,
)
from tests.photos import load_manifest
from tests.websocket import ORIGIN, application, socket_path

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT = 60


async def tenant_key(make_org, make_key, slug: str):
    return await sync_to_async(make_key)(await sync_to_async(make_org)(slug), name="kiosk")


async def connect(path: str) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, path, headers=[ORIGIN])
    communicator.scope["client"] = ("198.51.100.7", 50000)
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert connected
    return communicator


async def first_text(communicator: WebsocketCommunicator, timeout: float = TIMEOUT) -> dict:
    message = await communicator.receive_output(timeout=timeout)
    assert message["type"] == "websocket.send", message
    return json.loads(message["text"])


async def opened(communicator: WebsocketCommunicator) -> bool:
    """True when the socket is ready; False when it was refused (its final message and close read)."""
    message = await first_text(communicator)
    if message["type"] == "ready":
        return True
    assert message["type"] == "error" and message["close_code"] == CLOSE_TOO_MANY_FOR_ORGANIZATION, message
    assert message["error"]["code"] == "too_many_connections" and "organization" in message["error"]["message"]
    closed = await communicator.receive_output(timeout=TIMEOUT)
    assert closed["type"] == "websocket.close" and closed["code"] == CLOSE_TOO_MANY_FOR_ORGANIZATION
    return False


async def assert_closed(communicator: WebsocketCommunicator, code: int, *, within: float) -> None:
    """Skips replies until the final error message, which must carry `code`, then the close."""
    deadline = time.monotonic() + within
    while True:
        message = await first_text(communicator, timeout=max(0.1, deadline - time.monotonic()))
        if message["type"] == "error" and message.get("close_code") is not None:
            break
    assert message["close_code"] == code, message
    closed = await communicator.receive_output(timeout=TIMEOUT)
    assert closed["type"] == "websocket.close" and closed["code"] == code, closed


@pytest.mark.parametrize("keys,per_key,per_org", [(3, 2, 4), (5, 3, 7), (10, 10, 30)])
async def test_one_organisations_keys_together_hold_at_most_its_share(settings, make_org, make_key, keys, per_key,
                                                                      per_org):
    settings.FACEPORTAL_WS_MAX_CONNECTIONS = per_org + 5
    settings.FACEPORTAL_WS_MAX_CONNECTIONS_PER_KEY = per_key
    settings.FACEPORTAL_WS_MAX_CONNECTIONS_PER_ORGANIZATION = per_org
    settings.FACEPORTAL_WS_IDLE_TIMEOUT = 0
    greedy = await sync_to_async(make_org)("greedy")
    issued = [await sync_to_async(make_key)(greedy, name=f"k{n}") for n in range(keys)]
    bystander = await sync_to_async(make_key)(await sync_to_async(make_org)("bystander"), name="kiosk")

    held, refused = [], 0
    for key in issued:
        for _ in range(per_key):
            communicator = await connect(socket_path(key))
            if await opened(communicator):
                held.append((key, communicator))
            else:
                refused += 1
    assert len(held) == min(per_org, keys * per_key)
    assert refused == keys * per_key - len(held)
    # The process still has room, and another tenant gets it.
    other = await connect(socket_path(bystander))
    assert await opened(other)
    # Closing one of the greedy tenant's sockets gives that tenant one back.
    freed_key, freed = held.pop()
    await freed.disconnect()
    again = await connect(socket_path(freed_key))
    assert await opened(again)
    for communicator in [*(c for _, c in held), other, again]:
        await communicator.disconnect()
    assert organization_slots.held(greedy.pk) == 0 and process_connections.held == 0
    assert all(websocket_slots.held(key.api_key.pk) == 0 for key in issued)


@pytest.mark.parametrize("timeout,sockets", [(0.4, 1), (0.7, 4), (1.0, 9)])
async def test_sockets_that_send_nothing_are_closed_and_free_their_slots(settings, make_org, make_key, timeout,
                                                                          sockets):
    settings.FACEPORTAL_WS_IDLE_TIMEOUT = timeout
    org = await sync_to_async(make_org)("idler")
    key = await sync_to_async(make_key)(org, name="kiosk")
    started = time.monotonic()  # before the first socket opens: each one's idle clock starts later
    idle = [await connect(socket_path(key)) for _ in range(sockets)]
    chatty = await connect(socket_path(key))
    for communicator in [*idle, chatty]:
        assert (await first_text(communicator))["type"] == "ready"

    async def keep_talking():
        # A settings message every third of the timeout: activity, so this socket stays open.
        for n in range(6):
            await asyncio.sleep(timeout / 3)
            await chatty.send_to(text_data=json.dumps({"type": "settings", "max_results": 1 + n % 3}))
            assert (await first_text(chatty))["type"] == "settings"

    talking = asyncio.create_task(keep_talking())
    for communicator in idle:
        await assert_closed(communicator, CLOSE_IDLE, within=timeout + 3)
    assert time.monotonic() - started >= timeout * 0.9
    await talking
    assert organization_slots.held(org.pk) == 1 and websocket_slots.held(key.api_key.pk) == 1
    await chatty.disconnect()
    assert organization_slots.held(org.pk) == 0 and process_connections.held == 0


@pytest.mark.parametrize("size,text", [(1, False), (16, True), (200, False)])
async def test_a_flood_of_tiny_messages_closes_that_connection_and_not_the_others(settings, make_org, make_key,
                                                                                   size, text):
    settings.FACEPORTAL_WS_MAX_FPS = 10.0
    settings.FACEPORTAL_WS_FLOOD_FACTOR = 4.0
    settings.FACEPORTAL_WS_IDLE_TIMEOUT = 0
    flooder = await connect(socket_path(await tenant_key(make_org, make_key, "flood")))
    victim = await connect(socket_path(await tenant_key(make_org, make_key, "victim")))
    assert (await first_text(flooder))["type"] == "ready" and (await first_text(victim))["type"] == "ready"

    payload = {"text_data": "x" * size} if text else {"bytes_data": b"\xff" * size}
    for _ in range(500):  # 500 at once: far past 10 a second and a 40-message burst
        await flooder.send_to(**payload)
    await assert_closed(flooder, CLOSE_FLOODING, within=30)

    # The other tenant's socket is untouched and still answers a real frame.
    photo = next(p[0] for identity, p in sorted(load_manifest().items()) if not identity.startswith("_") and p)
    await victim.send_to(bytes_data=photo.path.read_bytes())
    reply = await first_text(victim)
    assert reply["type"] == "result", reply
    await victim.disconnect()


async def test_a_client_at_the_frame_rate_is_never_taken_for_a_flood(settings, make_org, make_key):
    settings.FACEPORTAL_WS_MAX_FPS = 20.0
    settings.FACEPORTAL_WS_FLOOD_FACTOR = 2.0
    settings.FACEPORTAL_WS_IDLE_TIMEOUT = 0
    communicator = await connect(socket_path(await tenant_key(make_org, make_key, "steady")))
    assert (await first_text(communicator))["type"] == "ready"
    for n in range(60):  # 3 s at the limit, settings messages answered one by one
        await communicator.send_to(text_data=json.dumps({"type": "settings", "max_results": 1 + n % 3}))
        assert (await first_text(communicator))["type"] == "settings"
        await asyncio.sleep(1 / 20)
    await communicator.disconnect()
