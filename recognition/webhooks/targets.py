"""Where a webhook may post: http(s) URLs whose host resolves to public addresses only, unless
FACEPORTAL_WEBHOOK_ALLOW_PRIVATE. The same address rules as image URLs (faces/images/url_fetch.py),
checked when the webhook is created and again at each send, with the connection pinned to the
address checked (a host that re-resolves elsewhere between the check and the connect changes
nothing). Redirects are never followed: a 3xx is recorded as the attempt's answer."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.conf import settings

from faces.images.url_fetch import is_public_address


class TargetRefused(Exception):
    """The URL may not be posted to; the message says why (no secret, no body)."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str  # path and query, as sent in the request line
    host_header: str


def parse_target(url: str) -> Target:
    try:
        parts = urlsplit(url)
        explicit_port = parts.port  # raises on a port out of range or a broken IPv6 literal
    except ValueError:
        raise TargetRefused("malformed URL") from None
    if parts.scheme not in ("http", "https"):
        raise TargetRefused("only http and https URLs are allowed")
    if not parts.hostname:
        raise TargetRefused("URL has no host")
    if parts.username or parts.password:
        raise TargetRefused("URLs with credentials are not allowed")
    if parts.fragment:
        raise TargetRefused("URLs with a fragment are not allowed")
    port = explicit_port or (443 if parts.scheme == "https" else 80)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    host_header = parts.hostname if explicit_port is None else f"{parts.hostname}:{explicit_port}"
    if ":" in parts.hostname and explicit_port is None:
        host_header = f"[{parts.hostname}]"
    elif ":" in parts.hostname:
        host_header = f"[{parts.hostname}]:{explicit_port}"
    return Target(scheme=parts.scheme, host=parts.hostname, port=port, path=path, host_header=host_header)


def resolve_target(target: Target) -> str:
    """An address to connect to; every address the host resolves to must be allowed."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise TargetRefused(f"cannot resolve host '{target.host}'") from None
    addresses = [info[4][0] for info in infos]
    if not addresses:
        raise TargetRefused(f"cannot resolve host '{target.host}'")
    if not settings.FACEPORTAL_WEBHOOK_ALLOW_PRIVATE and not all(is_public_address(a) for a in addresses):
        raise TargetRefused("URL points to a private, loopback or link-local address")
    return addresses[0]


def post_pinned(target: Target, address: str, *, body: bytes, headers: dict[str, str], timeout: float) -> int:
    """POST `body` to `target` over a connection to `address`; the answer's status code (no redirect followed)."""
    import urllib3

    limit = urllib3.Timeout(total=timeout)
    if target.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(address, target.port, server_hostname=target.host,
                                           assert_hostname=target.host, timeout=limit, retries=False)
    else:
        pool = urllib3.HTTPConnectionPool(address, target.port, timeout=limit, retries=False)
    try:
        response = pool.urlopen("POST", target.path, body=body, redirect=False, preload_content=False,
                                headers={"Host": target.host_header, **headers})
        try:
            response.read(64 * 1024)  # a little of the answer, so the server sees it read; the rest is dropped
        finally:
            response.release_conn()
        return response.status
    finally:
        pool.close()
