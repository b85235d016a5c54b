"""Image input for REST and WebSocket alike: base64 / data URI, http(s) URL, server path, upload.

Every refusal raises `InvalidImage` naming the image's index and the reason, before any model
runs or anything is stored. One module per job: `decoding` (formats, structure, memory budget,
tenant slots), `base64_text`, `url_fetch` (SSRF-safe fetcher) and `server_paths` (the
per-organisation jail); `load` below picks one by what was sent.
"""

from __future__ import annotations

import re
from typing import Any

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile

from faces.images.base64_text import decode_base64
from faces.images.decoding import (
    ACCEPTED_FORMATS,
    ImageTooComplex,
    ImageTooLarge,
    LoadedImage,
    configure_process,
    decode,
    decode_budget,
    decoding_for,
    human_size,
    image_refused,
    image_too_big,
    request_pixel_budget,
    sniff_format,
    tenant_decode_slots,
)
from faces.images.server_paths import read_path
from faces.images.url_fetch import fetch_url, resolve_public

__all__ = [
    "ACCEPTED_FORMATS", "ImageTooComplex", "ImageTooLarge", "LoadedImage", "configure_process", "decode",
    "decode_budget", "decoding_for", "fetch_url", "human_size", "load", "read_path", "request_pixel_budget",
    "resolve_public", "sniff_format", "tenant_decode_slots",
]

_PATH_LIKE = re.compile(r"^[^\s]{1,1024}\.(jpe?g|png|webp|bmp|gif|tiff?)$", re.IGNORECASE)


def load(source: Any, *, index: int = 0, organization: str | None = None) -> LoadedImage:
    """Load one image given as an upload, a string (auto-detected) or {"base64"|"url"|"path": ...}.

    A server path is read from `organization`'s own folder (slug); without one, paths are refused.
    """
    if isinstance(source, UploadedFile):
        if source.size and source.size > settings.FACEPORTAL_MAX_IMAGE_BYTES:
            raise image_too_big(index)
        return decode(source.read(settings.FACEPORTAL_MAX_IMAGE_BYTES + 1), index=index, source_kind="upload")
    if isinstance(source, (bytes, bytearray)):
        return decode(bytes(source), index=index)
    if isinstance(source, dict) and len(source) == 1:
        kind, value = next(iter(source.items()))
        if isinstance(value, str) and kind in ("base64", "url", "path"):
            return _load_text(value, kind=kind, index=index, organization=organization)
    if not isinstance(source, str):
        raise image_refused(index, "must be a base64 string, data URI, http(s) URL, server path or file upload")
    return _load_text(source, kind=_guess_kind(source), index=index, organization=organization)


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


def _load_text(text: str, *, kind: str, index: int, organization: str | None) -> LoadedImage:
    text = text.strip()
    if not text:
        raise image_refused(index, "empty image")
    if kind == "url":
        return decode(fetch_url(text, index=index), index=index, source_kind="url")
    if kind == "path":
        return decode(read_path(text, index=index, organization=organization), index=index, source_kind="path")
    return decode(decode_base64(text, index=index), index=index, source_kind="base64")
