"""Aligner role: turn a detection into the chip the embedder was trained on, in one warp."""

from __future__ import annotations

import cv2
import numpy as np

from faces.engine.base import DetectedFace
from faces.engine.cache import thread_model
from faces.engine.weights import packaged_dlib_file


def five_point_predictor():
    """dlib's five-point shape predictor, one per engine thread (alignment and the quality gates)."""
    import dlib

    path = str(packaged_dlib_file("shape_predictor_5_face_landmarks.dat"))
    return thread_model("aligner:dlib5", lambda: dlib.shape_predictor(path))


class DlibLandmarkAligner:
    """dlib's own 5-point alignment (`get_face_chip`), the one its ResNet was trained with.

    It works from any detector's box; on LFW it is what gives dlib's reported 99.38%.
    """

    def __init__(self, *, size: int = 150, padding: float = 0.25):
        self.size = size
        self.padding = padding

    def _predictor(self):
        return five_point_predictor()

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


# Where RetinaFace's five points (image order: eyes, nose tip, mouth corners) land in dlib's 150 px
# chip with padding 0.25: their mean position in `get_face_chip` chips of 400 ../shared/lfw-train
# photos, made symmetric about the chip's centre (docs/DETECTOR.md).
DLIB_CHIP_CENTRE = 74.5
DLIB_CHIP_TEMPLATE = np.array(
    [[DLIB_CHIP_CENTRE - 28.2, 45.25], [DLIB_CHIP_CENTRE + 28.2, 45.25], [DLIB_CHIP_CENTRE - 1.2, 77.2],
     [DLIB_CHIP_CENTRE - 23.6, 104.2], [DLIB_CHIP_CENTRE + 23.6, 104.2]],
    dtype=np.float64,
)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares rotation, uniform scale and shift taking src onto dst (Umeyama), as a 2x3 matrix."""
    src_mean, dst_mean = src.mean(axis=0), dst.mean(axis=0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    u, singular, vt = np.linalg.svd(dst_c.T @ src_c / len(src))
    sign = np.eye(2)
    sign[1, 1] = np.sign(np.linalg.det(u @ vt)) or 1.0
    rotation = u @ sign @ vt
    scale = np.trace(np.diag(singular) @ sign) / (src_c**2).sum(axis=1).mean()
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = dst_mean - scale * rotation @ src_mean
    return matrix



class FivePointAligner:
    """dlib's 150 px chip (padding 0.25) from the detector's own five landmarks, in one warp.

    On ../shared/faces with the Dlib embedder this separates people better than dlib's 5-point
    predictor run on RetinaFace's box (EER 0.57% against 1.01%; docs/DETECTOR.md). Faces without
    landmarks (HOG and other detectors) go through dlib's predictor as before.
    """

    def __init__(self, *, size: int = 150):
        self.size = size
        self.template = DLIB_CHIP_TEMPLATE * (size / 150)
        self.fallback = DlibLandmarkAligner(size=size)

    def load(self) -> None:
        self.fallback.load()

    def chip(self, image_bgr: np.ndarray, landmarks) -> np.ndarray:
        matrix = similarity_transform(np.asarray(landmarks, dtype=np.float64), self.template)
        image = image_bgr
        # Shrink a large face by halves first, as dlib's chip extraction does, so the warp samples
        # at most 2 source pixels per chip pixel and does not alias.
        while abs(np.linalg.det(matrix[:, :2])) < 0.25 and min(image.shape[:2]) > 2 * self.size:
            image = cv2.pyrDown(image)
            matrix[:, :2] *= 2
        return cv2.warpAffine(image, matrix, (self.size, self.size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT)

    def align(self, image_bgr: np.ndarray, faces: list[DetectedFace]) -> list[np.ndarray]:
        chips: list[np.ndarray | None] = [
            None if face.landmarks is None else self.chip(image_bgr, face.landmarks) for face in faces
        ]
        missing = [i for i, chip in enumerate(chips) if chip is None]
        if missing:
            for i, chip in zip(missing, self.fallback.align(image_bgr, [faces[i] for i in missing]), strict=True):
                chips[i] = chip
        return chips


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


# FaceNet was trained and evaluated on MTCNN's box plus a margin, cropped without rotation and
# resized to 160x160. RetinaFace's box is within 4% of MTCNN's in size and 1% in position (median,
# 200 ../shared/lfw-train photos), so the same crop from it serves: on 110 LFW identities' pairs it
# separated genuine from impostor pairs best (d' 3.71, MTCNN's own box 3.63; warping the five
# landmarks onto a template, with or without rotation, 3.04-3.22). The margin: 32 px for LFW's
# median face (112 px), kept in proportion to the face.
FACENET_MARGIN = 32 / 112.5


class FacenetAligner:
    """FaceNet's 160 px chip: the detector's box plus a margin in proportion to the face, resized."""

    def __init__(self, *, size: int = 160, margin: float = FACENET_MARGIN):
        self.size = size
        self.margin = margin

    def load(self) -> None:
        return None

    def chip(self, image_bgr: np.ndarray, face: DetectedFace) -> np.ndarray:
        box = face.box
        pad = self.margin * (box.w + box.h) / 2
        x0, y0 = box.x - pad / 2, box.y - pad / 2
        sx, sy = self.size / (box.w + pad), self.size / (box.h + pad)
        image = image_bgr
        scale = 1.0
        # Shrink a large face by halves first, so the resize samples at most 2 pixels per chip pixel.
        while min(sx, sy) * scale < 0.5 and min(image.shape[:2]) > 2 * self.size:
            image = cv2.pyrDown(image)
            scale *= 2
        matrix = np.array([[sx * scale, 0, -x0 * sx], [0, sy * scale, -y0 * sy]], dtype=np.float64)
        return cv2.warpAffine(image, matrix, (self.size, self.size), flags=cv2.INTER_LINEAR,
                              borderMode=cv2.BORDER_CONSTANT)

    def align(self, image_bgr: np.ndarray, faces: list[DetectedFace]) -> list[np.ndarray]:
        return [self.chip(image_bgr, face) for face in faces]
