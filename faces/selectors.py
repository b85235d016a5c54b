"""Reads on people and faces, always scoped to one organisation."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from django.core.cache import cache
from django.db.models import Count, QuerySet

from faceportal.errors import NotFound
from faces.index import Hit, VectorRecord
from faces.index.base import vector_from_bytes
from faces.models import Face, Person
from organizations.models import Organization


def person_list(
    *, organization: Organization, search: str | None = None, external_id: str | None = None
) -> QuerySet[Person]:
    queryset = Person.objects.filter(organization=organization).annotate(face_count=Count("faces"))
    if (search and "\x00" in search) or (external_id and "\x00" in external_id):
        return queryset.none()  # no name holds a NUL (refused on write), and PostgreSQL cannot take one
    if search:
        queryset = queryset.filter(name__icontains=search)
    if external_id is not None:
        queryset = queryset.filter(external_id=external_id)
    return queryset.order_by("name", "id")


def person_get(*, organization: Organization, person_id: int) -> Person:
    # The same answer for "no such id" and "someone else's id": nothing leaks across tenants.
    person = (
        Person.objects.filter(organization=organization, pk=person_id).annotate(face_count=Count("faces")).first()
    )
    if person is None:
        raise NotFound("Person not found.", code="person_not_found")
    return person


def face_get(*, organization: Organization, person_id: int, face_id: int) -> Face:
    face = Face.objects.filter(organization=organization, person_id=person_id, pk=face_id).first()
    if face is None:
        raise NotFound("Face not found.", code="face_not_found")
    return face


def face_vector_records(*, faces: QuerySet[Face]) -> Iterator[VectorRecord]:
    """The vectors of `faces` as the vector store holds them, in id order, read in chunks."""
    rows = faces.order_by("id").values_list("id", "person_id", "embedding")
    for face_id, person_id, embedding in rows.iterator(chunk_size=2000):
        yield VectorRecord(face_id=face_id, person_id=person_id, vector=vector_from_bytes(embedding))


@dataclass(frozen=True)
class PersonMatch:
    person_id: int
    name: str
    similarity: float
    face_id: int
    external_id: str | None = None


def matches_for_hits(*, organization: Organization, hits: list[list[Hit]], per_query: int) -> list[list[PersonMatch]]:
    """Turn face hits into the best match per person, best first, names from the database.

    Hits whose face row is gone (or belongs to another organisation) are dropped, so an orphan
    vector can never name anyone.
    """
    face_ids = {hit.face_id for row in hits for hit in row}
    rows = Face.objects.filter(organization=organization, id__in=face_ids).values_list(
        "id", "person_id", "person__name", "person__external_id"
    )
    owner = {face_id: (person_id, name, external_id) for face_id, person_id, name, external_id in rows}
    results = []
    for row in hits:
        best: dict[int, PersonMatch] = {}
        for hit in row:
            if hit.face_id not in owner:
                continue
            person_id, name, external_id = owner[hit.face_id]
            if person_id not in best or hit.similarity > best[person_id].similarity:
                best[person_id] = PersonMatch(person_id, name, hit.similarity, hit.face_id, external_id)
        ranked = sorted(best.values(), key=lambda match: match.similarity, reverse=True)
        results.append(ranked[:per_query])
    return results



GALLERY_SIZE_TTL = 30  # seconds; registration and deletion forget it at once


def _gallery_size_key(organization_id: int) -> str:
    return f"gallery-size:{organization_id}"


def gallery_size_of(*, organization: Organization) -> int:
    """People enrolled in the organisation: the N the match threshold is calibrated for."""
    key = _gallery_size_key(organization.pk)
    size = cache.get(key)
    if size is None:
        size = Person.objects.filter(organization=organization).count()
        cache.set(key, size, GALLERY_SIZE_TTL)
    return int(size)


def gallery_size_forget(*, organization_id: int) -> None:
    cache.delete(_gallery_size_key(organization_id))
