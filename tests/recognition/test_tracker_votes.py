"""The tracker's rules on their own, frame by frame, with the decisions `faces.matching` returns:
one bad embedding never names anyone, a contradiction is looked at again at once, boxes that
move a little keep their track and a far jump starts a new one."""

from __future__ import annotations

from faces.engine.base import DetectedFace, FaceBox
from faces.matching import VectorDecision
from faces.selectors import PersonMatch
from recognition.tracking import (
    LARGE_FACE_PIXELS,
    MIN_REDUCED_SIDE,
    REDUCED_SCALE,
    REFRESH_OVERDUE,
    SERVED_SECONDS,
    FaceTracker,
)

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
        elif assignment.refresh:  # embedded in the background; here its decision is back at once
            track = assignment.track
            track.refreshed(decision, face=box, at=self.now, look=track.look, generation=track.generation)
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
    replay.now += 0.6  # due for its periodic embedding, in the background: the frame does not wait
    assignment, shown = replay.frame(face(108), unknown())
    assert assignment.refresh and not assignment.embed and shown.best == BLAIR
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
    assignments = [replay.frame(face(100 + 3 * i), matched(BLAIR))[0] for i in range(30)]
    assert sum(a.embed for a in assignments) == 2  # two to agree; the answers never wait again
    # then again about every 0.5 s (7-8 frames at 15 fps), in the background
    assert 1 <= sum(a.refresh for a in assignments) <= 30 // 7


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


def settled_replay() -> tuple[Replay, object]:
    replay = Replay()
    for i in range(3):
        assignment, _ = replay.frame(face(100 + 2 * i), matched(BLAIR))
    return replay, assignment.track


def refresh_begun() -> tuple[Replay, object, tuple[float, int]]:
    """A settled track whose periodic look has just gone to the background: (when, generation)."""
    replay, track = settled_replay()
    replay.now += 0.6
    (assignment,) = replay.tracker.assign([face(106)], now=replay.now)
    assert assignment.refresh
    return replay, track, (replay.now, track.generation)


def test_a_background_embedding_begun_before_the_track_restarted_is_not_counted():
    replay, track, began = refresh_begun()
    replay.tracker.decided_by(("calibrated", 99))  # someone enrolled meanwhile: votes start afresh
    assert not track.refreshed(matched(POWELL), face=face(106), at=began[0], look=None, generation=began[1])
    assert track.shown(now=replay.now) is None  # nothing counted: the next frame decides afresh
    (assignment,) = replay.tracker.assign([face(108)], now=replay.now + 1 / 15)
    assert assignment.embed


def test_a_background_embedding_older_than_the_last_embedding_is_not_counted():
    replay, track, began = refresh_begun()
    replay.now += 1 / 15
    track.observe(matched(BLAIR), face=face(108), now=replay.now)  # a frame embedded it since
    assert not track.refreshed(unknown(), face=face(106), at=began[0], look=None, generation=began[1])
    assert [o.person for o in track.observations][-1] == BLAIR.person_id


def test_a_refresh_the_engine_never_got_to_is_done_by_a_frame():
    replay, track, _ = refresh_begun()
    track.refresh = object()  # in flight, and never finished (a saturated engine)
    (assignment,) = replay.tracker.assign([face(107)], now=replay.now + 1 / 15)
    assert not assignment.embed and not assignment.refresh  # one refresh at a time
    overdue = track.embedded_at + REFRESH_OVERDUE * REEMBED_SECONDS + 0.01  # its votes still count
    (assignment,) = replay.tracker.assign([face(108)], now=overdue)
    assert assignment.embed  # overdue: the frame looks itself


def test_a_track_the_last_frame_missed_is_looked_for_in_its_own_place():
    replay, track = settled_replay()
    replay.now += 1 / 15
    replay.tracker.assign([], now=replay.now)  # the reduced pass found nothing this frame
    plan = replay.tracker.detection_plan(now=replay.now + 1 / 15)
    assert plan.near == [track.box] and plan.scale < 1  # no whole frame at full size for it


def test_a_background_search_hands_its_newcomers_to_the_next_frame_only():
    replay, track = settled_replay()
    plan = replay.tracker.detection_plan(now=replay.now + 2.1)
    assert plan.search and plan.near == []  # due every FULL_DETECT_SECONDS, and in the background
    replay.tracker.search = object()  # in flight
    assert not replay.tracker.detection_plan(now=replay.now + 4.3).search  # one search at a time
    newcomer = face(400, 300, 60)
    replay.tracker.searched([face(track.box.x + 2), newcomer])  # the tracked face, and someone new
    assert replay.tracker.search is None
    assert replay.tracker.detection_plan(now=replay.now + 4.4).near == [newcomer.box]
    assert replay.tracker.detection_plan(now=replay.now + 4.5).near == []


def test_a_face_that_drifted_far_is_looked_at_again_in_the_background():
    replay, track = settled_replay()
    # 20 px a frame for 4 frames: well within a period (REEMBED_SECONDS), no frame a jump from the last
    drifts = [replay.frame(face(104 + 20 * i), matched(BLAIR))[0] for i in range(1, 5)]
    assert not any(a.embed for a in drifts)
    assert any(a.refresh for a in drifts[:3])  # but far from where it was embedded: a look in the background


def test_tracked_faces_of_96_px_and_more_are_left_to_the_reduced_pass_and_smaller_ones_looked_at():
    replay = Replay()
    large, small = face(100, side=LARGE_FACE_PIXELS), face(400, side=LARGE_FACE_PIXELS - 10)
    for _ in range(3):
        replay.now += 1 / 15
        for assignment in replay.tracker.assign([large, small], now=replay.now):
            if assignment.embed:
                assignment.track.observe(matched(BLAIR), face=assignment.face, now=replay.now)
    plan = replay.tracker.detection_plan(now=replay.now + 1 / 15, frame_side=480)
    assert plan.scale == REDUCED_SCALE < 0.5  # a quarter of the frame's pixels or fewer, whatever the faces
    assert plan.near == [small.box]  # only the face too small for it is looked at in its own place
    # A small photo is reduced no further than MIN_REDUCED_SIDE on its shorter side.
    assert replay.tracker.detection_plan(now=replay.now + 2 / 15, frame_side=250).scale * 250 == MIN_REDUCED_SIDE
    assert replay.tracker.detection_plan(now=replay.now + 3 / 15, frame_side=100).scale == 1.0


def test_a_connection_is_ranked_by_its_answers_of_the_last_second():
    tracker = FaceTracker(clock=lambda: 0.0)
    for i in range(15):
        tracker.answered(now=i / 15)
    assert tracker.served_lately(now=14 / 15) == 15
    assert tracker.served_lately(now=SERVED_SECONDS + 5.5 / 15) == 9  # the first six fell out of the window
    assert tracker.served_lately(now=10.0) == 0
