"""Image input for REST and WebSocket alike: base64 / data URI, http(s) URL, server path, upload.

Every refusal raises `InvalidImage` naming the image's index and the reason, before any model
runs or anything is stored. Limits: bytes, pixels (checked from the header, before decoding),
images per request. URLs: public addresses only, checked after DNS resolution and on every
redirect, with the connection pinned to the checked address. Paths: only below
FACEPORTAL_IMAGE_ROOT, resolved (symlinks too) before the check.
"""

from __future__ import annotations

import base64
import binascii
import io
import ipaddress
import re
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

import numpy as np
from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from PIL import Image, ImageOps, UnidentifiedImageError

from faceportal.errors import InvalidImage, InvalidInput, PayloadTooLarge

MAX_REDIRECTS = 3
_DATA_URI = re.compile(r"^data:image/[a-z0-9.+-]+(;[a-z0-9=.+-]+)*;base64,", re.IGNORECASE)
_PATH_LIKE = re.compile(r"^[^\s]{1,1024}\.(jpe?g|png|webp|bmp|gif|tiff?)$", re.IGNORECASE)
_BASE64_CHARS = re.compile(r"^[A-Za-z0-9+/_=\s-]+$")

# Pillow's own bomb guard, aligned with ours (ours is checked first and gives the nicer error).
Image.MAX_IMAGE_PIXELS = None


@dataclass(frozen=True)
class LoadedImage:
    index: int
    pixels: np.ndarray  # BGR uint8, EXIF orientation applied
    source_kind: str
    byte_size: int


class ImageTooLarge(InvalidImage):
    """Over the size or pixel limit: 413, like a body over its limit, with the same error shape."""

    status_code = 413


def human_size(size: int) -> str:
    """10485760 -> "10 MB" (binary units, written as people read them)."""
    for unit, scale in (("GB", 1 << 30), ("MB", 1 << 20), ("KB", 1 << 10)):
        if size >= scale:
            value = size / scale
            return f"{value:.0f} {unit}" if value == int(value) else f"{value:.1f} {unit}"
    return f"{size} bytes"


def _too_big(index: int) -> InvalidImage:
    limit = settings.FACEPORTAL_MAX_IMAGE_BYTES
    return _fail(index, f"larger than the {human_size(limit)} limit", code="image_too_large")


def _fail(index: int, reason: str, *, code: str = "invalid_image") -> InvalidImage:
    error_class = ImageTooLarge if code == "image_too_large" else InvalidImage
    return error_class(f"Image {index}: {reason}", details={"image_index": index, "reason": reason}, code=code)


def check_count(images: list[Any]) -> None:
    if not isinstance(images, list):
        raise InvalidInput("'images' must be a list.", details={"field": "images"})
    if not images:
        raise InvalidInput("'images' must contain at least one image.", details={"field": "images"})
    limit = settings.FACEPORTAL_MAX_IMAGES_PER_REQUEST
    if len(images) > limit:
        raise InvalidInput(f"At most {limit} images per request.", details={"field": "images", "limit": limit})


def decode(data: bytes, *, index: int, source_kind: str = "bytes") -> LoadedImage:
    if len(data) > settings.FACEPORTAL_MAX_IMAGE_BYTES:
        raise _too_big(index)
    if not data:
        raise _fail(index, "empty image")
    try:
        image = Image.open(io.BytesIO(data))
    except (UnidentifiedImageError, OSError, ValueError):
        raise _fail(index, "not a supported image (JPEG, PNG, WebP, BMP, GIF, TIFF)") from None
    width, height = image.size
    if width <= 0 or height <= 0:
        raise _fail(index, "image has no pixels")
    if width * height > settings.FACEPORTAL_MAX_IMAGE_PIXELS:
        raise _fail(
            index,
            f"{width}x{height} exceeds the limit of {settings.FACEPORTAL_MAX_IMAGE_PIXELS} pixels",
            code="image_too_large",
        )
    try:
        image.load()
        image = ImageOps.exif_transpose(image)
        rgb = np.asarray(image.convert("RGB"))
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError):
        raise _fail(index, "image data is corrupt or truncated") from None
    return LoadedImage(index=index, pixels=np.ascontiguousarray(rgb[:, :, ::-1]), source_kind=source_kind,
                       byte_size=len(data))


def _b64decode(text: str, *, index: int) -> bytes:
    payload = _DATA_URI.sub("", text, count=1) if text[:5].lower() == "data:" else text
    if text[:5].lower() == "data:" and payload == text:
        raise _fail(index, "data URI must be 'data:image/<type>;base64,<data>'")
    # Reject before decoding what could never fit, so a huge string costs no memory twice.
    if len(payload) > settings.FACEPORTAL_MAX_IMAGE_BYTES * 4 // 3 + 16:
        raise _too_big(index)
    if not _BASE64_CHARS.match(payload):
        raise _fail(index, "not valid base64")
    compact = re.sub(r"\s+", "", payload)
    try:
        if "-" in compact or "_" in compact:
            return base64.urlsafe_b64decode(compact + "=" * (-len(compact) % 4))
        return base64.b64decode(compact + "=" * (-len(compact) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise _fail(index, "not valid base64") from None


def _is_public(address: str) -> bool:
    ip = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped:
        ip = ip.ipv4_mapped
    return ip.is_global and not ip.is_multicast


def resolve_public(host: str, port: int, *, index: int) -> str:
    """Resolve `host` and return an address to pin the connection to; every address must be public."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise _fail(index, f"cannot resolve host '{host}'", code="image_url_unreachable") from None
    addresses = [info[4][0] for info in infos]
    if not addresses or not all(_is_public(address) for address in addresses):
        raise _fail(index, "URL points to a private, loopback or link-local address", code="image_url_forbidden")
    return addresses[0]


def _fetch_once(url: str, *, index: int):
    import urllib3

    try:
        parts = urlsplit(url)
        explicit_port = parts.port  # raises on a port out of range or a broken IPv6 literal
    except ValueError:
        raise _fail(index, "malformed URL", code="image_url_forbidden") from None
    if parts.scheme not in ("http", "https"):
        raise _fail(index, "only http and https URLs are allowed", code="image_url_forbidden")
    if not parts.hostname:
        raise _fail(index, "URL has no host")
    if parts.username or parts.password:
        raise _fail(index, "URLs with credentials are not allowed", code="image_url_forbidden")
    port = explicit_port or (443 if parts.scheme == "https" else 80)
    address = resolve_public(parts.hostname, port, index=index)
    timeout = urllib3.Timeout(total=settings.FACEPORTAL_URL_FETCH_TIMEOUT)
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


def fetch_url(url: str, *, index: int) -> bytes:
    if not settings.FACEPORTAL_URL_FETCH_ENABLED:
        raise _fail(index, "image URLs are disabled on this server", code="image_url_forbidden")
    import urllib3

    limit = settings.FACEPORTAL_MAX_IMAGE_BYTES
    try:
        for _ in range(MAX_REDIRECTS + 1):
            response = _fetch_once(url, index=index)
            if response.status in (301, 302, 303, 307, 308) and response.headers.get("Location"):
                url = urljoin(url, response.headers["Location"])
                response.release_conn()
                continue
            if response.status != 200:
                raise _fail(index, f"URL answered HTTP {response.status}", code="image_url_unreachable")
            body = response.read(limit + 1, decode_content=True)
            if len(body) > limit:
                raise _too_big(index)
            return body
    except urllib3.exceptions.HTTPError:
        raise _fail(index, "URL could not be fetched", code="image_url_unreachable") from None
    raise _fail(index, "too many redirects", code="image_url_unreachable")


def read_path(raw_path: str, *, index: int) -> bytes:
    root_setting = settings.FACEPORTAL_IMAGE_ROOT
    if not root_setting:
        raise _fail(index, "server paths are disabled on this server", code="image_path_forbidden")
    root = Path(root_setting).resolve()
    candidate = Path(raw_path)
    if ".." in candidate.parts:
        raise _fail(index, "path may not contain '..'", code="image_path_forbidden")
    if candidate.is_absolute():
        candidate = Path(*candidate.parts[1:])  # drop the root, whatever it is ('/' or '//')
    try:
        target = (root / candidate).resolve()
    except (OSError, ValueError):  # a NUL byte, a symlink loop
        raise _fail(index, "path cannot be resolved", code="image_path_forbidden") from None
    if not target.is_relative_to(root):
        raise _fail(index, "path is outside the image root", code="image_path_forbidden")
    if not target.is_file():
        raise _fail(index, "no such file under the image root", code="image_path_not_found")
    if target.stat().st_size > settings.FACEPORTAL_MAX_IMAGE_BYTES:
        raise _too_big(index)
    return target.read_bytes()


def load(source: Any, *, index: int = 0) -> LoadedImage:
    """Load one image given as an upload, a string (auto-detected) or {"base64"|"url"|"path": ...}."""
    if isinstance(source, UploadedFile):
        if source.size and source.size > settings.FACEPORTAL_MAX_IMAGE_BYTES:
            raise _too_big(index)
        return decode(source.read(settings.FACEPORTAL_MAX_IMAGE_BYTES + 1), index=index, source_kind="upload")
    if isinstance(source, (bytes, bytearray)):
        return decode(bytes(source), index=index)
    if isinstance(source, dict) and len(source) == 1:
        kind, value = next(iter(source.items()))
        if isinstance(value, str) and kind in ("base64", "url", "path"):
            return _load_text(value, kind=kind, index=index)
    if not isinstance(source, str):
        raise _fail(index, "must be a base64 string, data URI, http(s) URL, server path or file upload")
    return _load_text(source, kind=_guess_kind(source), index=index)


def _guess_kind(text: str) -> str:
    head = text[:16].lower()
    if head.startswith(("http://", "https://")):
        return "url"
    if "://" in text[:32] or head.startswith("file:"):
        return "url"  # refused with a clear reason by the URL rules
    if head.startswith("data:"):
        return "base64"
    if _PATH_LIKE.match(text):
        return "path"  # base64 never contains '.', so a file name with an extension is a path
    return "base64"


def _load_text(text: str, *, kind: str, index: int) -> LoadedImage:
    text = text.strip()
    if not text:
        raise _fail(index, "empty image")
    if kind == "url":
        return decode(fetch_url(text, index=index), index=index, source_kind="url")
    if kind == "path":
        return decode(read_path(text, index=index), index=index, source_kind="path")
    return decode(_b64decode(text, index=index), index=index, source_kind="base64")


def load_all(sources: list[Any]) -> list[LoadedImage]:
    check_count(sources)
    total = 0
    loaded = []
    for index, source in enumerate(sources):
        image = load(source, index=index)
        total += image.byte_size
        if total > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
            raise PayloadTooLarge("Images together exceed the request size limit.")
        loaded.append(image)
    return loaded
