"""Webcam-like video from still photos: a photo pasted on a 640x480 canvas, moving a few pixels a
frame, with fresh noise on every frame (no two frames alike). Used by the socket tests and
`bench/ws.py`, so both measure the same kind of video."""

from __future__ import annotations

import math
from pathlib import Path

import cv2
import numpy as np

CANVAS = (640, 480)  # width, height
PHOTO_SIDE = 440  # the pasted photo's longest side: its face is large, as in front of a webcam


def _background(rng: np.random.Generator) -> np.ndarray:
    """A plain room-like gradient (no faces in it)."""
    width, height = CANVAS
    base = rng.integers(70, 150, size=3)
    ramp = np.linspace(0.8, 1.2, width)[None, :, None]
    return np.clip(np.ones((height, width, 3)) * base * ramp, 0, 255).astype(np.uint8)


def _photo(path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    if image is None:
        raise ValueError(f"cannot read {path}")
    scale = PHOTO_SIDE / max(image.shape[:2])
    return cv2.resize(image, (round(image.shape[1] * scale), round(image.shape[0] * scale)),
                      interpolation=cv2.INTER_AREA)


def moving_face_frames(photos: list[Path], *, frames: int, seed: int, start_frame: int = 0,
                       step_pixels: float = 3.0, noise: float = 6.0, quality: int = 80,
                       frames_per_photo: int = 0) -> list[bytes]:
    """`frames` JPEG frames; the face drifts `step_pixels` a frame along a slow loop. With several
    `photos`, the next one comes in every `frames_per_photo` frames (0: the first photo only)."""
    rng = np.random.default_rng(seed)
    background = _background(rng)
    pasted = [_photo(path) for path in photos]
    width, height = CANVAS
    out = []
    for i in range(start_frame, start_frame + frames):
        photo = pasted[(i // frames_per_photo) % len(pasted)] if frames_per_photo else pasted[0]
        ph, pw = photo.shape[:2]
        # A loop of radius r covered at step_pixels a frame: positions change every frame.
        radius = 40.0
        angle = i * step_pixels / radius
        x = int((width - pw) / 2 + radius * math.cos(angle))
        y = int((height - ph) / 2 + radius * 0.6 * math.sin(angle))
        x, y = min(max(0, x), width - pw), min(max(0, y), height - ph)
        frame = background.copy()
        frame[y:y + ph, x:x + pw] = photo
        frame = np.clip(frame.astype(np.float32) + rng.normal(0, noise, frame.shape), 0, 255).astype(np.uint8)
        ok, encoded = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
        assert ok
        out.append(encoded.tobytes())
    return out
