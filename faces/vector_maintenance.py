"""Keeping the vector store in step with the face rows: check, repair, rebuild, re-embed.

The rows are the source of truth (faces.services writes both); these are the mending tools that
`manage.py vectors` runs, for a store that missed a write, outlived an organisation, or holds
another model's vectors.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import numpy as np
from django.db import transaction

from faceportal.errors import InvalidImage
from faces.engine import get_engine
from faces.engine.pipeline import EngineResult
from faces.images import decode
from faces.index import VectorRecord, get_index
from faces.index.base import vector_to_bytes
from faces.models import Face
from faces.selectors import face_vector_records
from organizations.models import Organization

logger = logging.getLogger(__name__)


def vectors_rebuild(*, organization: Organization, progress: Callable[[int], None] | None = None) -> int:
    """Rewrite the vector store of one organisation from the face rows (the source of truth)."""
    faces = Face.objects.filter(organization=organization)

    def records() -> Iterator[VectorRecord]:
        for record in face_vector_records(faces=faces):
            if progress:
                progress(1)
            yield record

    first = faces.order_by("id").values_list("embedding", flat=True).first()
    index = get_index()
    if first is not None:
        index.ensure_organization(organization_id=organization.pk, dimension=len(bytes(first)) // 4)
    return index.rebuild(organization_id=organization.pk, records=records())


@dataclass
class VectorDiff:
    organization: str
    faces: int
    vectors: int
    missing_vectors: list[int]
    orphan_vectors: list[int]

    @property
    def consistent(self) -> bool:
        return not self.missing_vectors and not self.orphan_vectors


def vectors_check(*, organization: Organization) -> VectorDiff:
    face_ids = set(Face.objects.filter(organization=organization).values_list("id", flat=True))
    vector_ids = get_index().face_ids(organization_id=organization.pk)
    return VectorDiff(
        organization=organization.slug,
        faces=len(face_ids),
        vectors=len(vector_ids),
        missing_vectors=sorted(face_ids - vector_ids),
        orphan_vectors=sorted(vector_ids - face_ids),
    )


def vectors_repair(*, organization: Organization) -> VectorDiff:
    """Remove orphan vectors and add missing ones from the face rows; returns the diff it fixed."""
    diff = vectors_check(organization=organization)
    index = get_index()
    if diff.orphan_vectors:
        index.remove(organization_id=organization.pk, face_ids=diff.orphan_vectors)
    if diff.missing_vectors:
        records = list(face_vector_records(faces=Face.objects.filter(id__in=diff.missing_vectors)))
        index.ensure_organization(organization_id=organization.pk, dimension=len(records[0].vector))
        index.add(organization_id=organization.pk, records=records)
    return diff


def vectors_stray_organizations() -> list[int]:
    """Organisations whose vectors outlived their database row (the store was down at deletion)."""
    stored = get_index().stored_organization_ids()
    existing = set(Organization.objects.filter(pk__in=stored).values_list("pk", flat=True))
    return sorted(stored - existing)


def vectors_drop_stray() -> list[int]:
    stray = vectors_stray_organizations()
    for organization_id in stray:
        get_index().drop_organization(organization_id=organization_id)
    return stray


@dataclass
class ReembedResult:
    organization: str
    model_name: str
    reembedded: int
    unembeddable: list[int]  # faces whose stored crop shows no face to the current engine
    written: bool


def _engine_result_of_crop(crop: bytes) -> EngineResult | None:
    """The engine's look at the most prominent face of a stored crop (None: no usable image)."""
    if not crop:
        return None
    try:
        image = decode(crop, index=0, source_kind="crop")
    except InvalidImage:
        return None
    return get_engine().faces_in(image.pixels, most_prominent_only=True)


def embed_crop(crop: bytes) -> np.ndarray | None:
    result = _engine_result_of_crop(crop)
    return result.faces[0].embedding if result is not None and result.faces else None


def vectors_reembed(
    *, organization: Organization, drop_unembeddable: bool = False, progress: Callable[[int], None] | None = None
) -> ReembedResult:
    """Re-embed every face from its stored crop with the current engine; rewrite rows and vectors.

    All or nothing per organisation: when some crops no longer yield a face, nothing is written
    unless `drop_unembeddable`, which deletes those faces (they could never match a new-model query).
    """
    engine = get_engine()
    embeddings: dict[int, bytes] = {}
    unembeddable: list[int] = []
    rows = Face.objects.filter(organization=organization).order_by("id").values_list("id", "crop")
    for face_id, crop in rows.iterator(chunk_size=200):
        vector = embed_crop(bytes(crop or b""))
        if vector is None:
            unembeddable.append(face_id)
        else:
            embeddings[face_id] = vector_to_bytes(vector)
        if progress:
            progress(1)
    result = ReembedResult(
        organization=organization.slug, model_name=engine.model_name, reembedded=len(embeddings),
        unembeddable=unembeddable, written=False,
    )
    if unembeddable and not drop_unembeddable:
        return result
    index = get_index()
    index.ensure_organization(organization_id=organization.pk, dimension=engine.dimension)
    with transaction.atomic():
        Face.objects.filter(organization=organization, id__in=unembeddable).delete()
        faces = list(Face.objects.select_for_update().filter(organization=organization, id__in=embeddings).only("id"))
        for face in faces:
            face.embedding = embeddings[face.pk]
            face.model_name = engine.model_name
        Face.objects.bulk_update(faces, ["embedding", "model_name"], batch_size=500)
        # Inside the transaction: if the store fails, the rows keep their old embeddings.
        records = list(face_vector_records(faces=Face.objects.filter(organization=organization)))
        index.rebuild(organization_id=organization.pk, records=records)
    result.written = True
    logger.info("faces re-embedded", extra={"organization": organization.slug, "faces": len(faces)})
    return result


def second_embedding_of_crop(crop: bytes) -> np.ndarray | None:
    """The engine's second model's embedding of the face in a stored crop (None: no face in it)."""
    result = _engine_result_of_crop(crop)
    return result.second([0])[0] if result is not None and result.faces and result.second is not None else None


def second_vectors_fill(
    *, organization: Organization, face_ids: list[int] | None = None, progress: Callable[[int], None] | None = None
) -> int:
    """Compute the second model's embedding, from the stored crop, for the faces that lack one or
    hold another model's (registration stores it; faces imported, named from kept unknown faces or
    registered before the second model existed do not have it). Returns how many were written; a
    crop that shows no face to this engine is left empty (that face decides by the first model)."""
    engine = get_engine()
    model = engine.second_embedder.name if engine.second_embedder is not None else ""
    if not model:
        return 0
    faces = Face.objects.filter(organization=organization).exclude(
        second_model_name=model, second_embedding__isnull=False)
    if face_ids is not None:
        faces = faces.filter(pk__in=face_ids)
    written = 0
    for face_id, crop in faces.order_by("id").values_list("id", "crop").iterator(chunk_size=100):
        vector = second_embedding_of_crop(bytes(crop or b""))
        if progress:
            progress(1)
        if vector is None:
            continue
        Face.objects.filter(pk=face_id).update(second_embedding=vector_to_bytes(vector), second_model_name=model)
        written += 1
    return written
