"""Detection cost per image on one core: RetinaFace-MobileNet0.25 on ONNX Runtime against dlib's HOG.

Both run through the engine's own detector wrapper (bounded copy, boxes mapped back), pinned to one
CPU, on the same images one after the other. Prints a Markdown table of median ms and faces found,
and the ratio HOG / RetinaFace (how many times faster the new default is).

    python bench/detect.py [--rounds 15]
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import faces_dir, log, median, setup_django, table  # noqa: E402

DETECTORS = ("retinaface-onnx", "dlib")


def images() -> dict[str, object]:
    import cv2
    import numpy as np

    from bench.latency import test_images

    decoded = {
        name: cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR)
        for name, data in test_images().items()
    }
    decoded["600 px group selfie (7 faces)"] = cv2.imread(str(faces_dir() / "_group" / "selfie_many_people.jpg"))
    return decoded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core, as one engine worker
    setup_django()
    from django.conf import settings

    from faces.engine.detection import DeepFaceDetector
    from faces.engine.weights import prepare_deepface_home

    prepare_deepface_home(settings.DEEPFACE_HOME)
    pictures = images()
    detectors = {
        name: DeepFaceDetector(name, max_side=settings.FACEPORTAL_DETECT_MAX_SIDE, min_side=400) for name in DETECTORS
    }
    for detector in detectors.values():
        detector.load()
    results: dict[tuple[str, str], tuple[float, float, int]] = {}
    for picture, image in pictures.items():
        for name, detector in detectors.items():
            log(f"{name} on {picture}")
            faces = detector.detect(image)  # warm-up: first-call allocations are not the steady state
            times, cpu = [], []
            for _ in range(args.rounds):
                started, started_cpu = time.perf_counter(), time.thread_time()
                detector.detect(image)
                times.append((time.perf_counter() - started) * 1000)
                cpu.append((time.thread_time() - started_cpu) * 1000)
            results[(picture, name)] = (median(times), median(cpu), len(faces))
    rows = []
    for picture, image in pictures.items():
        onnx_ms, onnx_cpu, onnx_faces = results[(picture, "retinaface-onnx")]
        hog_ms, hog_cpu, hog_faces = results[(picture, "dlib")]
        size = f"{image.shape[1]}x{image.shape[0]}"
        rows.append([picture, size, onnx_ms, onnx_cpu, onnx_faces, hog_ms, hog_cpu, hog_faces, hog_ms / onnx_ms])
    table(
        "Detection, median ms per image on one core",
        ["image", "size", "retinaface-onnx ms", "CPU ms", "faces", "dlib HOG ms (previous default)", "CPU ms",
         "faces", "HOG / RetinaFace"],
        rows,
        note=(f"{args.rounds} rounds each after one warm-up, one CPU (sched_setaffinity), ONNX Runtime with one "
              "intra-op thread. CPU ms: this thread's CPU time, less sensitive than wall time to other load. "
              "Both through the engine's DeepFaceDetector: images above "
              f"{settings.FACEPORTAL_DETECT_MAX_SIDE} px are shrunk first; HOG upsamples images under 400 px "
              f"(and once more inside dlib); RetinaFace adds a 2x pass only under "
              f"{settings.FACEPORTAL_RETINAFACE_UPSCALE_BELOW} px."),
    )


if __name__ == "__main__":
    main()
