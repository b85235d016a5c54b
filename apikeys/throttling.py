"""Request throttling backed by the cache (Redis in production, so every worker shares the counts).

Rate limits, each a DRF rate such as "600/min", set from the environment in settings:
- `api_key`: per API key (by its public prefix), or per staff user for session/basic requests;
- `address`: per client address, for every request, authenticated or not;
- `auth_failure`: failed authentications per client *network*: an IPv4 address, or an IPv6 /64
  (one host usually holds a whole /64, so single IPv6 addresses are free to rotate);
- `password_failure_user`: failed staff passwords (Basic auth) per username, from all networks
  together: passwords are guessable, so guesses spread over many addresses stay bounded.

There is no budget that every client shares. An API key's secret has 256 bits and is checked with
one HMAC, so guesses from many addresses together gain nothing and need no common ceiling: each
network's own budget bounds what it costs. A username's spent budget locks out the *sources*, not
the person: it refuses networks that have not signed in as that user before, while a network that
did (within `FACEPORTAL_STAFF_KNOWN_NETWORK_DAYS`) keeps its own per-network budget.

The failure budgets are atomic counters (`incr`, created by `add` with the window as expiry) in a
cache alias of their own (`auth_budget`), so nothing else that is cached can evict them. An
attempt *reserves* its place before the credential is checked: concurrent guesses can never get
more checks than the budget, and a credential that turns out valid gives its place back. While a
budget is spent, every attempt it covers gets 429 before any credential is checked.

Failures are never counted per key prefix: prefixes are public, so a lock-out per prefix would let
anyone lock a tenant out of its own key. A cache outage lets requests through (counts read as
unknown) rather than turning a Redis failure into an API outage.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from rest_framework.settings import api_settings
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

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


def budget_cache() -> BaseCache:
    """The failure counters' own cache (settings `auth_budget`), never shared with other entries."""
    return caches["auth_budget"] if "auth_budget" in settings.CACHES else caches["default"]


def _take(key: str, window: int) -> int | None:
    """Atomically count one more in `key` (created with `window` as expiry); None if unknown."""
    store = budget_cache()
    for _ in range(2):
        try:
            return store.incr(key)
        except ValueError:  # no counter yet (or it just expired): start one at 1
            if store.add(key, 1, timeout=window):
                return 1
    return None  # the cache does not answer (django-redis ignores outages): let the request through


def _give_back(key: str) -> None:
    try:
        budget_cache().decr(key)
    except ValueError:  # the window ended meanwhile; nothing to give back
        pass


def _username_digest(username: str) -> str:
    # Hashed: a username is attacker-chosen text of any length; the digest is a safe, short key.
    return hashlib.sha256(username.encode("utf-8", "surrogatepass")).hexdigest()[:32]


class FailedAuthBudget:
    """The failed-authentication budgets one attempt draws on.

    `reserve()` before checking a credential (False: refuse with 429), `release()` once it proved
    valid. Unreleased reservations are the failures. `for_address` covers every credential;
    `for_username` adds, for a staff password, the username's budget.
    """

    def __init__(self, budgets: list[_Budget]) -> None:
        self.budgets = budgets
        self.reserved: list[_Budget] = []
        self.spent: _Budget | None = None

    @classmethod
    def for_address(cls, ident: str) -> FailedAuthBudget:
        network = address_bucket(ident)
        rate = _rate("auth_failure")
        return cls([_Budget(key=f"authfail:v3:net:{network}", limit=rate[0], window=rate[1])] if rate else [])

    @classmethod
    def for_request(cls, request) -> FailedAuthBudget:
        # DRF's ident trusts X-Forwarded-For only through NUM_PROXIES (settings: 0 by default), so a
        # client cannot pick a fresh address per request.
        return cls.for_address(BaseThrottle().get_ident(request) or "")

    @classmethod
    def for_username(cls, request, *, username: str) -> FailedAuthBudget:
        """The username's budget, or none at all from a network that signed in as this user before."""
        known = _known_network_key(request, username=username)
        rate = _rate("password_failure_user")
        if rate is None or budget_cache().get(known) is not None:
            return cls([])
        return cls([_Budget(key=f"authfail:v3:user:{_username_digest(username)}", limit=rate[0], window=rate[1])])

    def reserve(self) -> bool:
        for budget in self.budgets:
            count = _take(budget.key, budget.window)
            if count is None:
                continue
            self.reserved.append(budget)
            if count > budget.limit:
                self.spent = budget
                # Budgets checked before this one give their place back: a refusal by one budget
                # must not also spend another.
                for earlier in self.reserved[:-1]:
                    _give_back(earlier.key)
                self.reserved = []
                return False
        return True

    def release(self) -> None:
        for budget in self.reserved:
            _give_back(budget.key)
        self.reserved = []

    def wait(self) -> int:
        """Seconds until the spent budget's window ends (its whole length when the cache can't say)."""
        if self.spent is None:
            return 1
        ttl = getattr(budget_cache(), "ttl", None)
        remaining = ttl(self.spent.key) if ttl is not None else None
        if isinstance(remaining, int) and 0 < remaining <= self.spent.window:
            return remaining
        return self.spent.window


def _known_network_key(request, *, username: str) -> str:
    network = address_bucket(BaseThrottle().get_ident(request) or "")
    return f"authok:v1:user:{_username_digest(username)}:net:{network}"


def remember_staff_network(request, *, username: str) -> None:
    """After a right password: this network may go on trying while the username's budget is spent."""
    days = settings.FACEPORTAL_STAFF_KNOWN_NETWORK_DAYS
    if days > 0:
        budget_cache().set(_known_network_key(request, username=username), 1, timeout=days * 86400)


# --- WebSocket handshakes (the same failed-authentication budget; close codes and slots: recognition.connections) ---

class _HandshakeRequest:
    """What the throttles read of a request (its address), built from an ASGI WebSocket scope."""

    def __init__(self, scope: dict) -> None:
        client = scope.get("client") or ("", 0)
        self.META = {"REMOTE_ADDR": client[0] or ""}
        self.headers = {
            name.decode("latin-1").lower(): value.decode("latin-1") for name, value in scope.get("headers") or []
        }


def websocket_handshake_reserve(scope: dict) -> FailedAuthBudget | None:
    """Take this handshake's place in its address's budget (the REST one), or None when spent.

    The caller releases it once the key proved valid or the handshake failed for another reason;
    kept, it is the failure. Reserved before the key is looked at, so concurrent bad handshakes
    get no more checks than the budget.
    """
    budget = FailedAuthBudget.for_request(_HandshakeRequest(scope))
    return budget if budget.reserve() else None
