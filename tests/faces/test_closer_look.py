"""A tracked face's closer look (faces.engine FaceEngine.detect_faces_near): after a reduced pass,
the box and points an embedding starts from. Real detector and embedder on real photos pasted on a
webcam-sized canvas, moving, with fresh noise per frame."""

from __future__ import annotations

import numpy as np
import pytest

from faces.engine import get_engine
from faces.engine.pipeline import ANCHOR_GRID, NEAR_FACE_PIXELS, REFINE_CONTEXT
from faces.images import load
from recognition.tracking import REDUCED_SCALE, iou
from tests.video import moving_face_frames


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / np.linalg.norm(vector)


@pytest.mark.parametrize("identity", ["Tony_Blair", "Colin_Powell", "Angelina_Jolie"])
def test_a_closer_look_at_a_large_face_embeds_it_as_a_whole_frame_does_for_a_fraction_of_the_pixels(
        manifest, identity, monkeypatch):
    engine = get_engine()
    seen: list[tuple[int, int]] = []
    detect_at = engine.detector.detect_at

    def recording(image, *, scale):
        seen.append((round(image.shape[1] * scale), round(image.shape[0] * scale)))
        return detect_at(image, scale=scale)

    frames = moving_face_frames([manifest[identity][4].path], frames=8, seed=3)
    closer_agreement, rough_agreement = [], []
    for frame in frames:
        pixels = load(frame, index=0).pixels
        whole = engine.detect_faces(pixels)[0]
        (reference,) = engine.embed_detected(pixels, [whole])
        reduced = max(engine.detect_faces(pixels, scale=REDUCED_SCALE), key=lambda face: iou(face.box, whole.box))
        monkeypatch.setattr(engine.detector, "detect_at", recording)
        seen.clear()
        looked = max(engine.detect_faces_near(pixels, reduced.box, context=REFINE_CONTEXT),
                     key=lambda face: iou(face.box, reduced.box))
        monkeypatch.setattr(engine.detector, "detect_at", detect_at)
        assert iou(looked.box, whole.box) >= 0.85
        (closer,) = engine.embed_detected(pixels, [looked])
        (rough,) = engine.embed_detected(pixels, [reduced])
        closer_agreement.append(float(_unit(closer.embedding) @ _unit(reference.embedding)))
        rough_agreement.append(float(_unit(rough.embedding) @ _unit(reference.embedding)))
        # One detector pass, on a window that puts the face at about NEAR_FACE_PIXELS: a fraction of a frame.
        (window,) = seen
        box = reduced.box
        scale = min(1.0, NEAR_FACE_PIXELS / min(box.w, box.h))
        grid = ANCHOR_GRID  # the window's corner snaps to the detector's coarsest stride
        expected = ((1 + 2 * REFINE_CONTEXT) * box.w + grid) * ((1 + 2 * REFINE_CONTEXT) * box.h + grid) * scale ** 2
        assert window[0] * window[1] <= 1.1 * expected
        height, width = pixels.shape[:2]
        assert window[0] * window[1] < width * height / 2
    # As close to the whole frame's embedding as consecutive frames of a video are to each other
    # (0.99+), and on the whole closer than the reduced pass's own box gets.
    assert min(closer_agreement) >= 0.99
    assert np.mean(closer_agreement) > np.mean(rough_agreement)
