"""Request throttling backed by the cache (Redis in production, so every worker shares the counts).

Three limits, each a DRF rate such as "600/min", set from the environment in settings:
- `api_key`: per API key (by its public prefix), or per staff user for session/basic requests;
- `address`: per client address, for every request, authenticated or not;
- `auth_failure`: failed authentications per client address (brute force). Once spent, further
  attempts from that address get 429 before any key is checked, until the window moves on.

Failures are counted per address only, never per key prefix: prefixes are public, so a lock-out
per prefix would let anyone lock a tenant out of its own key. A cache outage lets requests through
(counts read as empty) rather than turning a Redis failure into an API outage.
"""

from __future__ import annotations

import threading

from rest_framework.settings import api_settings
from rest_framework.throttling import SimpleRateThrottle

from apikeys.services import AuthenticatedKey


class _SettingsRateThrottle(SimpleRateThrottle):
    """Reads the rate at each request (DRF copies the rates once at import), so overrides apply."""

    def get_rate(self) -> str | None:
        return api_settings.DEFAULT_THROTTLE_RATES.get(self.scope)

    def get_ident(self, request) -> str:
        # DRF trusts X-Forwarded-For unless NUM_PROXIES is set; settings set it (default 0), so a
        # client cannot pick a fresh address per request. `or` covers a missing REMOTE_ADDR.
        return super().get_ident(request) or "unknown"


class APIKeyRateThrottle(_SettingsRateThrottle):
    scope = "api_key"

    def get_cache_key(self, request, view) -> str | None:
        if isinstance(request.auth, AuthenticatedKey):
            ident = f"key:{request.auth.prefix}"
        elif request.user is not None and getattr(request.user, "pk", None) is not None:
            ident = f"user:{request.user.pk}"
        else:
            return None  # anonymous: the address throttle covers it
        return self.cache_format % {"scope": self.scope, "ident": ident}


class ClientAddressRateThrottle(_SettingsRateThrottle):
    scope = "address"

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


class FailedAuthenticationThrottle(_SettingsRateThrottle):
    """Counts only failures; checked before a presented credential is verified."""

    scope = "auth_failure"

    def get_cache_key(self, request, view=None) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}

    def _history(self, request) -> list[float]:
        self.key = self.get_cache_key(request)
        self.now = self.timer()
        history = self.cache.get(self.key, [])
        return [moment for moment in history if moment > self.now - self.duration]

    def is_blocked(self, request) -> bool:
        if self.rate is None:
            return False
        self.history = self._history(request)
        return len(self.history) >= self.num_requests

    def record_failure(self, request) -> None:
        if self.rate is None:
            return
        history = self._history(request)
        history.insert(0, self.now)
        self.cache.set(self.key, history, self.duration)



# --- WebSockets ------------------------------------------------------------------------------------

CLOSE_TOO_MANY_FOR_KEY = 4429  # this API key already holds its limit of live connections
CLOSE_AUTH_THROTTLED = 4430  # too many failed handshakes from this address; retry after the window


class _HandshakeRequest:
    """What the throttles read of a request (its address), built from an ASGI WebSocket scope."""

    def __init__(self, scope: dict) -> None:
        client = scope.get("client") or ("", 0)
        self.META = {"REMOTE_ADDR": client[0] or ""}
        self.headers = {
            name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope.get("headers") or []
        }


def websocket_handshake_blocked(scope: dict) -> bool:
    """True when this address has spent its failed-authentication budget (same one as REST)."""
    return FailedAuthenticationThrottle().is_blocked(_HandshakeRequest(scope))


def websocket_handshake_failed(scope: dict) -> None:
    FailedAuthenticationThrottle().record_failure(_HandshakeRequest(scope))


class ConnectionSlots:
    """Live WebSocket connections per API key in this worker process.

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


websocket_slots = ConnectionSlots()
