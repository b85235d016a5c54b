"""Recognition and verification: the one code path REST and WebSocket share."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from faceportal.errors import InvalidInput, Unprocessable
from faces.decision import effective_threshold
from faces.engine import get_engine
from faces.images import LoadedImage, load
from faces.index.base import cosine_to_similarity
from faces.selectors import decide_vectors, person_get, search_threshold
from organizations.models import Organization

MAX_RESULTS_LIMIT = 20


def validate_threshold(threshold: Any) -> float | None:
    """A request's explicit similarity threshold, or None: the organisation's calibrated one applies."""
    if threshold is None:
        return None
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
        raise InvalidInput("'threshold' must be a number between 0 and 1.", details={"field": "threshold"})
    if not 0.0 <= float(threshold) <= 1.0:
        raise InvalidInput("'threshold' must be between 0 and 1.", details={"field": "threshold"})
    return float(threshold)


def validate_max_results(max_results: Any) -> int:
    if max_results is None:
        return 5
    if isinstance(max_results, bool) or not isinstance(max_results, int) or not 1 <= max_results <= MAX_RESULTS_LIMIT:
        raise InvalidInput(
            f"'max_results' must be an integer from 1 to {MAX_RESULTS_LIMIT}.", details={"field": "max_results"}
        )
    return max_results


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def recognize_loaded(
    *, organization: Organization, image: LoadedImage, threshold: float | None, max_results: int
) -> dict[str, Any]:
    engine = get_engine()
    timings: dict[str, float] = {}
    result = engine.faces_in(image.pixels)
    timings.update({stage: round(value, 2) for stage, value in result.timings_ms.items()})
    started = time.perf_counter()
    chosen = search_threshold(organization=organization, requested=threshold)
    faces_out: list[dict[str, Any]] = []
    if result.faces:
        vectors = np.stack([face.embedding for face in result.faces])
        decided = decide_vectors(organization=organization, vectors=vectors, threshold=chosen, max_results=max_results)
        timings["search"] = _ms(started)
        for face, outcome in zip(result.faces, decided, strict=True):
            best, candidates = outcome.best, outcome.candidates
            faces_out.append(
                {
                    "box": image.box_to_original(face.detection.box.as_dict()),
                    "detection_confidence": round(face.detection.confidence, 4),
                    "decision": outcome.decision,
                    "threshold": round(outcome.threshold, 4),
                    "match": None if best is None else {
                        "person": best.person_id, "name": best.name, "similarity": round(best.similarity, 4)
                    },
                    "candidates": [
                        {"person": c.person_id, "name": c.name, "similarity": round(c.similarity, 4)}
                        for c in candidates
                    ],
                }
            )
    else:
        timings["search"] = 0.0
    width, height = image.size  # as sent: decoding may have downscaled the pixels
    return {
        "faces": faces_out,
        **chosen.describe(),
        "model": engine.model_name,
        "detector": engine.detector_name,
        "image": {"width": width, "height": height},
        "timings_ms": timings,
    }


def recognize(
    *, organization: Organization, image: Any, threshold: Any = None, max_results: Any = None
) -> dict[str, Any]:
    started = time.perf_counter()
    threshold_value = validate_threshold(threshold)
    limit = validate_max_results(max_results)
    if image is None:
        raise InvalidInput("'image' is required.", details={"field": "image"})
    decode_started = time.perf_counter()
    loaded = load(image, index=0)
    decode_ms = _ms(decode_started)
    response = recognize_loaded(organization=organization, image=loaded, threshold=threshold_value, max_results=limit)
    response["timings_ms"] = {"decode": decode_ms, **response["timings_ms"], "total": _ms(started)}
    return response


def _single_face(image: Any, *, index: int) -> tuple[np.ndarray, dict[str, int]]:
    """The most prominent face's embedding and its box in the image."""
    loaded = load(image, index=index)
    result = get_engine().faces_in(loaded.pixels, most_prominent_only=True)
    if not result.faces:
        raise Unprocessable(f"Image {index}: no face detected.", details={"image_index": index}, code="no_face")
    return result.faces[0].embedding, result.faces[0].detection.box.as_dict()


@dataclass(frozen=True)
class Verification:
    verified: bool
    similarity: float
    threshold: float
    threshold_source: str
    # What was compared: the face found in `image`, and the one in `image2` or the person's closest face.
    image_box: dict[str, int] | None = None
    image2_box: dict[str, int] | None = None
    person: dict[str, Any] | None = None


def verify(
    *, organization: Organization, image: Any, other_image: Any = None, person_id: Any = None, threshold: Any = None
) -> Verification:
    """1:1 check: is the face in `image` the same person as `other_image`'s, or as person `person_id`?

    Without an explicit threshold, the organisation's false-match rate applies to one comparison
    (a gallery of one).
    """
    requested = validate_threshold(threshold)
    if (other_image is None) == (person_id is None):
        raise InvalidInput("Give exactly one of 'image2' or 'person'.", details={"field": "image2"})
    if image is None:
        raise InvalidInput("'image' is required.", details={"field": "image"})
    probe, probe_box = _single_face(image, index=0)
    other_box = None
    matched_person = None
    if other_image is not None:
        other, other_box = _single_face(other_image, index=1)
        similarity = float(cosine_to_similarity(probe @ other))
    else:
        if isinstance(person_id, bool) or not isinstance(person_id, int):
            raise InvalidInput("'person' must be an integer id.", details={"field": "person"})
        person = person_get(organization=organization, person_id=person_id)
        faces = list(person.faces.all())
        if not faces:
            raise Unprocessable("That person has no registered faces.", code="person_has_no_faces")
        gallery = np.stack([face.vector for face in faces])
        scores = cosine_to_similarity(gallery @ probe)
        best = int(np.argmax(scores))
        similarity = float(scores[best])
        matched_person = {"id": person.pk, "name": person.name, "face_id": faces[best].pk, "box": faces[best].box}
    engine = get_engine()
    chosen = effective_threshold(
        model=engine.model_name, requested=requested, false_match_rate=organization.false_match_rate,
        gallery_size=1, model_default=engine.default_threshold,
    )
    offset = float(chosen.calibration.offsets(probe)[0]) if chosen.calibration is not None else 0.0
    needed = chosen.for_offset(offset)
    return Verification(verified=similarity >= needed, similarity=round(similarity, 4), threshold=round(needed, 4),
                        threshold_source=chosen.source, image_box=probe_box, image2_box=other_box,
                        person=matched_person)
