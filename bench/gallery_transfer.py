"""Gallery export and import: file size and time, with the embeddings kept and re-embedded from crops.

A scratch organisation is filled with the photo set (up to PHOTOS_EACH photos per person, real
registration), exported, then imported into two fresh organisations: once as it is (same model:
the embeddings are used) and once with the manifest's model renamed (every face re-embedded from
its crop). Printed: faces, file size, and each step's time.

Run: `.venv/bin/python bench/gallery_transfer.py` (needs DATABASE_URL and REDIS_URL like the
server; uses organisation slugs `bench-export*`, deleted first).
"""

from __future__ import annotations

import io
import json
import sys
import zipfile
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import log, people, setup_django, table, timed  # noqa: E402

PHOTOS_EACH = 3


def renamed_model(data: bytes) -> bytes:
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in source.namelist():
            content = source.read(name)
            if name == "manifest.json":
                manifest = json.loads(content)
                manifest["model_name"] = "AnotherModel"
                content = json.dumps(manifest).encode()
            archive.writestr(name, content)
    return out.getvalue()


def main() -> None:
    setup_django()
    from faceportal.errors import FacePortalError
    from faces.services import person_register
    from faces.transfer import gallery_export, gallery_import
    from organizations.models import Organization
    from organizations.services import organization_create, organization_delete

    for organization in Organization.objects.filter(slug__startswith="bench-export"):
        organization_delete(organization=organization)
    source = organization_create(slug="bench-export")
    log("registering the photo set")
    for name, photos in people().items():
        try:
            person_register(organization=source, name=name.replace("_", " "),
                            images=[photo.b64() for photo in photos[:PHOTOS_EACH]], allow_duplicate=True)
        except FacePortalError:
            pass  # a person none of whose photos passes the gates
    buffer = io.BytesIO()
    export_ms, size = timed(gallery_export, organization=source, out=buffer)
    data = buffer.getvalue()
    faces = source.faces.count()
    kept_ms, kept = timed(gallery_import, organization=organization_create(slug="bench-export-kept"),
                          data=io.BytesIO(data))
    log("re-embedding every face from its crop")
    other = renamed_model(data)
    reembed_ms, reembedded = timed(gallery_import, organization=organization_create(slug="bench-export-reembed"),
                                   data=io.BytesIO(other))
    rows = [
        ["export", faces, f"{size / 1024:.0f} KiB", f"{export_ms:.0f}", f"{export_ms / max(faces, 1):.2f}"],
        ["import, same model", kept.faces_added, "", f"{kept_ms:.0f}", f"{kept_ms / max(faces, 1):.2f}"],
        ["import, re-embedded", reembedded.faces_added, "", f"{reembed_ms:.0f}",
         f"{reembed_ms / max(faces, 1):.2f}"],
    ]
    table("Gallery export and import", ["step", "faces", "file", "ms", "ms per face"], rows)
    for organization in Organization.objects.filter(slug__startswith="bench-export"):
        organization_delete(organization=organization)


if __name__ == "__main__":
    main()
