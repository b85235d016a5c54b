"""Aligner role: turn a detection into the chip the embedder was trained on, in one warp."""

from __future__ import annotations

import cv2
import numpy as np

from faces.engine.base import DetectedFace
from faces.engine.cache import thread_model
from faces.engine.weights import packaged_dlib_file


class DlibLandmarkAligner:
    """dlib's own 5-point alignment (`get_face_chip`), the one its ResNet was trained with.

    It works from any detector's box; on LFW it is what gives dlib's reported 99.38%.
    """

    def __init__(self, *, size: int = 150, padding: float = 0.25):
        self.size = size
        self.padding = padding

    def _predictor(self):
        import dlib

        path = str(packaged_dlib_file("shape_predictor_5_face_landmarks.dat"))
        return thread_model("aligner:dlib5", lambda: dlib.shape_predictor(path))

    def load(self) -> None:
        self._predictor()

    def align(self, image_bgr: np.ndarray, faces: list[DetectedFace]) -> list[np.ndarray]:
        import dlib

        if not faces:
            return []
        predictor = self._predictor()
        rgb = np.ascontiguousarray(image_bgr[:, :, ::-1])
        shapes = dlib.full_object_detections()
        for face in faces:
            box = face.box
            shapes.append(predictor(rgb, dlib.rectangle(box.x, box.y, box.x + box.w, box.y + box.h)))
        chips = dlib.get_face_chips(rgb, shapes, size=self.size, padding=self.padding)
        return [np.ascontiguousarray(np.asarray(chip)[:, :, ::-1]) for chip in chips]


class EyeAligner:
    """Similarity transform that puts the eyes at fixed places, for models trained on such crops."""

    # Eye centres as fractions of the output (ArcFace-style template).
    LEFT = (0.34, 0.40)
    RIGHT = (0.66, 0.40)

    def __init__(self, *, size: tuple[int, int]):
        self.width, self.height = size

    def load(self) -> None:
        return None

    def _square_crop(self, image_bgr: np.ndarray, face: DetectedFace) -> np.ndarray:
        box = face.box
        side = int(max(box.w, box.h) * 1.1)
        cx, cy = box.x + box.w / 2, box.y + box.h / 2
        matrix = np.array([[self.width / side, 0, self.width / 2 - cx * self.width / side],
                           [0, self.height / side, self.height / 2 - cy * self.height / side]], dtype=np.float32)
        return cv2.warpAffine(image_bgr, matrix, (self.width, self.height), flags=cv2.INTER_LINEAR)

    def align(self, image_bgr: np.ndarray, faces: list[DetectedFace]) -> list[np.ndarray]:
        chips = []
        for face in faces:
            if face.left_eye is None or face.right_eye is None:
                chips.append(self._square_crop(image_bgr, face))
                continue
            # Order eyes by x in the image so the template never mirrors the face.
            (ax, ay), (bx, by) = sorted([face.left_eye, face.right_eye])
            src = np.array([[ax, ay], [bx, by]], dtype=np.float32)
            dst = np.array(
                [[self.LEFT[0] * self.width, self.LEFT[1] * self.height],
                 [self.RIGHT[0] * self.width, self.RIGHT[1] * self.height]],
                dtype=np.float32,
            )
            matrix, _ = cv2.estimateAffinePartial2D(src, dst)
            if matrix is None:
                chips.append(self._square_crop(image_bgr, face))
                continue
            chips.append(cv2.warpAffine(image_bgr, matrix, (self.width, self.height), flags=cv2.INTER_LINEAR))
        return chips
