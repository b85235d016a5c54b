"""API-key authentication for WebSocket handshakes, the same check as the REST routes.

A browser cannot set headers on a WebSocket, so the key travels in the query string:
`?token=<key>&organization=<org>&user=<user>&api_key_name=<name>`. Daphne logs only the path of a
WebSocket request, never its query string, and nothing here logs the token.

Each refusal carries its own close code (application range 4000-4999) and a reason, so a client
can tell "fix your URL" from "your key is bad" from "wrong organisation".
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qs

from apikeys.models import SCOPE_RECOGNIZE
from apikeys.services import AuthenticatedKey, api_key_verify
from organizations.models import Organization

# The refusals of the key check itself; the socket's transport rules (caps, idle, flood) and their
# close codes live beside the consumer (recognition/connections.py).
CLOSE_BAD_REQUEST = 4400  # a required query parameter is missing or empty
CLOSE_UNAUTHORIZED = 4401  # the key is unknown, malformed, revoked, or its organisation is inactive
CLOSE_FORBIDDEN = 4403  # the key is valid but is not `organization`'s, or `user`/`api_key_name` differ
CLOSE_SCOPE_DENIED = 4433  # the key is valid here but lacks the `recognize` scope

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
        raise WebSocketAuthError(CLOSE_UNAUTHORIZED, "Invalid, expired, revoked or unknown API key.")
    if identity.organization_slug != credentials.organization:
        raise WebSocketAuthError(CLOSE_FORBIDDEN, "This API key may not access that organization.")
    if identity.user != credentials.user or identity.name != credentials.api_key_name:
        raise WebSocketAuthError(CLOSE_FORBIDDEN, "'user' and 'api_key_name' do not match the API key.")
    if not identity.has_scope(SCOPE_RECOGNIZE):
        raise WebSocketAuthError(
            CLOSE_SCOPE_DENIED, f"This API key lacks the '{SCOPE_RECOGNIZE}' scope the recognition socket needs."
        )
    return identity


def websocket_authenticate(*, credentials: HandshakeCredentials) -> tuple[AuthenticatedKey, Organization]:
    """The key's identity and its (active) organisation, which the connection is then bound to."""
    identity = websocket_key_verify(credentials=credentials)
    organization = Organization.objects.filter(pk=identity.organization_id, is_active=True).first()
    if organization is None:  # deactivated since the key was cached
        raise WebSocketAuthError(CLOSE_UNAUTHORIZED, "Invalid, expired, revoked or unknown API key.")
    return identity, organization


def websocket_key_still_valid(*, token: str, identity: AuthenticatedKey) -> bool:
    """Re-check a connected key (a cache hit almost always); revocation evicts the cache entry."""
    current = api_key_verify(raw_key=token)
    return current is not None and current.key_id == identity.key_id
