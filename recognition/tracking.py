"""Faces tracked across one WebSocket connection's frames, and a name decided per track over time.

Video is not a stream of unrelated photos: the same face stays in front of the camera for hundreds
of frames. A `FaceTracker` belongs to one connection (one organisation, one client) and is never
shared, so a name can never travel from one connection or organisation to another.

- Each frame's boxes continue the previous frame's tracks by overlap (IoU, greedy, best first).
  With at most a few faces per frame that is exact enough and costs microseconds; the maintained
  trackers (`supervision`'s ByteTrack, `trackers`) add a Kalman filter and dependencies (matplotlib,
  a second OpenCV build) for objects that cross and hide each other, which faces in front of a
  camera rarely do (docs/WEBSOCKET.md, "Tracking").
- A track keeps its last embedding's decision. It is embedded again only when needed. The frame's
  answer waits for the embedding of a new track, a name not yet agreed, a decision that contradicts
  the agreed one, a box that jumped, or a look that changed (a tiny grey thumbnail of the box no
  longer like the one at its last embedding). A changed look is another face: its votes start
  afresh, so the new person is named on their first embedding. A settled track is also embedded
  again every `reembed_seconds`, when the face got clearly bigger or sharper (quality), and when it
  drifted far from where it was embedded, but in the background (`REFRESH`): the frame answers
  with the track's name at once, the engine embeds the face when no frame waits for it, and a later
  frame counts the decision (if it contradicts the name, the next frame looks again at once). A
  refresh the engine had no time for within `REFRESH_OVERDUE` periods is done by a frame itself.
- Every embedding is decided by the organisation's own decision (`faces.matching`, the same call as
  `POST /recognize`); the tracker only votes over those decisions. A new track (or a changed look)
  shows its first embedding's decision at once; after that its name changes only when its last
  `AGREE` embeddings say so, so one bad frame in a track neither names a stranger nor renames a
  known face.
- While faces are tracked, detection runs at a quarter of the resolution over the whole frame, and
  each tracked face under 96 px, and each track the last frame missed, is looked at closer in its
  own neighbourhood. Every `FULL_DETECT_SECONDS` a whole frame is searched at
  full size in the background, for small newcomers: the faces it finds that no track has are
  looked at closer, in their own neighbourhood, on the next frame. A frame with no tracks is
  detected whole at full size. A face is embedded only from a precise detection: the alignment
  follows the detector's points, and a reduced pass's box moved a borderline similarity across the
  threshold (bench/ws.py). A face due an embedding after a reduced pass is detected again in its
  own neighbourhood, with the face at `NEAR_FACE_PIXELS` (faces/engine/pipeline.py), not in the
  whole frame.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np

from faces.decision import MATCH, UNKNOWN
from faces.engine.base import DetectedFace, FaceBox

TRACK_IOU = 0.3  # a box continues the track whose last box it overlaps this much
# Below this overlap with the last frame's box, the box jumped: embedded again before the answer. Below
# it with the box it was last embedded at, the face moved far since (a steady drift): embedded again
# in the background.
JUMP_IOU = 0.5
# A face whose look changed (a 16x16 grey thumbnail of its box, correlated with the one at its last
# embedding) is embedded at once. The bench's moving faces keep >= 0.81 over 20 frames of drift and
# noise; another person stepping into the same place measured 0.16-0.52.
THUMB_SIDE = 16
SAME_LOOK = 0.7
QUALITY_GAIN = 1.25  # embedded again when its quality (side x detection confidence) grew by this factor
LOST_SECONDS = 0.5  # a track unseen for this long ends (a missed detection or two does not end it)
AGREE = 2  # consecutive embeddings that must name a person before the track is named
WINDOW = 3  # the agreed name lapses when none of the last WINDOW embeddings gives it
REFRESH_OVERDUE = 2  # periods after its last embedding, a settled track is embedded by the frame itself
# Embeddings older than this many periods (`reembed_seconds`) no longer vote: a settled track keeps
# its last two periodic embeddings while the next one is embedded in the background and counted.
OBSERVATION_PERIODS = REFRESH_OVERDUE + 0.5
NOW, REFRESH = "now", "refresh"  # how a face is embedded: before this frame's answer, or in the background
REDUCED_SCALE = 0.25  # the whole frame's detection scale while faces are tracked
# ... but never below this many pixels on the frame's shorter side (a 640x480 frame's quarter): a face
# that fills a small photo needs some image around it (a 150 px photo's face is found at 60 px, not 37).
MIN_REDUCED_SIDE = 120
# The reduced pass is trusted only with faces it finds (bench/ws.py's detection study): a quarter
# size found 70 of 71 faces of 96-127 px and 481 of 487 larger ones, but 47 of 68 of 48-95 px, so
# a tracked face under LARGE_FACE_PIXELS is looked at closer every frame instead.
LARGE_FACE_PIXELS = 96
SERVED_SECONDS = 1.0  # how far back a connection's answers count for its turn at the engine
FULL_DETECT_SECONDS = 2.0  # a background full-size search at least this often, for small faces coming in
# (large ones are found by the reduced passes themselves)


def iou(a: FaceBox, b: FaceBox) -> float:
    x0, y0 = max(a.x, b.x), max(a.y, b.y)
    x1, y1 = min(a.x + a.w, b.x + b.w), min(a.y + a.h, b.y + b.h)
    inter = max(0, x1 - x0) * max(0, y1 - y0)
    union = a.area + b.area - inter
    return inter / union if union > 0 else 0.0


def quality(face: DetectedFace) -> float:
    return min(face.box.w, face.box.h) * face.confidence


def thumbnail(image_bgr: np.ndarray, box: FaceBox) -> np.ndarray | None:
    """The face's look, cheaply: its box in grey at 16x16, zero mean, unit length."""
    crop = image_bgr[max(0, box.y):box.y + box.h, max(0, box.x):box.x + box.w]
    if crop.size == 0:
        return None
    grey = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY) if crop.ndim == 3 else crop
    small = cv2.resize(grey, (THUMB_SIDE, THUMB_SIDE), interpolation=cv2.INTER_AREA).astype(np.float32).ravel()
    small -= small.mean()
    norm = float(np.linalg.norm(small))
    return small / norm if norm else None


@dataclass
class Observation:
    """One embedding of a track, decided: `decision` is a `faces.matching.VectorDecision`."""

    at: float
    decision: object

    @property
    def person(self) -> int | None:
        best = self.decision.best
        return best.person_id if self.decision.decision == MATCH and best is not None else None


@dataclass
class Track:
    id: int
    box: FaceBox
    seen_at: float
    observations: deque = field(default_factory=lambda: deque(maxlen=WINDOW))
    agreed: int | None = None  # the person the track names, once AGREE embeddings agree
    ever_agreed: bool = False  # AGREE embeddings in a row have agreed (on a person or on nobody)
    embedded_box: FaceBox | None = None
    embedded_at: float = float("-inf")
    embedded_quality: float = 0.0
    embedded_look: np.ndarray | None = None
    look: np.ndarray | None = None  # this frame's thumbnail
    generation: int = 0  # counts restarts: a background embedding begun before the last one no longer counts
    refresh: object | None = None  # the background embedding in flight (recognition.services)
    missed: bool = False  # the last frame did not find it (seen the frame before)

    def settled(self) -> bool:
        """The last AGREE embeddings agree (on a person or on nobody)."""
        recent = list(self.observations)[-AGREE:]
        return len(recent) == AGREE and len({o.person for o in recent}) == 1

    def _forget_old(self, now: float, *, window: float) -> None:
        while self.observations and now - self.observations[0].at > window:
            self.observations.popleft()

    def embedding_needed(self, face: DetectedFace, *, now: float, reembed_seconds: float) -> str | None:
        """NOW (this frame's answer waits for the embedding), REFRESH (embedded in the background) or None."""
        self._forget_old(now, window=OBSERVATION_PERIODS * reembed_seconds)
        if not self.observations or not self.settled():
            return NOW  # new, or not yet agreed: every frame until it is
        if self.observations[-1].person != self.agreed:
            return NOW  # the last embedding contradicts the name: look again at once
        if self.embedded_box is None or iou(face.box, self.box) < JUMP_IOU:
            return NOW  # `box` is still the last frame's
        since = now - self.embedded_at
        if since >= REFRESH_OVERDUE * reembed_seconds:
            return NOW  # the engine had no idle moment for the refresh: this frame looks itself
        if (since >= reembed_seconds or quality(face) >= self.embedded_quality * QUALITY_GAIN
                or iou(face.box, self.embedded_box) < JUMP_IOU):
            return REFRESH if self.refresh is None else None
        return None

    def look_changed(self) -> bool:
        """Someone else in the same place (or the same face turned far): not the face last embedded."""
        if self.look is None or self.embedded_look is None:
            return False
        return float(self.look @ self.embedded_look) < SAME_LOOK

    def restart(self) -> None:
        """Votes afresh: the next embedding is shown at once, as a new track's would be."""
        self.observations.clear()
        self.agreed, self.ever_agreed = None, False
        self.generation += 1

    def observe(self, decision, *, face: DetectedFace, now: float) -> None:
        self._record(decision, face=face, at=now, look=self.look)

    def refreshed(self, decision, *, face: DetectedFace, at: float, look: np.ndarray | None,
                  generation: int) -> bool:
        """A background embedding's decision (of the frame at `at`), counted if it still describes
        the track: no restart since it began, and no newer embedding."""
        self.refresh = None
        if generation != self.generation or at < self.embedded_at:
            return False
        self._record(decision, face=face, at=at, look=look)
        return True

    def _record(self, decision, *, face: DetectedFace, at: float, look: np.ndarray | None) -> None:
        self.observations.append(Observation(at=at, decision=decision))
        self.embedded_box, self.embedded_at, self.embedded_quality = face.box, at, quality(face)
        self.embedded_look = look
        recent = list(self.observations)[-AGREE:]
        if len(recent) == AGREE and len({o.person for o in recent}) == 1:
            self.agreed = recent[0].person
            self.ever_agreed = True
        elif self.agreed is not None and all(o.person != self.agreed for o in self.observations):
            self.agreed = None

    def shown(self, *, now: float):
        """The decision the track shows. A new track (fewer than AGREE embeddings, never agreed) shows
        its embedding's own decision, as `POST /recognize` would; after that, the latest embedding
        that names the agreed person, else the latest embedding's with a name not agreed withheld
        (decided unknown). So a name changes only when two embeddings in a row say so."""
        if not self.observations:
            return None
        if self.agreed is None and not self.ever_agreed and len(self.observations) < AGREE:
            return self.observations[-1].decision
        if self.agreed is not None:
            for observation in reversed(self.observations):
                if observation.person == self.agreed:
                    return observation.decision
        latest = self.observations[-1].decision
        if latest.decision == MATCH:
            return _withheld(latest)
        return latest


def _withheld(decision):
    """A per-frame match the track has not agreed on yet: shown as unknown, candidates kept."""
    return type(decision)(decision=UNKNOWN, best=None, candidates=decision.candidates, threshold=decision.threshold)


@dataclass
class DetectionPlan:
    scale: float  # the whole frame's detection scale
    near: list[FaceBox]  # boxes to look at closer in their own neighbourhood
    search: bool  # start a full-size search of this frame, in the background


@dataclass
class Assignment:
    track: Track
    face: DetectedFace
    embed: bool  # embedded before this frame's answer
    refresh: bool = False  # embedded again in the background (its decision counts in a later frame)


class FaceTracker:
    """One connection's tracks. Not thread-safe: the connection processes one frame at a time."""

    def __init__(self, *, reembed_seconds: float = 1.0, adaptive_detection: bool = True,
                 clock: Callable[[], float] = time.monotonic):
        self.reembed_seconds = reembed_seconds
        self.clock = clock  # seconds; a benchmark replaying video at its own frame rate gives its own
        self.adaptive_detection = adaptive_detection
        self.tracks: list[Track] = []
        self._ids = itertools.count(1)
        self._full_at = float("-inf")
        self._previous_at = float("-inf")  # the last frame's time: tracks seen then were just seen
        self.search: object | None = None  # the background full-size search in flight (recognition.services)
        self._found: list[FaceBox] = []  # newcomers the last search found, for the next frame's look
        self._decided_by: tuple | None = None
        self.frames_reduced = 0
        self.frames_full = 0
        self._answered: deque[float] = deque()  # when this connection's recent frames were answered

    def answered(self, *, now: float) -> None:
        self._answered.append(now)

    def served_lately(self, *, now: float) -> int:
        """Frames answered in the last SERVED_SECONDS: the connection's rank in the engine's queue,
        so that when many cameras' frames wait together the least served camera goes first."""
        while self._answered and self._answered[0] <= now - SERVED_SECONDS:
            self._answered.popleft()
        return len(self._answered)

    def detection_plan(self, *, now: float, frame_side: int | None = None) -> DetectionPlan:
        """This frame's whole-frame detection scale, the boxes to look at closer in their own
        neighbourhood, and whether a background full-size search is due. With tracks: a quarter
        size (REDUCED_SCALE; less reduced where the frame's shorter side, `frame_side`, would fall
        under MIN_REDUCED_SIDE), and the tracked faces under LARGE_FACE_PIXELS, the tracks the last
        frame missed and the newcomers a search found are looked at in their own window. With none (or
        adaptive detection off): one full-size frame. A face due an embedding gets its closer
        look in services."""
        if not (self.adaptive_detection and self.tracks):
            self._full_at = now
            self.frames_full += 1
            return DetectionPlan(scale=1.0, near=[], search=False)
        self.frames_reduced += 1
        near = [t.box for t in self.tracks if t.missed or min(t.box.w, t.box.h) < LARGE_FACE_PIXELS] + self._found
        self._found = []
        search = self.search is None and now - self._full_at >= FULL_DETECT_SECONDS
        if search:
            self._full_at = now
        scale = REDUCED_SCALE if frame_side is None else min(1.0, max(REDUCED_SCALE, MIN_REDUCED_SIDE / frame_side))
        return DetectionPlan(scale=scale, near=near, search=search)

    def searched(self, faces: list[DetectedFace]) -> None:
        """A background search's faces: the ones no track has are looked at on the next frame."""
        self.search = None
        self._found = [face.box for face in faces if all(iou(face.box, t.box) < TRACK_IOU for t in self.tracks)]

    def assign(self, faces: list[DetectedFace], *, now: float, image_bgr: np.ndarray | None = None) -> list[Assignment]:
        """Each face's track (continued by overlap, else new), in the order of `faces`; with the frame's
        pixels, a face whose look changed since its last embedding is embedded again."""
        pairs = sorted(((iou(track.box, face.box), t, f) for t, track in enumerate(self.tracks)
                        for f, face in enumerate(faces)), key=lambda pair: pair[0], reverse=True)
        track_of: dict[int, Track] = {}
        used: set[int] = set()
        existing = len(self.tracks)
        for overlap, t, f in pairs:
            if overlap < TRACK_IOU:
                break
            if t in used or f in track_of:
                continue
            used.add(t)
            track_of[f] = self.tracks[t]
        assignments = []
        for f, face in enumerate(faces):
            track = track_of.get(f)
            if track is None:
                track = Track(id=next(self._ids), box=face.box, seen_at=now)
                self.tracks.append(track)
            track.look = thumbnail(image_bgr, face.box) if image_bgr is not None else None
            if track.look_changed():
                track.restart()  # another face: its first embedding decides at once, no stale name kept
            needed = track.embedding_needed(face, now=now, reembed_seconds=self.reembed_seconds)
            track.box, track.seen_at = face.box, now
            assignments.append(Assignment(track=track, face=face, embed=needed == NOW, refresh=needed == REFRESH))
        # A tracked face this frame did not find may be small or cut off: a closer look at its
        # place next frame (once, not every frame while the missing track lingers).
        for t, track in enumerate(self.tracks[:existing]):
            track.missed = t not in used and track.seen_at == self._previous_at
        self._previous_at = now
        self.tracks = [track for track in self.tracks if now - track.seen_at < LOST_SECONDS]
        return assignments

    def decided_by(self, key: tuple) -> None:
        """What decides changed (a threshold set, a person enrolled): earlier votes no longer count."""
        if key != self._decided_by:
            self._decided_by = key
            for track in self.tracks:
                track.restart()


def vectors_of(embedded: list) -> np.ndarray:
    return np.stack([face.embedding for face in embedded])
