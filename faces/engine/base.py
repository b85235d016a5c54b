from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class FaceBox:
    x: int
    y: int
    w: int
    h: int

    def as_dict(self) -> dict[str, int]:
        return {"x": self.x, "y": self.y, "w": self.w, "h": self.h}

    @property
    def area(self) -> int:
        return self.w * self.h


@dataclass(frozen=True)
class DetectedFace:
    box: FaceBox  # in the coordinates of the original image
    confidence: float
    # (x, y) of each eye in original coordinates, when the detector gives them.
    left_eye: tuple[float, float] | None = None
    right_eye: tuple[float, float] | None = None
    # Five points as seen in the image, when the detector gives them: eye on the left, eye on the
    # right, nose tip, mouth corner on the left, mouth corner on the right (original coordinates).
    landmarks: tuple[tuple[float, float], ...] | None = None


@dataclass
class EmbeddedFace:
    detection: DetectedFace
    embedding: np.ndarray  # L2-normalised float32
    crop_jpeg: bytes = b""  # small context crop around the face, for thumbnails and re-embedding
    extra: dict = field(default_factory=dict)


# The three roles FaceEngine is built from (one class each: detection.py, alignment.py, embedder.py).
# Each loads its model lazily, once per engine thread, and `load()` forces that (warm-up).


class Detector(Protocol):
    name: str

    def load(self) -> None: ...

    def detect(self, image_bgr: np.ndarray) -> list[DetectedFace]: ...


class Aligner(Protocol):
    def load(self) -> None: ...

    def align(self, image_bgr: np.ndarray, faces: list[DetectedFace]) -> list[np.ndarray]: ...


class Embedder(Protocol):
    name: str
    cache_key: str  # the model cache's key; readiness looks for it there

    @property
    def dimension(self) -> int: ...

    @property
    def input_size(self) -> tuple[int, int]: ...

    def load(self) -> None: ...

    def embed(self, chips_bgr: list[np.ndarray]) -> np.ndarray: ...
