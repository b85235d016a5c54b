"""Enrolment quality gates: is this face good enough to be someone's reference?

A poor reference hurts twice: the person is missed, and a blurry or turned face scores high
against many strangers. Each gate measures one thing and refuses with a reason a client can act
on. The limits are settings (FACEPORTAL_ENROL_*); the measures are returned with every verdict.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import cv2
import numpy as np
from django.conf import settings

from faces.engine.alignment import five_point_predictor
from faces.engine.base import DetectedFace

SHARPNESS_SIDE = 128  # the face is resized to this before measuring, so big and small faces compare

TOO_SMALL = "face_too_small"
TOO_BLURRED = "face_too_blurred"
NOT_FRONTAL = "face_not_frontal"

MESSAGES = {
    TOO_SMALL: "the face is too small ({value:.0f} px across; at least {limit:.0f} needed)",
    TOO_BLURRED: "the face is too blurred (sharpness {value:.0f}; at least {limit:.0f} needed)",
    NOT_FRONTAL: "the face is turned too far from the camera (yaw {value:.2f}; at most {limit:.2f})",
}


@dataclass
class Quality:
    reason: str | None  # None: good enough
    message: str | None
    measures: dict[str, float] = field(default_factory=dict)


def _landmarks(image_bgr: np.ndarray, face: DetectedFace) -> np.ndarray:
    """dlib's five points (eye corners and the base of the nose), whatever the detector was."""
    import dlib

    predictor = five_point_predictor()
    box = face.box
    # The predictor reads pixels around the box only: converting that region, not the whole
    # photo, saves a full-image copy per face (milliseconds on a large photo).
    margin = max(box.w, box.h)
    height, width = image_bgr.shape[:2]
    left, top = max(0, box.x - margin), max(0, box.y - margin)
    right, bottom = min(width, box.x + box.w + margin), min(height, box.y + box.h + margin)
    rgb = np.ascontiguousarray(image_bgr[top:bottom, left:right, ::-1])
    shape = predictor(rgb, dlib.rectangle(box.x - left, box.y - top, box.x - left + box.w, box.y - top + box.h))
    return np.array([[shape.part(i).x + left, shape.part(i).y + top] for i in range(5)], dtype=np.float64)


def yaw_ratio(points: np.ndarray) -> float:
    """How far the nose sits sideways from between the eyes, in eye distances (0 = frontal).

    Points 0-1 are one eye's corners, 2-3 the other's, 4 the base of the nose. Measured along the
    line through the eyes, so a tilted head (roll) does not count as turned.
    """
    eye_a, eye_b = points[0:2].mean(axis=0), points[2:4].mean(axis=0)
    axis = eye_b - eye_a
    distance = float(np.hypot(*axis))
    if distance < 1e-6:
        return math.inf
    middle = (eye_a + eye_b) / 2
    return abs(float(np.dot(points[4] - middle, axis / distance))) / distance


def sharpness(image_bgr: np.ndarray, face: DetectedFace) -> float:
    """Variance of the Laplacian of the face, resized to a fixed size: low means blurred."""
    box = face.box
    crop = image_bgr[max(0, box.y): box.y + box.h, max(0, box.x): box.x + box.w]
    if crop.size == 0:
        return 0.0
    gray = cv2.cvtColor(crop, cv2.COLOR_BGR2GRAY)
    gray = cv2.resize(gray, (SHARPNESS_SIDE, SHARPNESS_SIDE), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(gray, cv2.CV_64F).var())


def assess(image_bgr: np.ndarray, face: DetectedFace) -> Quality:
    """The first gate the face fails (size, then blur, then pose), with all measures."""
    size = float(min(face.box.w, face.box.h))
    measures = {"size": size}
    if size < settings.FACEPORTAL_ENROL_MIN_FACE_PIXELS:
        return _refuse(TOO_SMALL, size, settings.FACEPORTAL_ENROL_MIN_FACE_PIXELS, measures)
    measures["sharpness"] = round(sharpness(image_bgr, face), 1)
    if measures["sharpness"] < settings.FACEPORTAL_ENROL_MIN_SHARPNESS:
        return _refuse(TOO_BLURRED, measures["sharpness"], settings.FACEPORTAL_ENROL_MIN_SHARPNESS, measures)
    measures["yaw"] = round(yaw_ratio(_landmarks(image_bgr, face)), 3)
    if measures["yaw"] > settings.FACEPORTAL_ENROL_MAX_YAW:
        return _refuse(NOT_FRONTAL, measures["yaw"], settings.FACEPORTAL_ENROL_MAX_YAW, measures)
    return Quality(reason=None, message=None, measures=measures)


def burst_rank(measures: dict[str, float]) -> tuple[float, float]:
    """How good a reference a face that passed the gates is, for keeping the best of a burst.

    Sharpness first: frames of one burst share the light and the distance, and a head turning
    between frames is what blurs them. Size breaks ties. Pose is not ranked: the gates already
    refused a face turned too far, and a slight turn is the variety a burst is taken for.
    """
    return measures.get("sharpness", 0.0), measures.get("size", 0.0)


def _refuse(reason: str, value: float, limit: float, measures: dict[str, float]) -> Quality:
    return Quality(reason=reason, message=MESSAGES[reason].format(value=value, limit=limit), measures=measures)
