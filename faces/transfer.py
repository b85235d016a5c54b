"""Gallery export and import: one organisation's people and faces as a zip file (docs/EXPORT.md).

The file holds `manifest.json` (format version, model, detector, people with their external_id
and metadata, and each face's members) and, per face, `faces/<n>.jpg` (the stored crop) and
`faces/<n>.f32` (its embedding, float32 little-endian). An import reads every member in memory,
checks the whole file before writing anything, then writes person by person through the same
mirrored write as registration, so the vector store stays in step with the rows.
"""

from __future__ import annotations

import json
import logging
import re
import stat
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any

import numpy as np
from django.db import IntegrityError
from django.utils import timezone
from rest_framework import serializers

from faceportal.errors import FacePortalError, InvalidInput
from faceportal.serializers import validated
from faces.engine import get_engine
from faces.index import VectorRecord, get_index
from faces.index.base import cosine_to_similarity, vector_from_bytes, vector_to_bytes
from faces.models import Face, Person
from faces.selectors import gallery_size_forget
from faces.serializers import ExternalIdField, MetadataField, PersonNameField
from faces.services import SAME_IMAGE_SIMILARITY, mirrored_write
from faces.vector_maintenance import embed_crop
from organizations.models import Organization

logger = logging.getLogger(__name__)

FORMAT = "faceportal-gallery"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
MEMBER_NAME = re.compile(r"^faces/([0-9]{1,9})\.(jpg|f32)$")

# Bounds of an import, checked on the central directory and again while reading (sizes can lie).
MAX_MEMBERS = 40_001  # a manifest and two members per face: 20 000 faces
MAX_MANIFEST_BYTES = 16 * 1024 * 1024
MAX_CROP_BYTES = 512 * 1024
MAX_TOTAL_BYTES = 512 * 1024 * 1024  # every member, uncompressed
MAX_RATIO = 100  # uncompressed / compressed, for members over RATIO_FLOOR bytes
RATIO_FLOOR = 64 * 1024
MAX_DIMENSION = 4096
READ_CHUNK = 64 * 1024
EXPORT_BATCH = 200  # faces read from the database at a time while exporting


# --- export ---------------------------------------------------------------------------------


def gallery_manifest(*, organization: Organization) -> tuple[dict[str, Any], list[tuple[int, int]]]:
    """The manifest, and each face's (id, number): face n's members are faces/<n>.jpg and .f32."""
    engine = get_engine()
    faces: list[tuple[int, int]] = []
    faces_by_person: dict[int, list[dict[str, Any]]] = {}
    rows = (Face.objects.filter(organization=organization).order_by("person_id", "id")
            .values_list("id", "person_id", "model_name", "box", "detection_confidence"))
    for number, (face_id, person_id, model_name, box, confidence) in enumerate(rows.iterator(chunk_size=500)):
        faces_by_person.setdefault(person_id, []).append({
            "crop": f"faces/{number}.jpg", "embedding": f"faces/{number}.f32", "model_name": model_name,
            "box": box, "detection_confidence": confidence,
        })
        faces.append((face_id, number))
    people = [{"name": person.name, "external_id": person.external_id, "metadata": person.metadata or {},
               "faces": faces_by_person.get(person.pk, [])}
              for person in Person.objects.filter(organization=organization).order_by("id")]
    manifest = {
        "format": FORMAT, "version": FORMAT_VERSION, "organization": organization.slug,
        "exported_at": timezone.now().isoformat(), "model_name": engine.model_name,
        "detector": engine.detector_name, "dimension": engine.dimension, "people": people,
    }
    return manifest, faces


class _Pipe:
    """A write-only file that zipfile writes into and the response drains (zipfile handles a
    stream it cannot seek by writing data descriptors)."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        pass

    def drain(self) -> bytes:
        data, self.chunks = b"".join(self.chunks), []
        return data


def gallery_export_chunks(*, organization: Organization) -> Iterator[bytes]:
    """The export zip, a piece at a time: never the whole file in memory. The people and faces are
    read here, before the first piece, so a failure is an error answer rather than a cut-off file."""
    manifest, faces = gallery_manifest(organization=organization)
    return _zip_pieces(manifest, faces)


def _zip_pieces(manifest: dict[str, Any], faces: list[tuple[int, int]]) -> Iterator[bytes]:
    pipe = _Pipe()
    written: set[str] = set()
    with zipfile.ZipFile(pipe, mode="w", compression=zipfile.ZIP_DEFLATED) as archive:  # type: ignore[arg-type]
        for start in range(0, len(faces), EXPORT_BATCH):
            batch = dict(faces[start:start + EXPORT_BATCH])
            rows = Face.objects.filter(pk__in=batch).values_list("id", "crop", "embedding")
            for face_id, crop, embedding in sorted(rows, key=lambda row: batch[row[0]]):
                number = batch[face_id]
                # Crops are JPEG already: stored, not deflated again.
                archive.writestr(f"faces/{number}.jpg", bytes(crop or b""), compress_type=zipfile.ZIP_STORED)
                archive.writestr(f"faces/{number}.f32", bytes(embedding))
                written.add(f"faces/{number}.jpg")
                yield pipe.drain()
        # Last, so that it lists only the faces written: one deleted meanwhile is simply left out.
        for person in manifest["people"]:
            person["faces"] = [face for face in person["faces"] if face["crop"] in written]
        archive.writestr(MANIFEST, json.dumps(manifest, ensure_ascii=False, indent=1))
    yield pipe.drain()


def gallery_export(*, organization: Organization, out: IO[bytes]) -> int:
    """Write the export zip to `out`; returns the number of bytes written."""
    written = 0
    for chunk in gallery_export_chunks(organization=organization):
        out.write(chunk)
        written += len(chunk)
    return written


# --- import: reading and checking the file ----------------------------------------------------


class ImportFaceSerializer(serializers.Serializer):
    crop = serializers.RegexField(MEMBER_NAME, max_length=40)
    embedding = serializers.RegexField(MEMBER_NAME, max_length=40, required=False, allow_null=True)
    model_name = serializers.CharField(max_length=40, required=False)
    box = serializers.DictField(child=serializers.IntegerField(), required=False)
    detection_confidence = serializers.FloatField(required=False, min_value=0.0, max_value=1.0)


class ImportPersonSerializer(serializers.Serializer):
    name = PersonNameField()
    external_id = ExternalIdField(required=False, allow_null=True)
    metadata = MetadataField(required=False)
    faces = ImportFaceSerializer(many=True, max_length=10_000)


class ImportManifestSerializer(serializers.Serializer):
    format = serializers.ChoiceField(choices=[FORMAT])
    version = serializers.ChoiceField(choices=[FORMAT_VERSION])
    model_name = serializers.CharField(max_length=40)
    detector = serializers.CharField(max_length=40, required=False)
    dimension = serializers.IntegerField(min_value=1, max_value=MAX_DIMENSION)
    people = ImportPersonSerializer(many=True, max_length=20_000)


def _refuse(message: str, *, code: str = "invalid_archive", **details: Any) -> InvalidInput:
    return InvalidInput(message, details={"field": "file", **details}, code=code)


def _check_entry(info: zipfile.ZipInfo) -> None:
    """Refuse any name that could leave a folder, and anything that is not a plain file."""
    name = info.filename
    if (not name or "\\" in name or name.startswith("/") or ":" in name or "\x00" in name
            or ".." in name.split("/")):
        raise _refuse(f"Member name {name!r} is not allowed in a gallery file.", code="unsafe_archive_path",
                      member=name)
    mode = info.external_attr >> 16
    kind = stat.S_IFMT(mode)  # 0 when the archiver wrote no file type (plain writers often don't)
    if info.is_dir() or kind not in (0, stat.S_IFREG):  # symlinks, devices, folders
        raise _refuse(f"Member {name!r} is not a plain file.", code="unsafe_archive_path", member=name)
    if name != MANIFEST and not MEMBER_NAME.match(name):
        raise _refuse(f"Member {name!r} is not part of a gallery file.", code="unsafe_archive_path", member=name)
    if info.flag_bits & 0x1:
        raise _refuse(f"Member {name!r} is encrypted.", member=name)


def _cap_for(name: str, dimension_cap: int) -> int:
    if name == MANIFEST:
        return MAX_MANIFEST_BYTES
    return MAX_CROP_BYTES if name.endswith(".jpg") else dimension_cap


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int) -> bytes:
    """The member's bytes, never more than `cap` nor than the central directory said."""
    limit = min(cap, info.file_size)
    parts, total = [], 0
    with archive.open(info) as member:
        while True:
            chunk = member.read(READ_CHUNK)
            if not chunk:
                break
            total += len(chunk)
            if total > limit:
                raise _refuse(f"Member {info.filename!r} is larger than it says or than allowed.",
                              code="archive_too_large", member=info.filename)
            parts.append(chunk)
    return b"".join(parts)


def read_gallery_file(data: IO[bytes]) -> tuple[dict[str, Any], dict[str, bytes]]:
    """The validated manifest and every member's bytes, or a 400/413 before anything is written."""
    try:
        archive = zipfile.ZipFile(data)
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise _refuse("The file is not a zip archive.") from exc
    with archive:
        infos = archive.infolist()
        if len(infos) > MAX_MEMBERS:
            raise _refuse(f"A gallery file holds at most {MAX_MEMBERS} members ({len(infos)} given).",
                          code="archive_too_large")
        seen: set[str] = set()
        total = 0
        for info in infos:
            _check_entry(info)
            if info.filename in seen:
                raise _refuse(f"Member {info.filename!r} appears twice.", member=info.filename)
            seen.add(info.filename)
            total += info.file_size
            if info.file_size > _cap_for(info.filename, MAX_DIMENSION * 4):
                raise _refuse(f"Member {info.filename!r} is too large.", code="archive_too_large",
                              member=info.filename)
            if info.file_size > RATIO_FLOOR and info.file_size > MAX_RATIO * max(info.compress_size, 1):
                raise _refuse(f"Member {info.filename!r} is compressed beyond {MAX_RATIO}:1.",
                              code="archive_too_large", member=info.filename)
        if total > MAX_TOTAL_BYTES:
            raise _refuse("The archive unpacks to more than allowed.", code="archive_too_large")
        if MANIFEST not in seen:
            raise _refuse("The archive has no manifest.json.")
        by_name = {info.filename: info for info in infos}
        try:
            raw_manifest = _read_member(archive, by_name[MANIFEST], MAX_MANIFEST_BYTES)
            try:
                manifest_data = json.loads(raw_manifest)
            except (UnicodeDecodeError, ValueError) as exc:
                raise _refuse("manifest.json is not valid JSON.") from exc
            manifest = validated(ImportManifestSerializer, data=manifest_data)
            embedding_cap = manifest["dimension"] * 4
            members: dict[str, bytes] = {}
            for person in manifest["people"]:
                for face in person["faces"]:
                    for name in (face["crop"], face.get("embedding")):
                        if name is None or name in members:
                            continue
                        if name not in by_name:
                            raise _refuse(f"The manifest names {name!r}, which the archive lacks.", member=name)
                        members[name] = _read_member(archive, by_name[name], _cap_for(name, embedding_cap))
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, NotImplementedError) as exc:
            raise _refuse(f"The archive cannot be read: {exc}.") from exc
    return manifest, members


# --- import: writing ------------------------------------------------------------------------


@dataclass
class PersonImport:
    index: int
    name: str
    external_id: str | None
    status: str  # created, updated, failed
    person_id: int | None = None
    faces_added: int = 0
    faces_skipped: int = 0  # already stored for this person
    faces_unusable: int = 0  # crops that show no face to this engine (re-embedding only)
    code: str | None = None
    reason: str | None = None


@dataclass
class ImportResult:
    organization: str
    model_name: str
    reembedded: bool  # the file's model differs from ours: vectors come from the crops
    people: list[PersonImport] = field(default_factory=list)

    @property
    def faces_added(self) -> int:
        return sum(person.faces_added for person in self.people)


def _vectors_of(*, manifest: dict[str, Any], members: dict[str, bytes], reembed: bool,
                faces: list[dict[str, Any]]) -> list[np.ndarray | None]:
    vectors: list[np.ndarray | None] = []
    for face in faces:
        crop = members[face["crop"]]
        if not crop.startswith(b"\xff\xd8\xff"):
            raise _refuse(f"{face['crop']!r} is not a JPEG image.", member=face["crop"])
        if reembed or not face.get("embedding"):
            vectors.append(embed_crop(crop))
            continue
        raw = members[face["embedding"]]
        if len(raw) != manifest["dimension"] * 4:
            raise _refuse(f"{face['embedding']!r} is not a {manifest['dimension']}-value embedding.",
                          member=face["embedding"])
        vector = vector_from_bytes(raw).astype(np.float32)
        norm = float(np.linalg.norm(vector))
        if not np.isfinite(vector).all() or norm < 1e-6:
            raise _refuse(f"{face['embedding']!r} is not a usable embedding.", member=face["embedding"])
        vectors.append(vector / norm)
    return vectors


def _import_person(*, organization: Organization, index_number: int, person_data: dict[str, Any],
                   faces: list[tuple[dict[str, Any], bytes, np.ndarray]], unusable: int,
                   model_name: str) -> PersonImport:
    name, external_id = person_data["name"], person_data.get("external_id")
    outcome = PersonImport(index=index_number, name=name, external_id=external_id, status="created",
                           faces_unusable=unusable)
    index = get_index()
    undo: list[Callable[[], None]] = []
    with mirrored_write(undo):
        person = None
        if external_id is not None:
            person = Person.objects.select_for_update().filter(organization=organization,
                                                               external_id=external_id).first()
        if person is None:
            person = Person.objects.select_for_update().filter(organization=organization, name=name).first()
            if person is not None and person.external_id not in (None, external_id) and external_id is not None:
                raise _PersonRefused("person_exists", f"A person named '{name}' already has another external_id.")
        if person is None:
            person = Person.objects.create(organization=organization, name=name, external_id=external_id,
                                           metadata=person_data.get("metadata") or {})
        else:
            outcome.status = "updated"
            if person.name != name and Person.objects.filter(organization=organization, name=name).exists():
                raise _PersonRefused("person_exists", f"Another person is already named '{name}'.")
            person.name = name
            if external_id is not None:
                person.external_id = external_id
            if "metadata" in person_data:
                person.metadata = person_data["metadata"]
            person.save(update_fields=["name", "external_id", "metadata", "updated_at"])
        known = [vector_from_bytes(raw) for raw in
                 Face.objects.filter(person=person).values_list("embedding", flat=True)]
        records = []
        for face_data, crop, vector in faces:
            if any(cosine_to_similarity(float(vector @ other)) >= SAME_IMAGE_SIMILARITY for other in known):
                outcome.faces_skipped += 1
                continue
            known.append(vector)
            face = Face.objects.create(
                organization=organization, person=person, model_name=model_name,
                embedding=vector_to_bytes(vector), box=face_data.get("box") or {},
                detection_confidence=face_data.get("detection_confidence", 0.0), crop=crop,
            )
            records.append(VectorRecord(face_id=face.pk, person_id=person.pk, vector=vector))
        undo.append(lambda: index.remove(organization_id=organization.pk, face_ids=[r.face_id for r in records]))
        index.add(organization_id=organization.pk, records=records)
        outcome.person_id, outcome.faces_added = person.pk, len(records)
    return outcome


class _PersonRefused(Exception):
    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code, self.reason = code, reason


def gallery_import(*, organization: Organization, data: IO[bytes],
                   progress: Callable[[PersonImport], None] | None = None) -> ImportResult:
    """Read a gallery file into `organization`: people matched by external_id (then by name) are
    updated, others created; faces the person already has are skipped. The file is checked whole
    first (nothing is written when it is refused); each person is then written on their own, and
    one refused person does not stop the others."""
    manifest, members = read_gallery_file(data)
    engine = get_engine()
    reembed = manifest["model_name"] != engine.model_name or manifest["dimension"] != engine.dimension
    prepared = []
    for number, person_data in enumerate(manifest["people"]):
        vectors = _vectors_of(manifest=manifest, members=members, reembed=reembed, faces=person_data["faces"])
        usable = [(face, members[face["crop"]], vector)
                  for face, vector in zip(person_data["faces"], vectors, strict=True) if vector is not None]
        prepared.append((number, person_data, usable, len(vectors) - len(usable)))
    get_index().ensure_organization(organization_id=organization.pk, dimension=engine.dimension)
    result = ImportResult(organization=organization.slug, model_name=manifest["model_name"], reembedded=reembed)
    for number, person_data, usable, unusable in prepared:
        try:
            outcome = _import_person(organization=organization, index_number=number, person_data=person_data,
                                     faces=usable, unusable=unusable, model_name=engine.model_name)
        except _PersonRefused as exc:
            outcome = PersonImport(index=number, name=person_data["name"], external_id=person_data.get("external_id"),
                                   status="failed", code=exc.code, reason=exc.reason)
        except IntegrityError:  # another writer took the name or external_id meanwhile
            outcome = PersonImport(index=number, name=person_data["name"], external_id=person_data.get("external_id"),
                                   status="failed", code="person_exists",
                                   reason="The name or external_id is taken by another person.")
        except FacePortalError as exc:  # the vector store refused: this person is left as it was
            outcome = PersonImport(index=number, name=person_data["name"], external_id=person_data.get("external_id"),
                                   status="failed", code=exc.code, reason=exc.message)
        result.people.append(outcome)
        if progress is not None:
            progress(outcome)
    gallery_size_forget(organization_id=organization.pk)
    logger.info("gallery imported", extra={"organization": organization.slug, "faces": result.faces_added,
                                           "reembedded": reembed})
    return result
