"""Images fetched from http(s) URLs, SSRF-safe: public addresses only, checked after DNS resolution
and on every redirect, with the connection pinned to the checked address, and the whole transfer
under one deadline."""

from __future__ import annotations

import ipaddress
import socket
import time
from urllib.parse import urljoin, urlsplit

from django.conf import settings

from faceportal.errors import InvalidImage
from faces.images.decoding import image_refused, image_too_big

MAX_REDIRECTS = 3


# IPv6 ranges whose low 32 bits are an IPv4 address that the packet may end up at.
_V4_IN_LOW_BITS = [ipaddress.ip_network(net) for net in (
    "::/96",  # IPv4-compatible (deprecated): [::127.0.0.1]
    "::ffff:0:0/96",  # IPv4-mapped
    "::ffff:0:0:0/96",  # IPv4-translated (SIIT): [::ffff:0:127.0.0.1]
    "64:ff9b::/96",  # NAT64, well-known prefix
    "64:ff9b:1::/48",  # NAT64, local use
)]


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    embedded = []
    if any(ip in network for network in _V4_IN_LOW_BITS):
        embedded.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    if ip.sixtofour is not None:  # 2002::/16
        embedded.append(ip.sixtofour)
    if ip.teredo is not None:  # 2001::/32: server and (de-obfuscated) client
        embedded.extend(ip.teredo)
    return embedded


# IPv6 unicast that is routed on the Internet is allocated from 2000::/3 only; Python's `is_global`
# alone still calls the deprecated site-local fec0::/10 (and other unallocated space) global.
_GLOBAL_UNICAST_V6 = ipaddress.ip_network("2000::/3")
# Newer than this Python's special-purpose registry: the documentation prefix of RFC 9637.
_NOT_GLOBAL_V6 = [ipaddress.ip_network("3fff::/20")]


def _globally_reachable(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if not ip.is_global or ip.is_multicast or ip.is_reserved or ip.is_unspecified:
        return False
    if ip.version == 6:
        return ip in _GLOBAL_UNICAST_V6 and not ip.is_site_local and not any(ip in net for net in _NOT_GLOBAL_V6)
    return True


def _is_public(address: str) -> bool:
    """Global unicast, and so is every IPv4 address the IPv6 form embeds; everything else is refused."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.is_multicast:
        return False
    embedded = _embedded_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else []
    # A translation form is as public as what it reaches (its own range says nothing of that).
    candidates = embedded or [ip]
    return all(_globally_reachable(candidate) for candidate in candidates)


def is_public_address(address: str) -> bool:
    """Whether a connection to `address` (an IP literal) stays on the public Internet; the check
    image URLs and webhook targets share."""
    return _is_public(address)


def resolve_public(host: str, port: int, *, index: int) -> str:
    """Resolve `host` and return an address to pin the connection to; every address must be public."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise image_refused(index, f"cannot resolve host '{host}'", code="image_url_unreachable") from None
    addresses = [info[4][0] for info in infos]
    if not addresses or not all(_is_public(address) for address in addresses):
        raise image_refused(index, "URL points to a private, loopback or link-local address",
                            code="image_url_forbidden")
    return addresses[0]


def _fetch_once(url: str, *, index: int, seconds: float):
    import urllib3

    try:
        parts = urlsplit(url)
        explicit_port = parts.port  # raises on a port out of range or a broken IPv6 literal
    except ValueError:
        raise image_refused(index, "malformed URL", code="image_url_forbidden") from None
    if parts.scheme not in ("http", "https"):
        raise image_refused(index, "only http and https URLs are allowed", code="image_url_forbidden")
    if not parts.hostname:
        raise image_refused(index, "URL has no host")
    if parts.username or parts.password:
        raise image_refused(index, "URLs with credentials are not allowed", code="image_url_forbidden")
    port = explicit_port or (443 if parts.scheme == "https" else 80)
    address = resolve_public(parts.hostname, port, index=index)
    timeout = urllib3.Timeout(total=seconds)
    if parts.scheme == "https":
        pool = urllib3.HTTPSConnectionPool(
            address, port, server_hostname=parts.hostname, assert_hostname=parts.hostname, timeout=timeout,
            retries=False,
        )
    else:
        pool = urllib3.HTTPConnectionPool(address, port, timeout=timeout, retries=False)
    path = parts.path or "/"
    if parts.query:
        path += "?" + parts.query
    host_header = parts.hostname if parts.port is None else f"{parts.hostname}:{parts.port}"
    return pool.urlopen(
        "GET", path, headers={"Host": host_header, "User-Agent": "FacePortal/1.0"}, redirect=False,
        preload_content=False,
    )


def _read_body(response, *, index: int, limit: int, deadline: float) -> bytes:
    """The body, within the byte limit and the whole-transfer deadline.

    urllib3's timeouts bound each socket read, so a server sending a byte a second never trips
    them. Here each read takes what one receive gives (`read1`), with the socket's timeout set to
    what is left of the deadline, which is checked between reads.
    """
    connection = getattr(response, "connection", None)
    sock = getattr(connection, "sock", None)
    body = bytearray()
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _deadline_passed(index)
        if sock is not None:
            sock.settimeout(remaining)
        chunk = response.read1(64 * 1024, decode_content=True)
        if not chunk:
            return bytes(body)
        body += chunk
        if len(body) > limit:
            raise image_too_big(index)


def _deadline_passed(index: int) -> InvalidImage:
    seconds = settings.FACEPORTAL_URL_FETCH_TIMEOUT
    return image_refused(index, f"URL did not deliver the image within {seconds:g} s", code="image_url_unreachable")


def fetch_url(url: str, *, index: int) -> bytes:
    """GET an image; FACEPORTAL_URL_FETCH_TIMEOUT bounds the whole transfer, redirects included."""
    if not settings.FACEPORTAL_URL_FETCH_ENABLED:
        raise image_refused(index, "image URLs are disabled on this server", code="image_url_forbidden")
    import urllib3

    limit = settings.FACEPORTAL_MAX_IMAGE_BYTES
    deadline = time.monotonic() + settings.FACEPORTAL_URL_FETCH_TIMEOUT
    try:
        for _ in range(MAX_REDIRECTS + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _deadline_passed(index)
            response = _fetch_once(url, index=index, seconds=remaining)
            try:
                if response.status in (301, 302, 303, 307, 308) and response.headers.get("Location"):
                    url = urljoin(url, response.headers["Location"])
                    continue
                if response.status != 200:
                    raise image_refused(index, f"URL answered HTTP {response.status}", code="image_url_unreachable")
                return _read_body(response, index=index, limit=limit, deadline=deadline)
            finally:
                response.release_conn()
    except urllib3.exceptions.TimeoutError:
        raise _deadline_passed(index) from None
    except (urllib3.exceptions.HTTPError, OSError):
        raise image_refused(index, "URL could not be fetched", code="image_url_unreachable") from None
    raise image_refused(index, "too many redirects", code="image_url_unreachable")
