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

