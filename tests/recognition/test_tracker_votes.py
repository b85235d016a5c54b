"""The tracker's rules on their own, frame by frame, with the decisions `faces.matching` returns:
one bad embedding never names anyone, a contradiction is looked at again at once, boxes that
move a little keep their track and a far jump starts a new one."""

from __future__ import annotations

from faces.engine.base import DetectedFace, FaceBox
from faces.matching import VectorDecision
from faces.selectors import PersonMatch
from recognition.tracking import FaceTracker

BLAIR = PersonMatch(1, "Tony Blair", 0.93, 11, None)
POWELL = PersonMatch(2, "Colin Powell", 0.92, 21, None)


def matched(person: PersonMatch) -> VectorDecision:
    return VectorDecision(decision="match", best=person, candidates=[person], threshold=0.9)


def unknown() -> VectorDecision:
    return VectorDecision(decision="unknown", best=None, candidates=[BLAIR], threshold=0.9)


def face(x: int, y: int = 100, side: int = 150) -> DetectedFace:
    return DetectedFace(box=FaceBox(x, y, side, side), confidence=0.99)


REEMBED_SECONDS = 0.5  # the periodic look these replays step past (the service's default is a setting)


class Replay:
    """Frames at 15 fps through one tracker; each embedding gets the next decision given."""

    def __init__(self):
        self.now = 0.0
        self.tracker = FaceTracker(clock=lambda: self.now, reembed_seconds=REEMBED_SECONDS)

    def frame(self, box: DetectedFace, decision: VectorDecision):
        self.now += 1 / 15
        (assignment,) = self.tracker.assign([box], now=self.now)
        if assignment.embed:
            assignment.track.observe(decision, face=box, now=self.now)
        return assignment, assignment.track.shown(now=self.now)


def test_one_bad_embedding_of_a_stranger_names_nobody():
    replay = Replay()
    decisions = [unknown(), unknown(), matched(BLAIR), unknown(), unknown(), matched(POWELL), unknown()]
    shown = [replay.frame(face(100 + 2 * i), d)[1] for i, d in enumerate(decisions)]
    assert [s.best for s in shown] == [None] * len(decisions)
    assert all(s.decision == "unknown" for s in shown)


def test_one_bad_embedding_of_a_known_face_keeps_the_name_and_is_looked_at_again():
    replay = Replay()
    for i in range(3):
        replay.frame(face(100 + 2 * i), matched(BLAIR))
    replay.now += 0.6  # due for its periodic embedding
    assignment, shown = replay.frame(face(108), unknown())
    assert assignment.embed and shown.best == BLAIR
    assignment, shown = replay.frame(face(110), matched(BLAIR))
    assert assignment.embed  # the contradiction was checked on the very next frame
    assert shown.best == BLAIR


def test_a_moving_face_keeps_its_track_and_a_far_box_is_a_new_one():
    replay = Replay()
    tracks = {replay.frame(face(100 + 4 * i), matched(BLAIR))[0].track.id for i in range(10)}
    assert len(tracks) == 1
    assignment, shown = replay.frame(face(420), matched(POWELL))
    assert assignment.track.id not in tracks and assignment.embed
    assert shown.best == POWELL  # a new face is decided at once, as POST /recognize decides it
    assert replay.frame(face(422), unknown())[1].best is None  # no agreement yet: its latest decision
    assert replay.frame(face(424), matched(POWELL))[1].best is None  # a name only when two agree
    assert replay.frame(face(426), matched(POWELL))[1].best == POWELL


def test_settled_tracks_are_not_embedded_every_frame():
    replay = Replay()
    embedded = [replay.frame(face(100 + 3 * i), matched(BLAIR))[0].embed for i in range(30)]
    assert sum(embedded) <= 2 + 30 // 7  # two to agree, then about every 0.5 s (7-8 frames at 15 fps)


def test_the_name_changes_only_when_two_embeddings_in_a_row_say_so():
    replay = Replay()
    for i in range(3):
        replay.frame(face(100 + 2 * i), matched(BLAIR))
    replay.now += 0.6
    assert replay.frame(face(106), matched(POWELL))[1].best == BLAIR
    assignment, shown = replay.frame(face(108), matched(POWELL))
    assert assignment.embed and shown.best == POWELL


def test_what_decides_changing_clears_the_votes():
    replay = Replay()
    for i in range(3):
        replay.frame(face(100 + 2 * i), unknown())
    replay.tracker.decided_by(("calibrated", 1))
    replay.tracker.decided_by(("calibrated", 2))  # someone enrolled: a new threshold
    assignment, shown = replay.frame(face(106), matched(BLAIR))
    assert assignment.embed and shown.best == BLAIR  # decided afresh, as POST /recognize would


def test_someone_else_in_the_same_place_is_named_on_their_first_embedding(manifest):
    """The box stays, the look changes (real photos on the webcam canvas): votes start afresh."""
    import cv2
    import numpy as np

    from tests.video import moving_face_frames

    def decoded(identity: str, start: int) -> np.ndarray:
        (jpeg,) = moving_face_frames([manifest[identity][4].path], frames=1, seed=9, start_frame=start)
        return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)

    replay = Replay()
    box = face(220, 120, 200)
    for i in range(4):
        replay.now += 1 / 15
        (assignment,) = replay.tracker.assign([box], now=replay.now, image_bgr=decoded("Tony_Blair", i))
        if assignment.embed:
            assignment.track.observe(matched(BLAIR), face=box, now=replay.now)
    assert not assignment.embed  # the same look, settled: no embedding
    replay.now += 1 / 15
    (assignment,) = replay.tracker.assign([box], now=replay.now, image_bgr=decoded("Colin_Powell", 4))
    assert assignment.embed
    assignment.track.observe(matched(POWELL), face=box, now=replay.now)
    assert assignment.track.shown(now=replay.now).best == POWELL
