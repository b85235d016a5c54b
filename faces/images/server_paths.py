"""Images read from server paths: only below the requesting organisation's own folder,
FACEPORTAL_IMAGE_ROOT/<slug>, resolved (symlinks too) before the check."""

from __future__ import annotations

import os
from pathlib import Path

from django.conf import settings

from faceportal.errors import InvalidImage
from faces.images.decoding import image_refused, image_too_big

# Linux limits: a path of 4096 bytes, a name of 255. Longer ones are refused before any system
# call, so they can never surface as an OSError (ENAMETOOLONG) carrying the client's path.
MAX_PATH_BYTES = 4096
MAX_NAME_BYTES = 255


def _path_unavailable(index: int) -> InvalidImage:
    # One answer for missing, outside the organisation's folder (another tenant's file, a symlink
    # out), unresolvable and unreadable: no refusal tells which files exist.
    return image_refused(index, "no readable image at that path in this organisation's image folder",
                 code="image_path_not_found")


def read_path(raw_path: str, *, index: int, organization: str | None) -> bytes:
    """The file at `raw_path` below FACEPORTAL_IMAGE_ROOT/<organization>, the organisation's own folder.

    Refusals that depend on the path's text alone (disabled, too long, '..') say so; every refusal
    that depends on the file system is the same one.
    """
    root_setting = settings.FACEPORTAL_IMAGE_ROOT
    if not root_setting or not organization:
        raise image_refused(index, "server paths are disabled on this server", code="image_path_forbidden")
    try:
        encoded = os.fsencode(raw_path)
    except UnicodeError:  # a lone surrogate outside the surrogateescape range
        raise image_refused(index, "path is not valid text", code="image_path_forbidden") from None
    if len(encoded) > MAX_PATH_BYTES or any(len(part) > MAX_NAME_BYTES for part in encoded.split(b"/")):
        raise image_refused(index, "path is too long", code="image_path_forbidden")
    candidate = Path(raw_path)
    if ".." in candidate.parts:
        raise image_refused(index, "path may not contain '..'", code="image_path_forbidden")
    if candidate.is_absolute():
        candidate = Path(*candidate.parts[1:])  # drop the root, whatever it is ('/' or '//')
    try:
        # The organisation's folder may itself be a symlink (the operator's choice); what is below
        # it must stay below it once resolved.
        root = (Path(root_setting) / organization).resolve()
        target = (root / candidate).resolve()
        if not target.is_relative_to(root) or not target.is_file():
            raise _path_unavailable(index)
        if target.stat().st_size > settings.FACEPORTAL_MAX_IMAGE_BYTES:
            raise image_too_big(index)
        return target.read_bytes()
    except (OSError, ValueError):  # a NUL byte, a symlink loop, unreadable, gone meanwhile: never logged
        raise _path_unavailable(index) from None
