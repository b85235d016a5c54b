"""Issue, verify (through the cache), rotate and revoke API keys.

A key reads `fp_<prefix>_<secret>`: the 12-hex prefix is public and indexed; the 256-bit secret is
stored only as HMAC-SHA256(pepper, secret). The cache is keyed by the public prefix, so no secret
ever appears in a cache key, and revocation can delete the entry without knowing the secret.

A key has scopes (what it may do) and an optional expiry; both travel in the cached identity, and
the expiry is checked on every verification, cached or not. Rotation gives the key a new prefix
and secret; the old pair may keep working for a grace period, as a second cached identity whose
expiry is the end of the grace.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from apikeys.models import MAX_ROTATION_GRACE_SECONDS, SCOPES, APIKey
from faceportal.errors import Conflict, InvalidInput, NotFound
from organizations.models import Organization

logger = logging.getLogger(__name__)

KEY_SCHEME = "fp"
PREFIX_BYTES = 6  # 12 hex characters
SECRET_BYTES = 32  # 256 bits
LAST_USED_RESOLUTION = timedelta(minutes=1)
# Cached for a prefix that names no usable key, so guesses of unknown prefixes cost no query.
ABSENT = "absent"
# Compared against when there is no key, so an unknown prefix costs the same as a wrong secret.
_DUMMY_HASH = "0" * 64


@dataclass(frozen=True)
class AuthenticatedKey:
    """What a verified key tells the rest of the request; cached as a plain dict."""

    key_id: int
    prefix: str
    secret_hash: str
    organization_id: int
    organization_slug: str
    user: str
    name: str
    scopes: tuple[str, ...] = SCOPES
    expires_at: float | None = None  # a POSIX timestamp: the cached form stays plain data

    def has_scope(self, scope: str) -> bool:
        return scope in self.scopes

    def is_expired(self) -> bool:
        return self.expires_at is not None and timezone.now().timestamp() >= self.expires_at


@dataclass(frozen=True)
class IssuedKey:
    api_key: APIKey
    plaintext: str


def _hash_secret(secret: str) -> str:
    return hmac.new(settings.API_KEY_PEPPER.encode(), secret.encode(), hashlib.sha256).hexdigest()


def _cache_key(prefix: str) -> str:
    return f"apikey:v2:{prefix}"


# What an issued key can hold: a lowercase hex prefix, a URL-safe base64 secret. Anything else (a
# NUL, which PostgreSQL refuses in text, other control or non-ASCII characters) is refused as a
# bad key before any lookup.
_PREFIX_RE = re.compile(rf"[0-9a-f]{{{PREFIX_BYTES * 2}}}")
_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{1,128}")


def _parse(raw_key: str) -> tuple[str, str] | None:
    parts = raw_key.split("_", 2)
    if len(parts) != 3 or parts[0] != KEY_SCHEME:
        return None
    if not _PREFIX_RE.fullmatch(parts[1]) or not _SECRET_RE.fullmatch(parts[2]):
        return None
    return parts[1], parts[2]


def _require_text(value: object, field: str, max_length: int = 150) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(f"'{field}' must be a non-empty string.", details={"field": field})
    if len(value) > max_length:
        raise InvalidInput(f"'{field}' must be at most {max_length} characters.", details={"field": field})
    return value.strip()


def _clean_scopes(scopes: Iterable[str] | None) -> list[str]:
    if scopes is None:
        return list(SCOPES)
    chosen = set(scopes)
    unknown = sorted(chosen - set(SCOPES))
    if unknown or not chosen:
        raise InvalidInput(
            f"'scopes' must be a non-empty list of {', '.join(SCOPES)}.",
            details={"field": "scopes", "unknown": unknown},
        )
    return [scope for scope in SCOPES if scope in chosen]  # one order everywhere


def _clean_expiry(expires_at: datetime | None) -> datetime | None:
    if expires_at is not None and expires_at <= timezone.now():
        raise InvalidInput("'expires_at' must be in the future.", details={"field": "expires_at"})
    return expires_at


def api_key_issue(
    *,
    organization: Organization,
    user: str,
    name: str,
    scopes: Iterable[str] | None = None,
    expires_at: datetime | None = None,
) -> IssuedKey:
    """Create a key (every scope unless `scopes` says otherwise); the plaintext is returned here
    once and never stored."""
    user = _require_text(user, "user")
    name = _require_text(name, "api_key_name")
    scopes = _clean_scopes(scopes)
    expires_at = _clean_expiry(expires_at)
    prefix = secrets.token_hex(PREFIX_BYTES)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    try:
        with transaction.atomic():
            api_key = APIKey.objects.create(
                organization=organization,
                user=user,
                name=name,
                prefix=prefix,
                secret_hash=_hash_secret(secret),
                scopes=scopes,
                expires_at=expires_at,
            )
    except IntegrityError as exc:
        raise Conflict(
            f"An active key named '{name}' already exists in '{organization.slug}'.", code="api_key_exists"
        ) from exc
    # A guess may have cached this (random, so practically never seen) prefix as absent.
    transaction.on_commit(lambda: _forget(prefix))
    logger.info("api key issued", extra={"organization": organization.slug, "key_prefix": prefix})
    return IssuedKey(api_key=api_key, plaintext=f"{KEY_SCHEME}_{prefix}_{secret}")


def _identity(api_key: APIKey, *, previous: bool = False) -> AuthenticatedKey:
    """The cached identity of `api_key`'s current secret, or of the one its rotation replaced
    (which ends with the grace, or with the key's own expiry if sooner)."""
    ends = [moment for moment in (api_key.expires_at, api_key.previous_valid_until if previous else None) if moment]
    return AuthenticatedKey(
        key_id=api_key.pk,
        prefix=api_key.previous_prefix if previous else api_key.prefix,
        secret_hash=api_key.previous_secret_hash if previous else api_key.secret_hash,
        organization_id=api_key.organization_id,
        organization_slug=api_key.organization.slug,
        user=api_key.user,
        name=api_key.name,
        scopes=tuple(api_key.scopes),
        expires_at=min(ends).timestamp() if ends else None,
    )


def _load_from_database(prefix: str) -> AuthenticatedKey | None:
    now = timezone.now()
    api_key = (
        APIKey.objects.select_related("organization")
        .filter(Q(prefix=prefix) | Q(previous_prefix=prefix, previous_valid_until__gt=now))
        .filter(revoked_at__isnull=True, organization__is_active=True)
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        .first()
    )
    if api_key is None:
        return None
    if api_key.last_used_at is None or now - api_key.last_used_at > LAST_USED_RESOLUTION:
        # Coarse on purpose: one write a minute per key, not one per request.
        APIKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
    return _identity(api_key, previous=api_key.prefix != prefix)


def api_key_verify(*, raw_key: str) -> AuthenticatedKey | None:
    """Return the key's identity when `raw_key` is valid, active and of an active organisation.

    The cache (Redis in production) answers most requests; a cache outage falls back to the
    database because the cache backend ignores connection errors and reports a miss. A prefix with
    no usable key is cached as absent for `API_KEY_NEGATIVE_CACHE_TTL` seconds, and every path
    ends in the same keyed-hash comparison, so an unknown prefix and a known one with a wrong
    secret take the same steps (one cache read, one HMAC, one compare).
    """
    parsed = _parse(raw_key)
    if parsed is None:
        return None
    prefix, secret = parsed
    presented_hash = _hash_secret(secret)
    cached = cache.get(_cache_key(prefix))
    if cached == ABSENT:
        identity = None
    elif cached is not None:
        identity = AuthenticatedKey(**{**cached, "scopes": tuple(cached["scopes"])})
    else:
        identity = _load_from_database(prefix)
        # `add`, never `set`: a revocation that committed after this read left a tombstone (the
        # entry `_bury` writes), which a stale identity must not overwrite.
        if identity is None:
            cache.add(_cache_key(prefix), ABSENT, timeout=settings.API_KEY_NEGATIVE_CACHE_TTL)
        else:
            cache.add(_cache_key(prefix), asdict(identity), timeout=settings.API_KEY_CACHE_TTL)
    expected = identity.secret_hash if identity is not None else _DUMMY_HASH
    if not hmac.compare_digest(expected, presented_hash) or identity is None:
        return None
    # Checked on every call, cached or not: an expired key (or the end of a rotation's grace) is
    # refused at that second, not when its cache entry lapses.
    if identity.is_expired():
        return None
    return identity


def _forget(prefix: str) -> None:
    try:
        cache.delete(_cache_key(prefix))
    except Exception:  # the cache must never make issuing fail; the negative TTL bounds staleness
        logger.warning("could not evict key from cache", extra={"key_prefix": prefix})


def _bury(prefix: str) -> None:
    """After a revocation commits: a tombstone (cached as absent) for as long as any entry lives.

    Deleting the entry is not enough: a request that read the key's row just before the commit
    (its last-used update waiting on the revoker's row lock, say) would cache the key again after
    the delete and keep it working for the whole TTL. Identities are cached with `add`, which a
    tombstone blocks.
    """
    timeout = max(settings.API_KEY_CACHE_TTL, settings.API_KEY_NEGATIVE_CACHE_TTL)
    try:
        cache.set(_cache_key(prefix), ABSENT, timeout=timeout)
    except Exception:  # the cache must never make revocation fail; the TTL bounds staleness
        logger.warning("could not evict revoked key from cache", extra={"key_prefix": prefix})


def api_key_revoke(*, api_key: APIKey) -> APIKey:
    if api_key.revoked_at is None:
        api_key.revoked_at = timezone.now()
        api_key.save(update_fields=["revoked_at"])
    # Buried after the commit so no request can re-cache the key from a not-yet-committed row.
    prefixes = [prefix for prefix in (api_key.prefix, api_key.previous_prefix) if prefix]
    transaction.on_commit(lambda: [_bury(prefix) for prefix in prefixes])
    logger.info("api key revoked", extra={"organization": api_key.organization.slug, "key_prefix": api_key.prefix})
    return api_key


def api_key_revoke_by_name(*, organization: Organization, user: str, name: str) -> APIKey:
    user = _require_text(user, "user")
    name = _require_text(name, "api_key_name")
    api_key = APIKey.objects.filter(
        organization=organization, user=user, name=name, revoked_at__isnull=True
    ).first()
    if api_key is None:
        raise NotFound(f"No active key '{name}' for user '{user}' in '{organization.slug}'.", code="api_key_not_found")
    return api_key_revoke(api_key=api_key)


def api_key_delete(*, api_key: APIKey) -> None:
    """Delete a key's row (the admin's delete); it stops working at once, like a revoked one."""
    prefix, organization_slug = api_key.prefix, api_key.organization.slug
    prefixes = [one for one in (api_key.prefix, api_key.previous_prefix) if one]
    with transaction.atomic():
        api_key.delete()
        transaction.on_commit(lambda: [_bury(one) for one in prefixes], robust=True)
    logger.info("api key deleted", extra={"organization": organization_slug, "key_prefix": prefix})


def api_key_cache_forget_organization(*, organization: Organization) -> None:
    """Bury every key of `organization` in the cache once the caller's transaction commits."""
    rows = APIKey.objects.filter(organization=organization).values_list("prefix", "previous_prefix")
    prefixes = [prefix for row in rows for prefix in row if prefix]
    transaction.on_commit(lambda: [_bury(prefix) for prefix in prefixes], robust=True)


def _keep_grace_identity(identity: AuthenticatedKey) -> None:
    """After a rotation with grace commits: the old prefix's entry is replaced (not added), so a
    request that read the row before the rotation cannot leave an identity without the grace's end."""
    timeout = max(1, min(settings.API_KEY_CACHE_TTL, int((identity.expires_at or 0) - timezone.now().timestamp()) + 1))
    try:
        cache.set(_cache_key(identity.prefix), asdict(identity), timeout=timeout)
    except Exception:  # the identity carries its own end, checked on every call; a miss reads the row
        logger.warning("could not cache rotated key", extra={"key_prefix": identity.prefix})


def api_key_rotate(*, api_key: APIKey, grace_seconds: int = 0) -> IssuedKey:
    """Give `api_key` a new prefix and secret (returned once). The old secret stops at once, or
    works on for `grace_seconds` (at most 24 h); a secret replaced by an earlier rotation stops now."""
    if isinstance(grace_seconds, bool) or not isinstance(grace_seconds, int) or not (
        0 <= grace_seconds <= MAX_ROTATION_GRACE_SECONDS
    ):
        raise InvalidInput(
            f"'grace_seconds' must be an integer from 0 to {MAX_ROTATION_GRACE_SECONDS}.",
            details={"field": "grace_seconds"},
        )
    prefix = secrets.token_hex(PREFIX_BYTES)
    secret = secrets.token_urlsafe(SECRET_BYTES)
    with transaction.atomic():
        locked = APIKey.objects.select_for_update().select_related("organization").filter(pk=api_key.pk).first()
        if locked is None:
            raise NotFound("No such API key.", code="api_key_not_found")
        if locked.revoked_at is not None:
            raise Conflict("A revoked key cannot be rotated; issue a new one.", code="api_key_revoked")
        if locked.is_expired:
            raise Conflict("An expired key cannot be rotated; issue a new one.", code="api_key_expired")
        now = timezone.now()
        retired = [one for one in (locked.previous_prefix, None if grace_seconds else locked.prefix) if one]
        if grace_seconds:
            locked.previous_prefix = locked.prefix
            locked.previous_secret_hash = locked.secret_hash
            locked.previous_valid_until = now + timedelta(seconds=grace_seconds)
        else:
            locked.previous_prefix, locked.previous_secret_hash, locked.previous_valid_until = None, "", None
        locked.prefix = prefix
        locked.secret_hash = _hash_secret(secret)
        locked.rotated_at = now
        locked.save(update_fields=["prefix", "secret_hash", "previous_prefix", "previous_secret_hash",
                                   "previous_valid_until", "rotated_at"])
        grace_identity = _identity(locked, previous=True) if grace_seconds else None

        def refresh_cache() -> None:
            for one in retired:
                _bury(one)
            _forget(prefix)
            if grace_identity is not None:
                _keep_grace_identity(grace_identity)

        transaction.on_commit(refresh_cache)
    logger.info("api key rotated", extra={"organization": locked.organization.slug, "key_prefix": prefix,
                                          "grace_seconds": grace_seconds})
    return IssuedKey(api_key=locked, plaintext=f"{KEY_SCHEME}_{prefix}_{secret}")


def api_key_cache_revive_organization(*, organization: Organization) -> None:
    """Once a reactivation commits, drop the tombstones its deactivation left: the keys (those not
    revoked or expired, as ever) are read from the now-active row on their next use."""
    rows = APIKey.objects.filter(organization=organization).values_list("prefix", "previous_prefix")
    prefixes = [prefix for row in rows for prefix in row if prefix]
    transaction.on_commit(lambda: [_forget(prefix) for prefix in prefixes], robust=True)
