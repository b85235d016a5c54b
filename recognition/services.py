"""Recognition and verification: the one code path REST and WebSocket share."""

from __future__ import annotations

import dataclasses
import logging
import time
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import numpy as np

from apikeys.services import AuthenticatedKey
from faceportal.errors import Unprocessable
from faces.decision import SOURCE_REQUEST, UNKNOWN, Threshold
from faces.engine import (
    DetectedFace,
    EmbeddedFace,
    FaceBox,
    call_in_engine_pool_ranked,
    get_engine,
    run_in_engine_background,
)
from faces.engine.pipeline import NEAR_CONTEXT, REFINE_CONTEXT, prominence
from faces.images import decoding_for, load
from faces.index.base import cosine_to_similarity
from faces.matching import decide_vectors, decision_in_force, verify_decision
from faces.models import SOURCE_REST
from faces.selectors import PersonMatch, person_get
from faces.unknowns.services import UnknownCandidate, unknown_faces_keep
from organizations.models import Organization
from recognition.tracking import TRACK_IOU, Assignment, FaceTracker, iou
from recognition.webhooks.services import EventThrottle, recognition_events_fire

logger = logging.getLogger(__name__)

DEFAULT_MAX_RESULTS = 5


@dataclass(frozen=True)
class RecognizedFace:
    box: dict[str, int]  # in the image as sent
    detection_confidence: float
    decision: str  # match | unknown | ambiguous
    threshold: float  # the similarity this face's best candidate had to reach
    match: PersonMatch | None
    candidates: list[PersonMatch]
    unknown_face: int | None = None  # the kept unknown face's id, when this one was kept
    track: int | None = None  # the connection's track this face continues (socket frames with tracking on)


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
    keep_unknown_faces: bool = False  # whether the organisation keeps faces decided unknown
    faces_dropped: int = 0  # faces found beyond FACEPORTAL_MAX_FACES_PER_IMAGE, not recognised


def _keepable(*, organization: Organization, vectors: np.ndarray, decided: list, chosen: Threshold) -> list[bool]:
    """Which faces are unknown at the organisation's own decision: a request's threshold cannot
    make an enrolled person's face unknown enough to be kept."""
    unknown = [outcome.decision == UNKNOWN for outcome in decided]
    if chosen.source != SOURCE_REQUEST or not any(unknown):
        return unknown
    own = decide_vectors(organization=organization, vectors=vectors,
                         threshold=decision_in_force(organization=organization), max_results=2)
    return [was and outcome.decision == UNKNOWN for was, outcome in zip(unknown, own, strict=True)]


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


def recognize(
    *, organization: Organization, image: Any, threshold: float | None = None,
    max_results: int = DEFAULT_MAX_RESULTS, seen_by: AuthenticatedKey | None = None, source: str = SOURCE_REST,
    may_keep: bool = True, fire_events: bool = False, event_throttle: EventThrottle | None = None,
) -> Recognition:
    """Every face in `image`, each with its decision. Takes validated options
    (`recognition.serializers.RecognitionOptionsSerializer`); `image` is read here.

    When the organisation keeps unknown faces (and `may_keep`: the socket keeps one per interval),
    faces decided unknown that pass the enrolment gates are kept, seen by `seen_by`.

    With `fire_events`, each face queues its webhook event (`face.recognized` or `face.unknown`),
    at most one per person per interval of `event_throttle` when given (a socket's frames)."""
    started = time.perf_counter()
    with decoding_for(organization.pk):
        loaded = load(image, index=0, organization=organization.slug)
    timings = {"decode": _ms(started)}
    engine = get_engine()
    keeping = organization.keep_unknown_faces and may_keep
    result = engine.faces_in(loaded.pixels, with_crops=keeping)
    timings.update(result.timings_ms)
    search_started = time.perf_counter()
    chosen = decision_in_force(organization=organization, requested_threshold=threshold)
    faces: list[RecognizedFace] = []
    if result.faces:
        vectors = np.stack([face.embedding for face in result.faces])
        decided = decide_vectors(organization=organization, vectors=vectors, threshold=chosen, max_results=max_results,
                                 second=result.second)
        faces = [
            RecognizedFace(
                box=loaded.box_to_original(face.detection.box.as_dict()),
                detection_confidence=face.detection.confidence,
                decision=outcome.decision, threshold=outcome.threshold, match=outcome.best,
                candidates=outcome.candidates,
            )
            for face, outcome in zip(result.faces, decided, strict=True)
        ]
        if keeping:
            keepable = _keepable(organization=organization, vectors=vectors, decided=decided, chosen=chosen)
            picked = [i for i, ok in enumerate(keepable) if ok]
            if picked:
                kept = unknown_faces_keep(
                    organization=organization, pixels=loaded.pixels, model_name=engine.model_name,
                    candidates=[UnknownCandidate(embedded=result.faces[i], box=faces[i].box) for i in picked],
                    seen_by=seen_by, source=source,
                )
                for i, unknown_id in zip(picked, kept, strict=True):
                    faces[i] = dataclasses.replace(faces[i], unknown_face=unknown_id)
    timings["search"] = _ms(search_started) if result.faces else 0.0
    timings["total"] = _ms(started)
    width, height = loaded.size  # as sent: decoding may have downscaled the pixels
    recognition = Recognition(faces=faces, threshold=chosen, model=engine.model_name, detector=engine.detector_name,
                       image=ImageSize(width=width, height=height), timings_ms=timings,
                       keep_unknown_faces=organization.keep_unknown_faces,
                       faces_dropped=result.faces_dropped)
    if fire_events and faces:
        recognition_events_fire(organization=organization, recognition=recognition, channel=source,
                                api_key_name=seen_by.name if seen_by is not None else None, throttle=event_throttle)
    return recognition



def _near_look(engine, pixels: np.ndarray, box: FaceBox, *, context: float = NEAR_CONTEXT) -> DetectedFace | None:
    """The face a closer look at `box`'s own neighbourhood finds where `box` is, if any."""
    best = max(engine.detect_faces_near(pixels, box, context=context), key=lambda found: iou(found.box, box),
               default=None)
    return best if best is not None and iou(best.box, box) >= TRACK_IOU else None


def _refined(engine, pixels: np.ndarray, face: DetectedFace) -> DetectedFace:
    """A face found by a reduced pass of this frame, as a closer look at its own neighbourhood finds
    it (else as given): the box and points an embedding starts from."""
    return _near_look(engine, pixels, face.box, context=REFINE_CONTEXT) or face


@dataclass
class BackgroundEmbedding:
    """A settled track's re-embedding, on the engine's idle time, and what counting it needs."""

    future: Future  # (EmbeddedFace, the second model's vector or None)
    at: float  # the frame's time on the tracker's clock
    look: np.ndarray | None
    generation: int
    pixels: np.ndarray  # the frame, should the decision need the second model after all


def _embedded_again(engine, pixels: np.ndarray, face: DetectedFace, *, refine: bool,
                    with_second: bool) -> tuple[EmbeddedFace, np.ndarray | None]:
    if refine:
        face = _refined(engine, pixels, face)
    (embedded,) = engine.embed_detected(pixels, [face])
    return embedded, engine.second_embeddings(pixels, [face])[0] if with_second else None


def _refresh_in_background(engine, assignment: Assignment, *, pixels: np.ndarray, now: float, refine: bool) -> None:
    track = assignment.track
    # The second model too, when the track's last decision needed it: the refresh then needs no frame's time.
    with_second = engine.second_embedder is not None and track.observations[-1].decision.second_model
    track.refresh = BackgroundEmbedding(
        future=run_in_engine_background(_embedded_again, engine, pixels, assignment.face, refine=refine,
                                        with_second=with_second),
        at=now, look=track.look, generation=track.generation, pixels=pixels)


def _take_search(tracker: FaceTracker, *, organization: Organization) -> None:
    """A finished background search for newcomers, handed to the tracker."""
    if tracker.search is None or not tracker.search.done():
        return
    try:
        faces = tracker.search.result()
    except Exception:
        logger.exception("background face search failed", extra={"organization": organization.slug})
        faces = []
    tracker.searched(faces)


def _count_refreshed(*, organization: Organization, tracker: FaceTracker, threshold: Threshold,
                     max_results: int) -> None:
    """Decide the background embeddings finished since the last frame, and count them in their tracks."""
    ready = []
    for track in tracker.tracks:
        job = track.refresh
        if job is None or not job.future.done():
            continue
        if job.generation != track.generation:
            track.refresh = None  # the track restarted since: its face may be someone else's
            continue
        try:
            embedded, second_vector = job.future.result()
        except Exception:
            logger.exception("background embedding failed", extra={"organization": organization.slug})
            track.refresh = None
            continue
        ready.append((track, job, embedded, second_vector))
    if not ready:
        return
    engine = get_engine()

    def second(positions: list[int]) -> np.ndarray:
        return np.stack([ready[i][3] if ready[i][3] is not None
                         else engine.second_embeddings(ready[i][1].pixels, [ready[i][2].detection])[0]
                         for i in positions])

    decided = decide_vectors(organization=organization, vectors=np.stack([item[2].embedding for item in ready]),
                             threshold=threshold, max_results=max_results,
                             second=second if engine.second_embedder is not None else None)
    for (track, job, embedded, _), outcome in zip(ready, decided, strict=True):
        track.refreshed(outcome, face=embedded.detection, at=job.at, look=job.look, generation=job.generation)


def recognize_tracked(
    *, organization: Organization, image: Any, tracker: FaceTracker, threshold: float | None = None,
    max_results: int = DEFAULT_MAX_RESULTS, seen_by: AuthenticatedKey | None = None, source: str = SOURCE_REST,
    may_keep: bool = True, fire_events: bool = False, event_throttle: EventThrottle | None = None,
) -> Recognition:
    """`recognize` for one frame of a connection's video: the same answer, each face with its `track`.

    Faces continue `tracker`'s tracks (recognition/tracking.py); only the faces whose track needs it
    are embedded, and each embedding is decided by the organisation's decision in force, exactly as
    `recognize` decides it. What a face shows is its track's agreed decision."""
    started = time.perf_counter()
    engine = get_engine()
    keeping = organization.keep_unknown_faces and may_keep
    chosen = decision_in_force(organization=organization, requested_threshold=threshold)
    tracker.decided_by((chosen.source, chosen.value, chosen.similarity, chosen.gallery_size, chosen.false_match_rate,
                        max_results))

    def engine_step():
        # One engine-pool task per frame, decoding included (a socket frame is base64 or bytes, never
        # fetched): the frame waits its turn once, not once to decode and again to detect.
        mark = time.perf_counter()
        with decoding_for(organization.pk):
            loaded = load(image, index=0, organization=organization.slug)
        stage = {"decode": _ms(mark)}
        now = tracker.clock()
        mark = time.perf_counter()
        _take_search(tracker, organization=organization)
        plan = tracker.detection_plan(now=now, frame_side=min(loaded.pixels.shape[:2]))
        scale = plan.scale
        found = engine.detect_faces(loaded.pixels, scale=scale)
        looked: set[int] = set()  # faces a closer look found: already precise
        for box in plan.near:
            # A tracked face too small for the reduced pass, one the last frame missed, or a newcomer
            # the background search found: looked at closer, around where it was.
            near = _near_look(engine, loaded.pixels, box)
            if near is not None:
                found = [face for face in found if iou(face.box, near.box) < TRACK_IOU] + [near]
                looked.add(id(near))
        if plan.search:
            tracker.search = run_in_engine_background(engine.detect_faces, loaded.pixels)
        if plan.near:
            height, width = loaded.pixels.shape[:2]
            found.sort(key=lambda face: prominence(face, width, height), reverse=True)
        detected = found[:engine.max_faces or None]  # the most prominent, as `recognize` keeps them
        assignments = tracker.assign(detected, now=now, image_bgr=loaded.pixels)
        if scale < 1:
            # Embeddings start from precise boxes and points (the alignment follows them): a closer look
            # at the face's own neighbourhood, at the face's own resolution, rather than the whole frame.
            for assignment in assignments:
                if assignment.embed and id(assignment.face) not in looked:
                    assignment.face = _refined(engine, loaded.pixels, assignment.face)
        for assignment in assignments:
            if assignment.refresh:
                _refresh_in_background(engine, assignment, pixels=loaded.pixels, now=now,
                                       refine=scale < 1 and id(assignment.face) not in looked)
        stage["detect"] = _ms(mark)
        mark = time.perf_counter()
        chosen_faces = [a.face for a in assignments if a.embed]
        embedded = engine.embed_detected(loaded.pixels, chosen_faces, with_crops=keeping)
        stage["embed"] = _ms(mark) if chosen_faces else 0.0  # 0: every face kept its track's embedding
        return loaded, now, assignments, embedded, stage, len(found) - len(detected)

    # The least served camera's frame first among those waiting: cameras sending at once take turns.
    loaded, now, assignments, embedded, timings, dropped = call_in_engine_pool_ranked(
        tracker.served_lately(now=tracker.clock()), engine_step)
    search_started = time.perf_counter()
    _count_refreshed(organization=organization, tracker=tracker, threshold=chosen, max_results=max_results)
    to_embed = [a for a in assignments if a.embed]
    decided = []
    if embedded:
        vectors = np.stack([face.embedding for face in embedded])
        second = None
        if engine.second_embedder is not None:
            def second(positions: list[int]) -> np.ndarray:
                # The cascade's second model, for the faces the first cannot decide alone, as REST.
                return engine.second_embeddings(loaded.pixels, [embedded[i].detection for i in positions])
        decided = decide_vectors(organization=organization, vectors=vectors, threshold=chosen, max_results=max_results,
                                 second=second)
        for assignment, outcome in zip(to_embed, decided, strict=True):
            assignment.track.observe(outcome, face=assignment.face, now=now)
    faces = []
    for assignment in assignments:
        outcome = assignment.track.shown(now=now)
        faces.append(RecognizedFace(
            box=loaded.box_to_original(assignment.face.box.as_dict()),
            detection_confidence=assignment.face.confidence,
            decision=outcome.decision, threshold=outcome.threshold, match=outcome.best,
            candidates=outcome.candidates[:max_results], track=assignment.track.id,
        ))
    if keeping and embedded:
        keepable = _keepable(organization=organization, vectors=vectors, decided=decided, chosen=chosen)
        picked = [i for i, ok in enumerate(keepable) if ok and faces[assignments.index(to_embed[i])].match is None]
        if picked:
            kept = unknown_faces_keep(
                organization=organization, pixels=loaded.pixels, model_name=engine.model_name,
                candidates=[UnknownCandidate(embedded=embedded[i], box=faces[assignments.index(to_embed[i])].box)
                            for i in picked],
                seen_by=seen_by, source=source,
            )
            for i, unknown_id in zip(picked, kept, strict=True):
                at = assignments.index(to_embed[i])
                faces[at] = dataclasses.replace(faces[at], unknown_face=unknown_id)
    timings["search"] = _ms(search_started) if decided else 0.0
    timings["total"] = _ms(started)
    tracker.answered(now=now)
    width, height = loaded.size
    recognition = Recognition(faces=faces, threshold=chosen, model=engine.model_name, detector=engine.detector_name,
                              image=ImageSize(width=width, height=height), timings_ms=timings,
                              keep_unknown_faces=organization.keep_unknown_faces,
                              faces_dropped=dropped)
    if fire_events and faces:
        recognition_events_fire(organization=organization, recognition=recognition, channel=source,
                                api_key_name=seen_by.name if seen_by is not None else None, throttle=event_throttle)
    return recognition

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
    external_id: str | None = None


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
    with decoding_for(organization.pk):
        probe, probe_box = _single_face(image, index=0, organization=organization)
    other_box = None
    matched_person = None
    if other_image is not None:
        with decoding_for(organization.pk):
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
        matched_person = VerifiedPerson(id=person.pk, name=person.name, face_id=faces[best].pk, box=faces[best].box,
                                        external_id=person.external_id)
    decided = verify_decision(organization=organization, probe=probe, similarity=similarity,
                              requested_threshold=threshold)
    return Verification(verified=decided.verified, similarity=similarity, threshold=decided.threshold,
                        threshold_source=decided.threshold_source, image_box=probe_box, image2_box=other_box,
                        person=matched_person)
