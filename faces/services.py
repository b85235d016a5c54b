"""Writes on people and faces. Database rows are the source of truth; the vector store mirrors them.

Every write calls the vector store inside the database transaction: if the store fails, the
transaction rolls back (nothing half-written); if the commit fails after the store succeeded, the
store write is undone (compensation); after a successful commit nothing is ever undone. A crash
between the two can leave orphan vectors only, which searches ignore (hits are joined to face
rows) and `manage.py vectors repair` removes. The mending tools themselves (check, repair,
rebuild, re-embed) are in faces.vector_maintenance.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from faceportal import metrics
from faceportal.errors import Conflict, InvalidImage, InvalidInput, NotFound, PayloadTooLarge, Unprocessable
from faces import quality
from faces.decision import MATCH
from faces.engine import get_engine, map_in_engine_pool
from faces.engine.base import EmbeddedFace, FaceBox
from faces.engine.pipeline import EngineResult, prominence
from faces.images import LoadedImage, decoding_for, load, request_pixel_budget
from faces.index import VectorRecord, get_index
from faces.index.base import cosine_to_similarity, vector_from_bytes, vector_to_bytes
from faces.matching import decide_vectors, decision_in_force
from faces.models import Face, Person
from faces.selectors import face_vector_records, gallery_size_forget, person_get
from faces.signals import PersonSnapshot, person_created, person_deleted
from organizations.models import Organization

logger = logging.getLogger(__name__)


@dataclass
class ImageOutcome:
    index: int
    accepted: bool
    reason: str | None = None  # why it was not stored, in words
    face_id: int | None = None
    box: dict[str, int] | None = None  # the face used (or refused)
    detection_confidence: float | None = None
    faces_detected: int = 0
    # Why it was not used: no_face, invalid_image, image_too_large, face_too_small, ambiguous_faces, ...
    code: str | None = None
    quality: dict[str, float] | None = None  # the measures the gates looked at


# Two stored faces of one person this close are the same image (the engine is deterministic).
SAME_IMAGE_SIMILARITY = 0.9999
NOT_AMONG_BEST = "not_among_best"  # passed the gates; sharper frames of the same request were kept
GATE_CODES = {"no_face_at_box", "ambiguous_faces", quality.TOO_SMALL, quality.TOO_BLURRED, quality.NOT_FRONTAL}


@dataclass
class RegistrationResult:
    person: Person
    created: bool
    outcomes: list[ImageOutcome] = field(default_factory=list)
    timings_ms: dict[str, float] = field(default_factory=dict)

    @property
    def accepted_count(self) -> int:
        return sum(1 for outcome in self.outcomes if outcome.accepted)


@contextmanager
def mirrored_write(undo: list[Callable[[], None]]) -> Iterator[None]:
    """A DB transaction whose vector-store writes are undone if it does not commit.

    Only a failure before or at the commit undoes anything. An error raised after the commit, by
    an on_commit hook (the embedded store updating its in-memory copy), leaves the committed write
    standing: undoing it would strip committed faces of their vectors. It is logged; the embedded
    store reloads its copy from the table, and `manage.py vectors repair` mends any other store.
    """
    committed = False

    def mark_committed() -> None:
        nonlocal committed
        committed = True

    try:
        with transaction.atomic():
            # Registered before any store hook, so it runs first once the commit has succeeded.
            transaction.on_commit(mark_committed)
            yield
    except Exception:
        if committed:
            logger.exception("a step after the commit of a vector-store write failed; the write stands "
                             "(`manage.py vectors check` finds what is left to repair)")
            return
        for step in reversed(undo):
            try:
                step()
            except Exception:  # best effort: `manage.py vectors repair` fixes what is left
                logger.exception("vector store compensation failed")
        raise


def _overlap(a: FaceBox, b: FaceBox) -> float:
    """Intersection over union of two boxes."""
    w = max(0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    h = max(0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    inter = w * h
    return inter / float(a.area + b.area - inter) if inter else 0.0


def _refused(outcome: ImageOutcome, code: str, reason: str) -> ImageOutcome:
    outcome.accepted, outcome.code, outcome.reason = False, code, reason
    return outcome


def _choose_face(
    *, image: LoadedImage, result: EngineResult, box: FaceBox | None
) -> tuple[ImageOutcome, EmbeddedFace | None]:
    """The face an enrolment image stands for, or the reason there is none.

    The client's box wins; otherwise the most prominent face, unless a second one is about as
    prominent (then nobody can tell whom the photo is of). The chosen face must pass the gates.
    """
    outcome = ImageOutcome(index=image.index, accepted=True, faces_detected=len(result.faces))
    if not result.faces:
        return _refused(outcome, "no_face", "no face detected"), None
    if box is not None:
        # The client's box is in the image as sent; `pixels` may be a downscaled copy.
        overlaps = [_overlap(box, FaceBox(**image.box_to_original(face.detection.box.as_dict())))
                    for face in result.faces]
        best = int(np.argmax(overlaps))
        if overlaps[best] < 0.3:
            return _refused(outcome, "no_face_at_box", "no detected face matches the given box"), None
        chosen = result.faces[best]
    else:
        chosen = result.faces[0]
        if len(result.faces) > 1:
            width, height = result.image_size
            first, second = (prominence(face.detection, width, height) for face in result.faces[:2])
            if second >= settings.FACEPORTAL_ENROL_AMBIGUOUS_RATIO * first:
                outcome.box = image.box_to_original(chosen.detection.box.as_dict())
                return _refused(
                    outcome, "ambiguous_faces",
                    f"{len(result.faces)} faces, two of them about equally prominent: say which one with 'boxes'",
                ), None
    outcome.box = image.box_to_original(chosen.detection.box.as_dict())
    outcome.detection_confidence = round(chosen.detection.confidence, 4)
    verdict = quality.assess(image.pixels, chosen.detection)
    outcome.quality = verdict.measures
    if verdict.reason is not None:
        return _refused(outcome, verdict.reason, verdict.message), None
    return outcome, chosen


def _examine(image: LoadedImage, box: FaceBox | None) -> tuple[EngineResult, ImageOutcome, EmbeddedFace | None]:
    result = get_engine().faces_in(image.pixels, with_crops=True)
    outcome, chosen = _choose_face(image=image, result=result, box=box)
    if chosen is not None and result.second is not None:
        # The second model's vector is stored with the face, made from the photo itself (the
        # cascade reads it for the few candidates it fuses).
        chosen.extra["second"] = result.second([result.faces.index(chosen)])[0]
    return result, outcome, chosen


def _check_not_someone_else(
    *, organization: Organization, name: str, accepted: list[tuple[ImageOutcome, EmbeddedFace]]
) -> None:
    """409 when a face already matches a different person at the organisation's decision threshold."""
    vectors = np.stack([embedded.embedding for _, embedded in accepted])
    threshold = decision_in_force(organization=organization)
    decided = decide_vectors(organization=organization, vectors=vectors, threshold=threshold, max_results=2)
    for (outcome, _), decision in zip(accepted, decided, strict=True):
        if decision.decision == MATCH and decision.best is not None and decision.best.name != name:
            raise Conflict(
                f"Image {outcome.index}: this face is already registered as '{decision.best.name}'. "
                "Send 'allow_duplicate': true to register it under this name anyway.",
                details={"image_index": outcome.index, "person": {"id": decision.best.person_id,
                                                                  "name": decision.best.name},
                         "similarity": round(decision.best.similarity, 4), "threshold": round(decision.threshold, 4)},
                code="face_matches_existing_person",
            )


def _drop_same_images(
    *, organization: Organization, name: str, accepted: list[tuple[ImageOutcome, EmbeddedFace]]
) -> list[tuple[ImageOutcome, EmbeddedFace]]:
    """Keep one copy of an image: not again when the person has it, not twice in one request."""
    stored = list(Face.objects.filter(organization=organization, person__name=name).values_list("id", "embedding"))
    known = [(face_id, vector_from_bytes(vector)) for face_id, vector in stored]
    kept = []
    for outcome, embedded in accepted:
        same = next((face_id for face_id, vector in known
                     if cosine_to_similarity(float(vector @ embedded.embedding)) >= SAME_IMAGE_SIMILARITY), None)
        if same is not None:
            _refused(outcome, "duplicate_image", "the same image is already stored for this person")
            outcome.face_id = same if same > 0 else None
            continue
        known.append((-1 - len(kept), embedded.embedding))  # an earlier image of this same request
        kept.append((outcome, embedded))
    return kept


def _keep_best(
    *, accepted: list[tuple[ImageOutcome, EmbeddedFace]], keep: int
) -> list[tuple[ImageOutcome, EmbeddedFace]]:
    """The `keep` best faces by `quality.burst_rank`, in request order; the others are refused
    with their rank, so a client can show why a frame was not used."""
    ranked = sorted(accepted, key=lambda pair: quality.burst_rank(pair[0].quality or {}), reverse=True)
    for place, (outcome, _) in enumerate(ranked[keep:], start=keep + 1):
        _refused(outcome, NOT_AMONG_BEST,
                 f"usable, but {keep} sharper frame{'s were' if keep > 1 else ' was'} kept "
                 f"(this one ranked {place} of {len(ranked)})")
    kept = {id(outcome) for outcome, _ in ranked[:keep]}
    return [pair for pair in accepted if id(pair[0]) in kept]


def person_register(
    *, organization: Organization, name: str, images: list[Any], content_hashes: list[str] | None = None,
    boxes: list[FaceBox | None] | None = None, allow_duplicate: bool = False,
    external_id: str | None = None, metadata: dict[str, Any] | None = None, keep_best: int | None = None,
) -> RegistrationResult:
    """Register a person (or add faces to the existing one of that name) from several photos.

    Each image contributes one face: the one in `boxes[i]` when given, else the most prominent,
    refused when another is about as prominent. Faces that fail a quality gate, or that are an
    image this person already has, are reported per image, not stored. When a face already
    matches a different person at the organisation's threshold, nothing is stored (409) unless
    `allow_duplicate`. When no image yields a usable face, nothing is stored (422).
    `content_hashes` (one per image) are recorded on the faces so bulk enrolment can resume.
    Takes validated input (`faces.serializers.RegisterInputSerializer`): a clean name, and
    `boxes` with one entry per image when given. `external_id` and `metadata`, when given, are set
    on the person (409 when another person of the organisation has that external_id).
    `keep_best` (a burst of camera frames): of the faces that pass the gates and are new, only the
    `keep_best` sharpest are stored; the others are reported as `not_among_best`.
    """
    _check_external_id_free(organization=organization, external_id=external_id, name=name)
    with decoding_for(organization.pk):
        loaded, outcomes = _load_each(images, organization=organization)
    wanted_per_index = boxes or [None] * len(images)
    wanted = [wanted_per_index[image.index] for image in loaded]
    accepted: list[tuple[ImageOutcome, EmbeddedFace]] = []
    timings = {"detect": 0.0, "align": 0.0, "embed": 0.0}
    # Images are independent: examine them on all engine threads at once.
    started = time.perf_counter()
    examined = map_in_engine_pool(lambda pair: _examine(*pair), list(zip(loaded, wanted, strict=True)))
    # The images' stages overlap in time, so they are not added up: each stage reports its
    # slowest image, and `engine` the wall-clock time of them all (so no figure exceeds it).
    timings["engine"] = (time.perf_counter() - started) * 1000
    for result, outcome, chosen in examined:
        for stage, value in result.timings_ms.items():
            timings[stage] = max(timings.get(stage, 0.0), value)
        outcomes.append(outcome)
        if chosen is not None:
            accepted.append((outcome, chosen))
    outcomes.sort(key=lambda o: o.index)
    return _store_accepted(organization=organization, name=name, accepted=accepted, outcomes=outcomes,
                           timings=timings, content_hashes=content_hashes, allow_duplicate=allow_duplicate,
                           details=_details(external_id=external_id, metadata=metadata), keep_best=keep_best)


def _details(*, external_id: str | None, metadata: dict[str, Any] | None) -> dict[str, Any]:
    details: dict[str, Any] = {}
    if external_id is not None:
        details["external_id"] = external_id
    if metadata is not None:
        details["metadata"] = metadata
    return details


def _external_id_taken(external_id: str) -> Conflict:
    return Conflict(f"Another person already has external_id '{external_id}'.", code="external_id_exists",
                    details={"field": "external_id"})


def _check_external_id_free(*, organization: Organization, external_id: str | None, name: str,
                            person_id: int | None = None) -> None:
    if external_id is None:
        return
    others = Person.objects.filter(organization=organization, external_id=external_id)
    others = others.exclude(pk=person_id) if person_id is not None else others.exclude(name=name)
    if others.exists():
        raise _external_id_taken(external_id)


def person_register_embedded(
    *, organization: Organization, name: str, accepted: list[tuple[ImageOutcome, EmbeddedFace]],
    allow_duplicate: bool = False, on_stored: Callable[[list[ImageOutcome]], None] | None = None,
) -> RegistrationResult:
    """Register faces already detected, gated and embedded (kept unknown faces being named), by the
    same rules as `person_register` from there on: the person's own copies are skipped, a face
    matching someone else is a 409 unless `allow_duplicate`. `on_stored` runs inside the
    transaction that stores the faces, with every outcome, so what it writes commits with them."""
    outcomes = sorted((outcome for outcome, _ in accepted), key=lambda o: o.index)
    return _store_accepted(organization=organization, name=name, accepted=list(accepted), outcomes=outcomes,
                           timings={}, content_hashes=None, allow_duplicate=allow_duplicate, on_stored=on_stored)


def _store_accepted(
    *, organization: Organization, name: str, accepted: list[tuple[ImageOutcome, EmbeddedFace]],
    outcomes: list[ImageOutcome], timings: dict[str, float], content_hashes: list[str] | None,
    allow_duplicate: bool, on_stored: Callable[[list[ImageOutcome]], None] | None = None,
    details: dict[str, Any] | None = None, keep_best: int | None = None,
) -> RegistrationResult:
    details = details or {}
    if accepted:
        accepted = _drop_same_images(organization=organization, name=name, accepted=accepted)
        if keep_best is not None:
            accepted = _keep_best(accepted=accepted, keep=keep_best)
        if not accepted:  # nothing new: every usable image is already stored for this person
            person = person_get(organization=organization,
                                person_id=Person.objects.get(organization=organization, name=name).pk)
            if on_stored is not None:
                with transaction.atomic():
                    on_stored(outcomes)
            if details:
                person = person_update(person=person, **details)
            return RegistrationResult(person=person, created=False, outcomes=outcomes, timings_ms=timings)
    if not accepted:
        codes = {o.code for o in outcomes}
        gate_codes = codes & GATE_CODES
        raise Unprocessable(
            "No usable face was found in any image; nothing was stored.",
            details={"images": [{"index": o.index, "reason": o.reason, "code": o.code, "box": o.box}
                                for o in outcomes]},
            # One gate refused every image: say which; otherwise, as before, no usable face.
            code=gate_codes.pop() if len(gate_codes) == 1 and len(codes) == 1 else "no_face",
        )
    if not allow_duplicate:
        _check_not_someone_else(organization=organization, name=name, accepted=accepted)

    undo: list[Callable[[], None]] = []
    try:
        person, created, faces = _store_faces(
            organization=organization, name=name, accepted=accepted, undo=undo, content_hashes=content_hashes,
            details=details, on_stored=(lambda: on_stored(outcomes)) if on_stored is not None else None)
    except IntegrityError as exc:  # another person took the external_id meanwhile
        raise _external_id_taken(details.get("external_id", "")) from exc
    gallery_size_forget(organization_id=organization.pk)
    logger.info(
        "person registered",
        extra={"organization": organization.slug, "person_id": person.pk, "faces": len(faces)},
    )
    return RegistrationResult(person=person_get(organization=organization, person_id=person.pk), created=created,
                              outcomes=outcomes, timings_ms=timings)


def _second_fields(embedded: EmbeddedFace) -> dict[str, Any]:
    second = embedded.extra.get("second")
    engine = get_engine()
    if second is None or engine.second_embedder is None:
        return {}
    return {"second_embedding": vector_to_bytes(second), "second_model_name": engine.second_embedder.name}


def _store_faces(
    *, organization: Organization, name: str, accepted: list[tuple[ImageOutcome, EmbeddedFace]],
    undo: list[Callable[[], None]], content_hashes: list[str] | None, details: dict[str, Any],
    on_stored: Callable[[], None] | None,
) -> tuple[Person, bool, list]:
    engine = get_engine()
    index = get_index()
    index.ensure_organization(organization_id=organization.pk, dimension=engine.dimension)
    with mirrored_write(undo):
        person, created = Person.objects.select_for_update().get_or_create(
            organization=organization, name=name, defaults=details)
        if not created and details:
            for field_name, value in details.items():
                setattr(person, field_name, value)
            person.save(update_fields=[*details, "updated_at"])
        faces = []
        for outcome, embedded in accepted:
            face = Face.objects.create(
                organization=organization,
                person=person,
                model_name=engine.model_name,
                embedding=vector_to_bytes(embedded.embedding),
                box=outcome.box,
                detection_confidence=embedded.detection.confidence,
                crop=embedded.crop_jpeg,
                content_hash=content_hashes[outcome.index] if content_hashes else "",
                **_second_fields(embedded),
            )
            outcome.face_id = face.pk
            faces.append((face, embedded.embedding))
        if not created and not details:
            person.save(update_fields=["updated_at"])
        records = [VectorRecord(face_id=face.pk, person_id=person.pk, vector=vector) for face, vector in faces]
        # Registered before the call: a store that fails midway (Atlas) may have written part of it.
        undo.append(lambda: index.remove(organization_id=organization.pk, face_ids=[r.face_id for r in records]))
        index.add(organization_id=organization.pk, records=records)
        # Counted once the faces are committed: a rolled-back registration added none.
        transaction.on_commit(lambda: metrics.faces_registered(count=len(records)))
        if on_stored is not None:
            on_stored()
        if created:
            _send_after_commit(person_created, organization=organization, person=person)
    return person, created, faces


def _send_after_commit(signal, *, organization: Organization, person: Person) -> None:
    snapshot = PersonSnapshot(id=person.pk, name=person.name, external_id=person.external_id)
    transaction.on_commit(lambda: signal.send(sender=Person, organization=organization, person=snapshot))


def _load_each(sources: list[Any], *, organization: Organization) -> tuple[list[LoadedImage], list[ImageOutcome]]:
    """Load every image; one that cannot be read is reported like one without a face, and does not
    stop the others. The request's total bytes and decoded pixels still refuse the whole request,
    and when no image can be read at all the first image's own error is raised (a 4xx)."""
    loaded: list[LoadedImage] = []
    refused: list[tuple[ImageOutcome, InvalidImage]] = []
    total = 0
    with request_pixel_budget():
        for index, source in enumerate(sources):
            try:
                image = load(source, index=index, organization=organization.slug)
            except InvalidImage as exc:
                reason = exc.details.get("reason") if isinstance(exc.details, dict) else None
                outcome = ImageOutcome(index=index, accepted=False, reason=reason or exc.message, code=exc.code)
                refused.append((outcome, exc))
                continue
            total += image.byte_size
            if total > settings.DATA_UPLOAD_MAX_MEMORY_SIZE:
                raise PayloadTooLarge("Images together exceed the request size limit.")
            loaded.append(image)
    if not loaded:
        raise refused[0][1]
    return loaded, [outcome for outcome, _ in refused]


_UNSET: Any = object()


def person_update(
    *, person: Person, name: str = _UNSET, external_id: str | None = _UNSET, metadata: dict[str, Any] = _UNSET,
) -> Person:
    """Change what is given: the name, the external_id (None clears it), the metadata (replaced whole)."""
    changes = {field_name: value for field_name, value in
               (("name", name), ("external_id", external_id), ("metadata", metadata))
               if value is not _UNSET and getattr(person, field_name) != value}
    if not changes:
        return person
    try:
        with transaction.atomic():
            # Locked first: a delete that committed since the caller read the person leaves no row
            # to update, and that is a 404, not a failed save.
            if not Person.objects.select_for_update().filter(pk=person.pk).exists():
                raise NotFound("Person not found.", code="person_not_found")
            for field_name, value in changes.items():
                setattr(person, field_name, value)
            person.save(update_fields=[*changes, "updated_at"])
    except IntegrityError as exc:
        if "name" in changes and Person.objects.filter(organization_id=person.organization_id,
                                                       name=changes["name"]).exclude(pk=person.pk).exists():
            raise Conflict(f"A person named '{name}' already exists.", code="person_exists") from exc
        raise _external_id_taken(str(changes.get("external_id"))) from exc
    return person


def person_rename(*, person: Person, name: str) -> Person:
    return person_update(person=person, name=name)


def person_delete(*, person: Person) -> int:
    """Delete a person with all their faces, vectors and crops. Returns the number of faces removed."""
    index = get_index()
    organization_id = person.organization_id
    undo: list[Callable[[], None]] = []
    with mirrored_write(undo):
        # Lock the row before reading the faces: a registration adding a face to this person holds
        # the same lock until it commits, so its face is read (and its vector removed) here too,
        # never cascaded away behind the list's back.
        if not Person.objects.select_for_update().filter(pk=person.pk).exists():
            return 0  # deleted meanwhile
        records = list(face_vector_records(faces=Face.objects.filter(person_id=person.pk)))
        face_ids = [record.face_id for record in records]
        _send_after_commit(person_deleted, organization=person.organization, person=person)
        person.delete()
        # Inside the transaction: if the store is unreachable, the person stays, whole; if the
        # commit fails after the store removed the vectors, they are put back.
        undo.append(lambda: _restore_vectors(organization_id=organization_id, records=records))
        index.remove(organization_id=organization_id, face_ids=face_ids)
    gallery_size_forget(organization_id=organization_id)
    logger.info("person deleted", extra={"organization_id": organization_id, "faces": len(face_ids)})
    return len(face_ids)


def face_delete(*, face: Face) -> None:
    index = get_index()
    face_id, organization_id = face.pk, face.organization_id
    records = [VectorRecord(face_id=face_id, person_id=face.person_id, vector=face.vector)]
    undo: list[Callable[[], None]] = []
    with mirrored_write(undo):
        face.delete()
        undo.append(lambda: _restore_vectors(organization_id=organization_id, records=records))
        index.remove(organization_id=organization_id, face_ids=[face_id])


def _restore_vectors(*, organization_id: int, records: list[VectorRecord]) -> None:
    """Put back the vectors a failed deletion removed (a transactional store already has them)."""
    index = get_index()
    present = index.face_ids(organization_id=organization_id)
    missing = [record for record in records if record.face_id not in present]
    if missing:
        index.add(organization_id=organization_id, records=missing)


def _move_vectors(*, organization_id: int, records: list[VectorRecord], to_person_id: int,
                  undo: list[Callable[[], None]]) -> None:
    """Inside a mirrored write: the vectors of `records` now belong to `to_person_id`."""
    if not records:
        return
    index = get_index()
    moved = [VectorRecord(face_id=r.face_id, person_id=to_person_id, vector=r.vector) for r in records]
    face_ids = [r.face_id for r in records]

    def put_back() -> None:
        index.remove(organization_id=organization_id, face_ids=face_ids)
        index.add(organization_id=organization_id, records=records)

    undo.append(put_back)
    index.remove(organization_id=organization_id, face_ids=face_ids)
    index.add(organization_id=organization_id, records=moved)


def _lock_people(*people: Person) -> None:
    # In id order, so two merges of the same pair in opposite directions cannot deadlock.
    ids = sorted(person.pk for person in people)
    if len(list(Person.objects.select_for_update().filter(pk__in=ids).order_by("pk").values_list("pk"))) != len(ids):
        raise NotFound("Person not found.", code="person_not_found")  # deleted meanwhile


def person_merge(*, person: Person, other: Person) -> Person:
    """All of `other`'s faces become `person`'s and `other` is deleted, vectors moved in the same
    mirrored write. `person` keeps its name and external_id (taking `other`'s when it has none);
    metadata is combined, `person`'s keys winning."""
    if other.pk == person.pk:
        raise InvalidInput("A person cannot be merged into themselves.", details={"field": "from"})
    organization_id = person.organization_id
    undo: list[Callable[[], None]] = []
    with mirrored_write(undo):
        _lock_people(person, other)
        records = list(face_vector_records(faces=Face.objects.filter(person_id=other.pk)))
        Face.objects.filter(person_id=other.pk).update(person_id=person.pk)
        external_id = person.external_id or other.external_id
        metadata = {**(other.metadata or {}), **(person.metadata or {})}
        _send_after_commit(person_deleted, organization=person.organization, person=other)  # merged away
        other.delete()
        person.external_id, person.metadata = external_id, metadata
        person.save(update_fields=["external_id", "metadata", "updated_at"])
        _move_vectors(organization_id=organization_id, records=records, to_person_id=person.pk, undo=undo)
    gallery_size_forget(organization_id=organization_id)
    logger.info("people merged", extra={"organization_id": organization_id, "person_id": person.pk,
                                        "faces": len(records)})
    return person_get(organization=person.organization, person_id=person.pk)


def face_move(*, face: Face, to: Person) -> Face:
    """The face becomes `to`'s, its vector with it (same mirrored write)."""
    if to.pk == face.person_id:
        raise InvalidInput("The face already belongs to that person.", details={"field": "to"})
    organization_id = face.organization_id
    undo: list[Callable[[], None]] = []
    with mirrored_write(undo):
        _lock_people(to, Person(pk=face.person_id))
        records = [VectorRecord(face_id=face.pk, person_id=face.person_id, vector=face.vector)]
        Face.objects.filter(pk=face.pk).update(person_id=to.pk)
        Person.objects.filter(pk__in=[to.pk, face.person_id]).update(updated_at=timezone.now())
        _move_vectors(organization_id=organization_id, records=records, to_person_id=to.pk, undo=undo)
    face.person_id = to.pk
    return face
