"""Reads on people and faces, always scoped to one organisation."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
from django.core.cache import cache
from django.db.models import Count, QuerySet

from faceportal.errors import NotFound
from faces.decision import MATCH, Threshold, decide, effective_threshold
from faces.engine import get_engine
from faces.index import Hit, VectorRecord, get_index
from faces.index.base import cosine_to_similarity, vector_from_bytes
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


# Faces fetched per query before grouping by person, so one person's many faces cannot crowd
# the candidates list.
FACES_PER_CANDIDATE = 4


def decision_in_force(
    *, organization: Organization, requested_threshold: float | None = None, gallery_size: int | None = None
) -> Threshold:
    """What decides who gets a name, for this organisation and this request: the one place every
    surface (REST, the socket, registration's duplicate check, the try-it page, the overview) asks.

    The request's own threshold when it deliberately sets one (threshold_source "request"); else
    the organisation's false_match_rate turned into a threshold for `gallery_size` people (its
    gallery as it is now when not given; verify compares against one); else, for a model without
    calibration data, the engine's uncalibrated fallback.
    """
    engine = get_engine()
    if requested_threshold is None and gallery_size is None:
        gallery_size = gallery_size_of(organization=organization)
    return effective_threshold(
        model=engine.model_name,
        requested=requested_threshold,
        false_match_rate=organization.false_match_rate,
        gallery_size=gallery_size or 0,
        model_default=uncalibrated_threshold(),
    )


def uncalibrated_threshold() -> float:
    """The similarity that decides only where the model has no calibration data
    (FACEPORTAL_DEFAULT_THRESHOLD, else the model's own); never while a calibration exists."""
    return get_engine().default_threshold


@dataclass(frozen=True)
class VectorDecision:
    decision: str  # match | unknown | ambiguous
    best: PersonMatch | None  # the person named, when decision == match
    candidates: list[PersonMatch]  # nearest people, best first
    threshold: float  # similarity the best candidate had to reach


def decide_vectors(
    *, organization: Organization, vectors: np.ndarray, threshold: Threshold, max_results: int
) -> list[VectorDecision]:
    """Search the organisation's gallery for each vector and decide (faces/decision.py)."""
    # Candidates below the threshold still help a client tuning it, so the search has no floor;
    # the second person is always fetched, for the margin test.
    per_query = max(2, max_results)
    hits = get_index().search(organization_id=organization.pk, vectors=vectors, k=per_query * FACES_PER_CANDIDATE)
    matches = matches_for_hits(organization=organization, hits=hits, per_query=per_query)
    calibration = threshold.calibration
    if calibration is not None and calibration.person_score == "template":
        matches = _template_rescored(organization=organization, vectors=vectors, matches=matches)
    offsets = calibration.offsets(vectors) if calibration is not None else np.zeros(len(vectors))
    decided = []
    for candidates, offset in zip(matches, offsets, strict=True):
        outcome = decide(similarities=[c.similarity for c in candidates], threshold=threshold, offset=float(offset))
        decided.append(VectorDecision(
            decision=outcome.decision,
            best=candidates[outcome.best] if outcome.decision == MATCH else None,
            candidates=candidates[:max_results],
            threshold=outcome.threshold,
        ))
    return decided


def _template_rescored(
    *, organization: Organization, vectors: np.ndarray, matches: list[list[PersonMatch]]
) -> list[list[PersonMatch]]:
    """Score each candidate person by their template (the normalised mean of their faces), re-ranked.

    On LFW, with several photos per person, the template separates people from strangers better
    than the nearest single face (docs/OPEN_SET.md); with one photo the two are the same.
    """
    people = {match.person_id for row in matches for match in row}
    if not people:
        return matches
    sums: dict[int, np.ndarray] = {}
    for person_id, embedding in Face.objects.filter(organization=organization, person_id__in=people).values_list(
        "person_id", "embedding"
    ):
        vector = vector_from_bytes(embedding).astype(np.float64)
        sums[person_id] = sums[person_id] + vector if person_id in sums else vector
    templates = {person_id: total / (np.linalg.norm(total) or 1.0) for person_id, total in sums.items()}
    rescored = []
    for vector, row in zip(vectors, matches, strict=True):
        scored = [
            PersonMatch(m.person_id, m.name, float(cosine_to_similarity(templates[m.person_id] @ vector)), m.face_id,
                        m.external_id)
            for m in row if m.person_id in templates
        ]
        rescored.append(sorted(scored, key=lambda match: match.similarity, reverse=True))
    return rescored
