"""WebSocket limits and brute force: live connections per API key, failed handshakes per address,
and the key of one organisation never opens another's socket (same answer whether it exists)."""

from __future__ import annotations

import asyncio
import itertools
import json
import logging

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from channels.testing import WebsocketCommunicator
from django.db import connections
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recognition.connections import CLOSE_AUTH_THROTTLED, CLOSE_TOO_MANY_FOR_KEY, CLOSE_UNAUTHORIZED, websocket_slots
from tests.websocket import ORIGIN, application, socket_path

pytestmark = pytest.mark.django_db(transaction=True)

TIMEOUT = 60


async def connect(path: str, client: str = "198.51.100.7") -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, path, headers=[ORIGIN])
    communicator.scope["client"] = (client, 50000)
    connected, _ = await communicator.connect(timeout=TIMEOUT)
    assert connected
    return communicator


async def first_message(communicator: WebsocketCommunicator) -> dict:
    return await communicator.receive_output(timeout=TIMEOUT)


async def assert_closed_with(communicator: WebsocketCommunicator, code: int) -> str:
    """A refusal: a final error message saying why (daphne drops close reasons), then the close."""
    message = await first_message(communicator)
    assert message["type"] == "websocket.send", message
    final = json.loads(message["text"])
    assert final["type"] == "error" and final["close_code"] == code, final
    assert final["error"]["code"] and final["error"]["message"], "every refusal carries a reason"
    closed = await first_message(communicator)
    assert closed["type"] == "websocket.close", closed
    assert closed["code"] == code, closed
    assert closed.get("reason") == final["error"]["message"]
    return final["error"]["message"]


async def assert_ready(communicator: WebsocketCommunicator) -> None:
    message = await first_message(communicator)
    assert message["type"] == "websocket.send" and '"ready"' in message["text"], message




@pytest.fixture
def acme_keys(make_org, make_key):
    org = make_org("acme")
    return make_key(org, name="kiosk"), make_key(org, name="other")


async def test_live_connections_per_key_are_capped_and_freed_on_close(settings, acme_keys):
    settings.FACEPORTAL_WS_MAX_CONNECTIONS_PER_KEY = 2
    kiosk, other = acme_keys
    first, second = await connect(socket_path(kiosk)), await connect(socket_path(kiosk))
    await assert_ready(first)
    await assert_ready(second)

    third = await connect(socket_path(kiosk))
    reason = await assert_closed_with(third, CLOSE_TOO_MANY_FOR_KEY)
    assert "API key" in reason
    # The cap is per key: another key of the same organisation still connects.
    unrelated = await connect(socket_path(other))
    await assert_ready(unrelated)

    await first.disconnect()
    again = await connect(socket_path(kiosk))
    await assert_ready(again)
    for communicator in (second, unrelated, again):
        await communicator.disconnect()
    assert websocket_slots.held(kiosk.api_key.pk) == 0 and websocket_slots.held(other.api_key.pk) == 0


async def test_guessing_keys_on_the_socket_is_throttled_like_rest(rates, acme_keys):
    rates(auth_failure="3/min")
    valid = acme_keys[0]
    for attempt in range(3):
        guess = await connect(socket_path(valid, token=f"fp_{valid.api_key.prefix}_guess{attempt}"))
        await assert_closed_with(guess, CLOSE_UNAUTHORIZED)
    blocked = await connect(socket_path(valid))
    await assert_closed_with(blocked, CLOSE_AUTH_THROTTLED)
    elsewhere = await connect(socket_path(valid), client="198.51.100.8")
    await assert_ready(elsewhere)
    await elsewhere.disconnect()


async def test_failed_rest_attempts_and_socket_attempts_share_one_budget(rates, acme_keys, client):
    rates(auth_failure="2/min")
    valid = acme_keys[0]

    def guess_over_rest() -> list[int]:
        try:
            return [
                client.get("/orgs/acme/people", HTTP_AUTHORIZATION=f"Bearer fp_000000000000_x{attempt}",
                           REMOTE_ADDR="198.51.100.9").status_code
                for attempt in range(2)
            ]
        finally:
            connections.close_all()  # this worker thread's connection, so the test database can be dropped

    assert await sync_to_async(guess_over_rest)() == [401, 401]
    blocked = await connect(socket_path(valid), client="198.51.100.9")
    await assert_closed_with(blocked, CLOSE_AUTH_THROTTLED)


async def closing_code(communicator: WebsocketCommunicator) -> int:
    message = await first_message(communicator)
    if message["type"] == "websocket.send":
        final = json.loads(message["text"])
        if final.get("type") == "ready":
            await communicator.disconnect()
            return 0
        message = await first_message(communicator)
    return message["code"]


@pytest.mark.parametrize(("budget", "burst"), [(3, 12), (5, 30), (10, 36)])
async def test_a_burst_of_bad_handshakes_gets_no_more_checks_than_the_budget(rates, acme_keys, budget, burst):
    rates(auth_failure=f"{budget}/min")
    valid = acme_keys[0]
    paths = [socket_path(valid, token=f"fp_{valid.api_key.prefix if n % 2 else f'{n:012x}'}_guess{n}")
             for n in range(burst)]
    communicators = await asyncio.gather(*(connect(path, client="198.51.100.30") for path in paths))
    codes = await asyncio.gather(*(closing_code(communicator) for communicator in communicators))
    assert codes.count(CLOSE_UNAUTHORIZED) == budget, codes
    assert codes.count(CLOSE_AUTH_THROTTLED) == burst - budget, codes


@pytest.mark.parametrize("networks", [["198.18.{n}.1"], ["2001:db8:{n:x}::1"], ["198.18.{n}.1", "2001:db8:{n:x}::7"]])
async def test_bad_handshakes_from_many_networks_leave_an_idle_key_working(default_rates, acme_keys, networks):
    default_rates(auth_failure="5/min")  # the shipped rates otherwise: 400 to 800 failures in the minute
    idle, guessed = acme_keys
    sources = [pattern.format(n=n) for n in range(1, 81) for pattern in networks]
    for n, source in enumerate(sources):
        for attempt in range(6):
            token = f"fp_{n * 8 + attempt:012x}_guess" if attempt != 2 else f"fp_{guessed.api_key.prefix}_x{n}"
            await closing_code(await connect(socket_path(guessed, token=token), client=source))
    # The idle key (never used, not in the cache) connects from a network that did not guess ...
    fresh = await connect(socket_path(idle), client="192.0.2.222")
    await assert_ready(fresh)
    await fresh.disconnect()
    # ... while the sources are held: the right key from one of them gets 4430.
    held = await connect(socket_path(idle), client=sources[0])
    await assert_closed_with(held, CLOSE_AUTH_THROTTLED)


# Control, format and non-ASCII characters that no issued key holds (none is whitespace, which the
# handshake trims from each parameter's ends).
HOSTILE_CHARACTERS = st.sampled_from(["\x00", "\x01", "\x08", "\x1b", "\x7f", "\u200b", "\u202e", "é", "\ufeff"])
FRESH_NETWORKS = itertools.count(1)


@given(data=st.data())
@settings(max_examples=20, suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_a_token_with_a_control_or_odd_character_is_refused_and_counted_like_any_bad_key(
    rates, acme_keys, caplog, data
):
    rates(auth_failure="2/min")
    valid = acme_keys[0]
    scheme, prefix, secret = valid.plaintext.split("_", 2)
    parts = {"scheme": scheme, "prefix": prefix, "secret": secret}
    part = data.draw(st.sampled_from(sorted(parts)), label="part")
    text = parts[part]
    position = data.draw(st.integers(min_value=0, max_value=len(text) - 1), label="position")
    inserted = data.draw(st.text(HOSTILE_CHARACTERS, min_size=1, max_size=3), label="inserted")
    # Replacing keeps each part's length (a 12-character prefix with a NUL reached the database).
    replace = data.draw(st.booleans(), label="replace")
    parts[part] = text[:position] + inserted + text[position + (len(inserted) if replace else 0):]
    hostile = "_".join(parts[name] for name in ("scheme", "prefix", "secret"))
    client = f"2001:db8:{next(FRESH_NETWORKS):x}::1"  # each example's own budget
    caplog.clear()

    async def handshakes() -> None:
        for _ in range(2):
            refused = await connect(socket_path(valid, token=hostile), client=client)
            await assert_closed_with(refused, CLOSE_UNAUTHORIZED)
        held = await connect(socket_path(valid), client=client)  # both counted: the address is spent
        await assert_closed_with(held, CLOSE_AUTH_THROTTLED)

    async_to_sync(handshakes)()
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR or record.exc_info]
