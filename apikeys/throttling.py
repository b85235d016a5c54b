"""Request throttling backed by the cache (Redis in production, so every worker shares the counts).

Rate limits, each a DRF rate such as "600/min", set from the environment in settings:
- `api_key`: per API key (by its public prefix), or per staff user for session/basic requests;
- `address`: per client address, for every request, authenticated or not;
- `auth_failure`: failed authentications per client *network*: an IPv4 address, or an IPv6 /64
  (one host usually holds a whole /64, so single IPv6 addresses are free to rotate);
- `auth_failure_global`: failed authentications from all addresses together, so rotating source
  addresses (a botnet, or 127/8 on a shared host) cannot multiply the per-address budget;
- `password_failure_global`: failed staff passwords (Basic auth) from all addresses together:
  each one costs a deliberately slow password hash.

The failure budgets are atomic counters (`cache.incr`, created by `cache.add` with the window as
expiry), and an attempt *reserves* its place before the credential is checked: concurrent guesses
can never get more checks than the budget, and a credential that turns out valid gives its place
back. While a budget is spent, every attempt it covers gets 429 before any credential is checked.

Failures are never counted per key prefix: prefixes are public, so a lock-out per prefix would let
anyone lock a tenant out of its own key. A cache outage lets requests through (counts read as
unknown) rather than turning a Redis failure into an API outage.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import parse_qs

from django.core.cache import cache
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from apikeys.services import AuthenticatedKey, api_key_cached


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


def _network(ident: str) -> ipaddress.IPv4Address | ipaddress.IPv6Network | None:
    """An IPv4 address as itself (IPv4-mapped IPv6 too), an IPv6 address as its /64."""
    try:
        address = ipaddress.ip_address(ident.strip().strip("[]").split("%", 1)[0])
    except ValueError:
        return None
    if address.version == 4:
        return address
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return ipaddress.IPv6Network((address, 64), strict=False)


def address_bucket(ident: str) -> str:
    """The network an address counts against: IPv4 itself, an IPv6 address's /64."""
    network = _network(ident)
    if network is None:
        return "other"  # not an address (a missing REMOTE_ADDR): one shared bucket
    return f"v{network.version}:{network}"


def lockout_address(request) -> str:
    """The address django-axes locks out (AXES_CLIENT_IP_CALLABLE): the same ident as the
    throttles (X-Forwarded-For only through NUM_PROXIES), an IPv6 address as its /64's first."""
    network = _network(BaseThrottle().get_ident(request) or "")
    if network is None:
        return "0.0.0.0"
    return str(network.network_address if isinstance(network, ipaddress.IPv6Network) else network)


@dataclass(frozen=True)
class _Budget:
    key: str
    limit: int
    window: int  # seconds


def _rate(scope: str) -> tuple[int, int] | None:
    rate = api_settings.DEFAULT_THROTTLE_RATES.get(scope)
    if not rate:
        return None
    return SimpleRateThrottle.parse_rate(None, rate)


def _take(key: str, window: int) -> int | None:
    """Atomically count one more in `key` (created with `window` as expiry); None if unknown."""
    for _ in range(2):
        try:
            return cache.incr(key)
        except ValueError:  # no counter yet (or it just expired): start one at 1
            if cache.add(key, 1, timeout=window):
                return 1
    return None  # the cache does not answer (django-redis ignores outages): let the request through


def _give_back(key: str) -> None:
    try:
        cache.decr(key)
    except ValueError:  # the window ended meanwhile; nothing to give back
        pass


class FailedAuthBudget:
    """The failed-authentication budgets one attempt from one address draws on.

    `reserve()` before checking a credential (False: refuse with 429), `release()` once it proved
    valid. Unreleased reservations are the failures.
    """

    def __init__(self, ident: str, *, password: bool = False, cached_key: bool = False) -> None:
        self.network = address_bucket(ident)
        scopes = [("auth_failure", f"authfail:v2:net:{self.network}")]
        # A key the cache holds as valid is checked with one HMAC and no query, and its 256-bit
        # secret is not guessable: the global budget does not hold it up, so an attack spending
        # that budget from many addresses does not lock out every tenant's active keys.
        if not cached_key:
            scopes.append(("auth_failure_global", "authfail:v2:all"))
        if password:
            scopes.append(("password_failure_global", "authfail:v2:passwords"))
        self.budgets = [
            _Budget(key=key, limit=rate[0], window=rate[1])
            for scope, key in scopes
            if (rate := _rate(scope)) is not None
        ]
        self.reserved: list[_Budget] = []
        self.spent: _Budget | None = None

    @classmethod
    def for_request(cls, request, *, password: bool = False, raw_key: str | None = None) -> FailedAuthBudget:
        # DRF's ident trusts X-Forwarded-For only through NUM_PROXIES (settings: 0 by default), so a
        # client cannot pick a fresh address per request.
        cached_key = bool(raw_key) and api_key_cached(raw_key=raw_key)
        return cls(BaseThrottle().get_ident(request) or "", password=password, cached_key=cached_key)

    def reserve(self) -> bool:
        # Per network first: one noisy address spends its own budget, not everyone's global one.
        for budget in self.budgets:
            count = _take(budget.key, budget.window)
            if count is None:
                continue
            self.reserved.append(budget)
            if count > budget.limit:
                self.spent = budget
                # Budgets checked before this one give their place back: a refusal by the global
                # budget must not also spend this address's own budget.
                for earlier in self.reserved[:-1]:
                    _give_back(earlier.key)
                self.reserved = []
                return False
        return True

    def release(self) -> None:
        for budget in self.reserved:
            _give_back(budget.key)
        self.reserved = []

    def is_spent(self) -> bool:
        """Whether some budget is already spent, without taking anything (WebSocket handshakes)."""
        counts = cache.get_many([budget.key for budget in self.budgets])
        for budget in self.budgets:
            if int(counts.get(budget.key) or 0) >= budget.limit:
                self.spent = budget
                return True
        return False

    def record_failure(self) -> None:
        for budget in self.budgets:
            _take(budget.key, budget.window)

    def wait(self) -> int:
        """Seconds until the spent budget's window ends (its whole length when the cache can't say)."""
        if self.spent is None:
            return 1
        ttl = getattr(cache, "ttl", None)
        remaining = ttl(self.spent.key) if ttl is not None else None
        if isinstance(remaining, int) and 0 < remaining <= self.spent.window:
            return remaining
        return self.spent.window


# --- WebSocket handshakes (the same failed-authentication budget; close codes and slots: apikeys.websocket) ---

class _HandshakeRequest:
    """What the throttles read of a request (its address), built from an ASGI WebSocket scope."""

    def __init__(self, scope: dict) -> None:
        client = scope.get("client") or ("", 0)
        self.META = {"REMOTE_ADDR": client[0] or ""}
        self.headers = {
            name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope.get("headers") or []
        }


def websocket_handshake_blocked(scope: dict) -> bool:
    """True when this address has spent its failed-authentication budget (same one as REST).

    A handshake has no place to give a reservation back, so it checks, then counts a failure
    atomically afterwards: concurrent bad handshakes can exceed the budget by their concurrency.
    """
    return FailedAuthBudget.for_request(_HandshakeRequest(scope), raw_key=_handshake_token(scope)).is_spent()


def websocket_handshake_failed(scope: dict) -> None:
    FailedAuthBudget.for_request(_HandshakeRequest(scope), raw_key=_handshake_token(scope)).record_failure()


def _handshake_token(scope: dict) -> str | None:
    try:
        values = parse_qs((scope.get("query_string") or b"").decode("utf-8"), max_num_fields=20).get("token")
    except (UnicodeDecodeError, ValueError):
        return None
    return values[-1].strip() if values else None
