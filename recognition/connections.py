"""The WebSocket's transport rules: close codes, and the caps on live connections per process, per
API key and per organisation. The key check itself (and its refusals 4400/4401/4403) is the
apikeys room's (apikeys/websocket.py); the consumer applies both.
"""

from __future__ import annotations

import threading

from apikeys.websocket import CLOSE_BAD_REQUEST, CLOSE_FORBIDDEN, CLOSE_SCOPE_DENIED, CLOSE_UNAUTHORIZED

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
    CLOSE_SCOPE_DENIED: "scope_denied",
    CLOSE_KEY_REVOKED: "api_key_revoked",
    CLOSE_TOO_MANY_FOR_KEY: "too_many_connections",
    CLOSE_AUTH_THROTTLED: "throttled",
    CLOSE_TOO_MANY_FOR_ORGANIZATION: "too_many_connections",
    CLOSE_IDLE: "idle_timeout",
    CLOSE_FLOODING: "message_flood",
    CLOSE_BUSY: "server_busy",
    CLOSE_INTERNAL_ERROR: "internal_error",
}


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
