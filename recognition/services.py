"""Recognition and verification: the one code path REST and WebSocket share."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from faceportal.errors import Unprocessable
from faces.decision import Threshold
from faces.engine import get_engine
from faces.images import load
from faces.index.base import cosine_to_similarity
from faces.selectors import PersonMatch, decide_vectors, decision_in_force, person_get
from organizations.models import Organization

DEFAULT_MAX_RESULTS = 5


@dataclass(frozen=True)
class RecognizedFace:
    box: dict[str, int]  # in the image as sent
    detection_confidence: float
    decision: str  # match | unknown | ambiguous
    threshold: float  # the similarity this face's best candidate had to reach
    match: PersonMatch | None
    candidates: list[PersonMatch]


@dataclass(frozen=True)
class ImageSize:
    width: int
    height: int


@dataclass(frozen=True)
class Recognition:
    faces: list[RecognizedFace]
    threshold: Threshold
    model: str
    detector: str
    image: ImageSize
    timings_ms: dict[str, float]


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def recognize(
    *, organization: Organization, image: Any, threshold: float | None = None,
    max_results: int = DEFAULT_MAX_RESULTS,
) -> Recognition:
    """Every face in `image`, each with its decision. Takes validated options
    (`recognition.serializers.RecognitionOptionsSerializer`); `image` is read here."""
    started = time.perf_counter()
    loaded = load(image, index=0, organization=organization.slug)
    timings = {"decode": _ms(started)}
    engine = get_engine()
    result = engine.faces_in(loaded.pixels)
    timings.update(result.timings_ms)
    search_started = time.perf_counter()
    chosen = decision_in_force(organization=organization, requested_threshold=threshold)
    faces: list[RecognizedFace] = []
    if result.faces:
        vectors = np.stack([face.embedding for face in result.faces])
        decided = decide_vectors(organization=organization, vectors=vectors, threshold=chosen, max_results=max_results)
        faces = [
            RecognizedFace(
                box=loaded.box_to_original(face.detection.box.as_dict()),
                detection_confidence=face.detection.confidence,
                decision=outcome.decision, threshold=outcome.threshold, match=outcome.best,
                candidates=outcome.candidates,
            )
            for face, outcome in zip(result.faces, decided, strict=True)
        ]
    timings["search"] = _ms(search_started) if result.faces else 0.0
    timings["total"] = _ms(started)
    width, height = loaded.size  # as sent: decoding may have downscaled the pixels
    return Recognition(faces=faces, threshold=chosen, model=engine.model_name, detector=engine.detector_name,
                       image=ImageSize(width=width, height=height), timings_ms=timings)


def _single_face(image: Any, *, index: int, organization: Organization) -> tuple[np.ndarray, dict[str, int]]:
    """The most prominent face's embedding and its box in the image."""
    loaded = load(image, index=index, organization=organization.slug)
    result = get_engine().faces_in(loaded.pixels, most_prominent_only=True)
    if not result.faces:
        raise Unprocessable(f"Image {index}: no face detected.", details={"image_index": index}, code="no_face")
    return result.faces[0].embedding, result.faces[0].detection.box.as_dict()


@dataclass(frozen=True)
class VerifiedPerson:
    id: int
    name: str
    face_id: int  # the person's face closest to the probe
    box: dict[str, int]


@dataclass(frozen=True)
class Verification:
    verified: bool
    similarity: float
    threshold: float
    threshold_source: str
    # What was compared: the face found in `image`, and the one in `image2` or the person's closest face.
    image_box: dict[str, int]
    image2_box: dict[str, int] | None
    person: VerifiedPerson | None


def verify(
    *, organization: Organization, image: Any, other_image: Any = None, person_id: int | None = None,
    threshold: float | None = None,
) -> Verification:
    """1:1 check: is the face in `image` the same person as `other_image`'s, or as person `person_id`?
    Exactly one of the two is given (`recognition.serializers.VerifyInputSerializer`).

    Without an explicit threshold, the organisation's false-match rate applies to one comparison
    (a gallery of one).
    """
    probe, probe_box = _single_face(image, index=0, organization=organization)
    other_box = None
    matched_person = None
    if other_image is not None:
        other, other_box = _single_face(other_image, index=1, organization=organization)
        similarity = float(cosine_to_similarity(probe @ other))
    else:
        person = person_get(organization=organization, person_id=person_id)
        faces = list(person.faces.all())
        if not faces:
            raise Unprocessable("That person has no registered faces.", code="person_has_no_faces")
        gallery = np.stack([face.vector for face in faces])
        scores = cosine_to_similarity(gallery @ probe)
        best = int(np.argmax(scores))
        similarity = float(scores[best])
        matched_person = VerifiedPerson(id=person.pk, name=person.name, face_id=faces[best].pk, box=faces[best].box)
    chosen = decision_in_force(organization=organization, requested_threshold=threshold, gallery_size=1)
    offset = float(chosen.calibration.offsets(probe)[0]) if chosen.calibration is not None else 0.0
    needed = chosen.for_offset(offset)
    return Verification(verified=similarity >= needed, similarity=similarity, threshold=needed,
                        threshold_source=chosen.source, image_box=probe_box, image2_box=other_box,
                        person=matched_person)
