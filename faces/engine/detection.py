"""Detector role: a DeepFace detector run on a bounded-size copy, boxes mapped back."""

from __future__ import annotations

import cv2
import numpy as np

from faces.engine.base import DetectedFace, FaceBox
from faces.engine.cache import detector_cache_key, thread_model
from faces.engine.config import EngineConfig
from faces.engine.retinaface import BACKEND_NAME as RETINAFACE_ONNX
from faces.engine.retinaface import RetinaFaceOnnxClient, drop_straddling, register_with_deepface

# Detectors that look at a small image again themselves (at 2x, only when it is small), so the
# engine does not upscale every small image for them.
SELF_SCALING = {RETINAFACE_ONNX}


def _five_points(region) -> tuple[tuple[float, float], ...] | None:
    """DeepFace names points from the person's side; return them in image order, or None."""
    points = [region.right_eye, region.left_eye, getattr(region, "nose", None),
              getattr(region, "mouth_right", None), getattr(region, "mouth_left", None)]
    if any(point is None for point in points):
        return None
    return tuple((float(point[0]), float(point[1])) for point in points)


class DeepFaceDetector:
    """Wraps `deepface` detector classes (`dlib`, `opencv`, `ssd`, `mtcnn`, `retinaface`, `yunet`, …).

    DeepFace's own `extract_faces` pads the image by 50% per side when aligning, so the detector
    scans four times the pixels; we detect on a copy scaled into [min_side, max_side] instead
    and align later from the original pixels.
    """

    def __init__(self, name: str, *, max_side: int, min_side: int, config: EngineConfig | None = None):
        self.name = name
        self.config = config
        self.max_side = max_side
        self.min_side = 0 if name in SELF_SCALING else min_side

    def _model(self):
        from deepface.modules import modeling

        register_with_deepface()

        def build():
            detector_class = modeling.get_model_class("face_detector", self.name)
            return detector_class(self.config) if detector_class is RetinaFaceOnnxClient else detector_class()

        return thread_model(detector_cache_key(self.name), build)

    def load(self) -> None:
        self._model()

    def scale_for(self, height: int, width: int) -> float:
        longest = max(height, width)
        if longest > self.max_side:
            return self.max_side / longest
        if self.min_side and longest < self.min_side:
            return self.min_side / longest
        return 1.0

    def detect(self, image_bgr: np.ndarray) -> list[DetectedFace]:
        height, width = image_bgr.shape[:2]
        scale = self.scale_for(height, width)
        work = image_bgr
        if scale != 1.0:
            interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            work = cv2.resize(image_bgr, (round(width * scale), round(height * scale)), interpolation=interpolation)
        return self._detected(work, scale=scale, width=width, height=height)

    def detect_at(self, image_bgr: np.ndarray, *, scale: float) -> list[DetectedFace]:
        """One pass on a copy scaled by `scale` (below 1: a video frame whose faces are large), never
        the small-image 2x pass, which would cost more than the full-size frame saves."""
        height, width = image_bgr.shape[:2]
        work = image_bgr
        if scale != 1.0:
            work = cv2.resize(image_bgr, (max(1, round(width * scale)), max(1, round(height * scale))),
                              interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
        return self._detected(work, scale=scale, width=width, height=height, one_pass=True)

    def _detected(self, work: np.ndarray, *, scale: float, width: int, height: int,
                  one_pass: bool = False) -> list[DetectedFace]:
        model = self._model()
        if isinstance(model, RetinaFaceOnnxClient):
            # Our own detector: its boxes and points as the network gives them (image order), not
            # through DeepFace's person-side names and back.
            found = drop_straddling(model.model.run(work)) if one_pass else model.model.detect(work)
            raw = []
            for box, score, points in zip(found.boxes, found.scores, found.landmarks, strict=True):
                five = tuple((float(x), float(y)) for x, y in points)
                # The person's left eye is the one on the image's right.
                raw.append((box, float(score), five, (five[1], five[0])))
        else:
            raw = [((region.x, region.y, region.x + region.w, region.y + region.h), float(region.confidence or 0.0),
                    _five_points(region), (region.left_eye, region.right_eye)) for region in model.detect_faces(work)]
        faces = []
        for (bx0, by0, bx1, by1), confidence, points, eyes in raw:
            x0, y0 = max(0, int(round(bx0 / scale))), max(0, int(round(by0 / scale)))
            x1, y1 = min(width, int(round(bx1 / scale))), min(height, int(round(by1 / scale)))
            if x1 <= x0 or y1 <= y0:
                continue
            left_eye, right_eye = (None if eye is None else (eye[0] / scale, eye[1] / scale) for eye in eyes)
            faces.append(DetectedFace(
                box=FaceBox(x0, y0, x1 - x0, y1 - y0),
                confidence=confidence,
                left_eye=left_eye,
                right_eye=right_eye,
                landmarks=None if points is None else tuple((x / scale, y / scale) for x, y in points),
            ))
        return faces
