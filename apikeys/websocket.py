"""API-key authentication for WebSocket handshakes, the same check as the REST routes.

A browser cannot set headers on a WebSocket, so the key travels in the query string:
`?token=<key>&organization=<org>&user=<user>&api_key_name=<name>`. Daphne logs only the path of a
WebSocket request, never its query string, and nothing here logs the token.

Each refusal carries its own close code (application range 4000-4999) and a reason, so a client
can tell "fix your URL" from "your key is bad" from "wrong organisation".
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from urllib.parse import parse_qs

from apikeys.services import AuthenticatedKey, api_key_verify
from organizations.models import Organization

CLOSE_BAD_REQUEST = 4400  # a required query parameter is missing or empty
CLOSE_UNAUTHORIZED = 4401  # the key is unknown, malformed, revoked, or its organisation is inactive
CLOSE_FORBIDDEN = 4403  # the key is valid but is not `organization`'s, or `user`/`api_key_name` differ
CLOSE_KEY_REVOKED = 4410  # the key was revoked (or its organisation deactivated) while connected
CLOSE_BUSY = 4503  # the server is at its WebSocket connection limit; retry later
CLOSE_TOO_MANY_FOR_KEY = 4429  # this API key already holds its limit of live connections
CLOSE_AUTH_THROTTLED = 4430  # too many failed handshakes from this address; retry after the window
CLOSE_TOO_MANY_FOR_ORGANIZATION = 4431  # this organisation's keys together hold its limit of live connections
CLOSE_IDLE = 4408  # no message for FACEPORTAL_WS_IDLE_TIMEOUT seconds
CLOSE_FLOODING = 4420  # messages kept coming far faster than FACEPORTAL_WS_MAX_FPS after rate_limited errors
CLOSE_INTERNAL_ERROR = 1011

# The error code of the final `{"type": "error", "close_code": ...}` message sent before each
# close: daphne drops close reasons, so the message is what tells a client why.
CLOSE_ERROR_CODES = {
    CLOSE_BAD_REQUEST: "invalid_handshake",
    CLOSE_UNAUTHORIZED: "authentication_failed",
    CLOSE_FORBIDDEN: "forbidden",
    CLOSE_KEY_REVOKED: "api_key_revoked",
    CLOSE_TOO_MANY_FOR_KEY: "too_many_connections",
    CLOSE_AUTH_THROTTLED: "throttled",
    CLOSE_TOO_MANY_FOR_ORGANIZATION: "too_many_connections",
    CLOSE_IDLE: "idle_timeout",
    CLOSE_FLOODING: "message_flood",
    CLOSE_BUSY: "server_busy",
    CLOSE_INTERNAL_ERROR: "internal_error",
}

REQUIRED_PARAMETERS = ("token", "organization", "user", "api_key_name")
MAX_PARAMETER_LENGTH = 300


class WebSocketAuthError(Exception):
    def __init__(self, close_code: int, reason: str):
        super().__init__(reason)
        self.close_code = close_code
        self.reason = reason


@dataclass(frozen=True)
class HandshakeCredentials:
    token: str
    organization: str
    user: str
    api_key_name: str
    options: dict[str, str]  # the other query parameters (e.g. `drop_stale`)


def handshake_credentials(*, query_string: bytes) -> HandshakeCredentials:
    """Parse the handshake's query string; raise `WebSocketAuthError` when a parameter is missing."""
    try:
        parsed = parse_qs(query_string.decode("utf-8"), keep_blank_values=True, max_num_fields=20)
    except (UnicodeDecodeError, ValueError):
        raise WebSocketAuthError(CLOSE_BAD_REQUEST, "Malformed query string.") from None
    values = {name: items[-1].strip() for name, items in parsed.items() if items}
    missing = [name for name in REQUIRED_PARAMETERS if not values.get(name)]
    if missing:
        raise WebSocketAuthError(CLOSE_BAD_REQUEST, "Missing query parameter(s): " + ", ".join(missing) + ".")
    if any(len(values[name]) > MAX_PARAMETER_LENGTH for name in REQUIRED_PARAMETERS):
        raise WebSocketAuthError(CLOSE_BAD_REQUEST, "A query parameter is too long.")
    return HandshakeCredentials(
        token=values["token"],
        organization=values["organization"],
        user=values["user"],
        api_key_name=values["api_key_name"],
        options={name: value for name, value in values.items() if name not in REQUIRED_PARAMETERS},
    )


def websocket_key_verify(*, credentials: HandshakeCredentials) -> AuthenticatedKey:
    """The REST key check (through the cache), then the handshake's organisation, user and key name.

    The organisation check compares slugs only and never looks the named organisation up, so a
    refusal reads the same whether or not that organisation exists.
    """
    identity = api_key_verify(raw_key=credentials.token)
    if identity is None:
        raise WebSocketAuthError(CLOSE_UNAUTHORIZED, "Invalid, revoked or unknown API key.")
    if identity.organization_slug != credentials.organization:
        raise WebSocketAuthError(CLOSE_FORBIDDEN, "This API key may not access that organization.")
    if identity.user != credentials.user or identity.name != credentials.api_key_name:
        raise WebSocketAuthError(CLOSE_FORBIDDEN, "'user' and 'api_key_name' do not match the API key.")
    return identity


def websocket_authenticate(*, credentials: HandshakeCredentials) -> tuple[AuthenticatedKey, Organization]:
    """The key's identity and its (active) organisation, which the connection is then bound to."""
    identity = websocket_key_verify(credentials=credentials)
    organization = Organization.objects.filter(pk=identity.organization_id, is_active=True).first()
    if organization is None:  # deactivated since the key was cached
        raise WebSocketAuthError(CLOSE_UNAUTHORIZED, "Invalid, revoked or unknown API key.")
    return identity, organization


def websocket_key_still_valid(*, token: str, identity: AuthenticatedKey) -> bool:
    """Re-check a connected key (a cache hit almost always); revocation evicts the cache entry."""
    current = api_key_verify(raw_key=token)
    return current is not None and current.key_id == identity.key_id


class ProcessConnectionCap:
    """Live WebSocket connections in this process, for FACEPORTAL_WS_MAX_CONNECTIONS.

    `try_take` checks and takes a slot in one step under a lock, so handshakes that interleave
    at their `await`s cannot all pass the check and then overshoot the cap.
    """

    def __init__(self) -> None:
        self._held = 0
        self._lock = threading.Lock()

    def try_take(self, *, limit: int) -> bool:
        with self._lock:
            if self._held >= limit:
                return False
            self._held += 1
            return True

    def release(self) -> None:
        with self._lock:
            self._held = max(0, self._held - 1)

    @property
    def held(self) -> int:
        with self._lock:
            return self._held


process_connections = ProcessConnectionCap()


class ConnectionSlots:
    """Live WebSocket connections per API key (or per organisation) in this worker process.

    Counted in memory, not in Redis: a killed worker must not leave slots taken forever, and each
    daphne process can only run so many sockets anyway. With W workers a key holds at most W x limit.
    """

    def __init__(self) -> None:
        self._counts: dict[int, int] = {}
        self._lock = threading.Lock()

    def acquire(self, key_id: int, *, limit: int) -> bool:
        with self._lock:
            if self._counts.get(key_id, 0) >= limit:
                return False
            self._counts[key_id] = self._counts.get(key_id, 0) + 1
            return True

    def release(self, key_id: int) -> None:
        with self._lock:
            remaining = self._counts.get(key_id, 0) - 1
            if remaining > 0:
                self._counts[key_id] = remaining
            else:
                self._counts.pop(key_id, None)

    def held(self, key_id: int) -> int:
        with self._lock:
            return self._counts.get(key_id, 0)


websocket_slots = ConnectionSlots()  # per API key
# Per organisation, so that one tenant's keys together cannot take the whole process cap.
organization_slots = ConnectionSlots()
