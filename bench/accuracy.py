"""Accuracy per detector, with the protocol of tests/faces/test_recognition_accuracy.py.

Enrol the first photo of every identity (except the three single-photo identities), recognise every
other photo by its most prominent face, and probe with the three strangers. Same engine code as the
service (`FaceEngine.faces_in`) and the same search (`OrgVectors`, what the embedded index runs).

Run alone: `FACEPORTAL_FACES_DIR=../shared/faces .venv/bin/python bench/accuracy.py [detector...]`.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import STRANGERS, log, people, setup_django, table  # noqa: E402

DETECTORS = ("retinaface-onnx", "dlib", "opencv", "mtcnn", "ssd", "yunet", "retinaface")
THRESHOLDS = (0.94, 0.95, 0.96, 0.97)
# Weights DeepFace would download for these detectors; without them (offline) the detector is skipped.
DETECTOR_WEIGHTS = {
    "ssd": ["res10_300x300_ssd_iter_140000.caffemodel", "deploy.prototxt"],
    "yunet": ["face_detection_yunet_2023mar.onnx"],
    "retinaface": ["retinaface.h5"],
}


def engine_for(detector: str):
    from dataclasses import replace

    from faces.engine import FaceEngine
    from faces.engine.config import EngineConfig

    return FaceEngine(replace(EngineConfig.from_settings(), detector_backend=detector))


def available_detectors(wanted=DETECTORS) -> tuple[list[str], list[str]]:

    from faces.engine.config import deepface_home
    from faces.engine.weights import missing_weights

    usable, skipped = [], []
    for name in wanted:
        missing = missing_weights(deepface_home(), DETECTOR_WEIGHTS.get(name, []))
        if missing:
            skipped.append(f"{name} (weights not available offline: {', '.join(missing)})")
            continue
        try:
            engine_for(name).detector.load()
        except Exception as exc:  # a detector that cannot load here is reported, not fatal
            skipped.append(f"{name} ({type(exc).__name__})")
            continue
        usable.append(name)
    return usable, skipped


def evaluate(detector: str) -> tuple[list[object], dict]:
    from bench.embeddings import embed_photos
    from faces.index.embedded import OrgVectors

    identities = people()
    enrolled = {name: photos[0] for name, photos in identities.items() if name not in STRANGERS}
    probes = [(name, photo) for name, photos in identities.items() if name not in STRANGERS for photo in photos[1:]]
    strangers = [identities[name][0] for name in STRANGERS]
    every = list(enrolled.values()) + [photo for _, photo in probes] + strangers
    engine = engine_for(detector)
    started = time.perf_counter()
    vectors = embed_photos(engine, [photo.path for photo in every])
    seconds_per_image = (time.perf_counter() - started) / len(every)
    by_path = {photo.path: vector for photo, vector in zip(every, vectors, strict=True)}
    missed = sum(1 for vector in vectors if vector is None)

    names = [name for name, photo in enrolled.items() if by_path[photo.path] is not None]
    gallery = OrgVectors(dimension=128, ann_min_faces=10**12)
    gallery.upsert(np.arange(len(names)), np.arange(len(names)),
                   np.stack([by_path[enrolled[name].path] for name in names]))

    correct = 0
    true_match = {t: 0 for t in THRESHOLDS}
    impostor = {t: 0 for t in THRESHOLDS}
    for name, photo in probes:
        vector = by_path[photo.path]
        if vector is None:
            continue
        hits = gallery.search(vector[None], len(names))[0]
        top = hits[0]
        best_impostor = next((hit.similarity for hit in hits if names[hit.face_id] != name), 0.0)
        if names[top.face_id] == name:
            correct += 1
        for t in THRESHOLDS:
            true_match[t] += names[top.face_id] == name and top.similarity >= t
            impostor[t] += best_impostor >= t
    stranger_best = [gallery.search(by_path[p.path][None], 1)[0][0].similarity
                     for p in strangers if by_path[p.path] is not None]
    total = len(probes)
    row = [detector, len(every), missed, f"{correct}/{total}", correct / total]
    row += [true_match[t] / total for t in THRESHOLDS]
    row += [impostor[t] / total for t in THRESHOLDS]
    row += [f"{sum(s >= t for s in stranger_best)}/{len(strangers)}" for t in (0.96,)]
    row += [seconds_per_image * 1000]
    return row, {"paths": [photo.path for photo in every], "vectors": vectors}


def run(detectors=DETECTORS) -> tuple[str, dict]:
    usable, skipped = available_detectors(detectors)
    rows, embeddings = [], {}
    for detector in usable:
        log(f"accuracy: {detector}")
        row, embeddings[detector] = evaluate(detector)
        rows.append(row)
    header = ["detector", "images", "missed detections", "rank-1", "rank-1 rate"]
    header += [f"TMR@{t}" for t in THRESHOLDS] + [f"impostor@{t}" for t in THRESHOLDS]
    header += ["strangers matched @0.96", "ms/image (2 threads)"]
    note = ("Protocol of tests/faces/test_recognition_accuracy.py: first photo of each identity enrolled, the "
            "others recognised by their most prominent face. TMR@t: top-1 is the right person with similarity "
            "≥ t; impostor@t: the best wrong person reaches t (a false match risk); strangers: the three "
            "single-photo identities. Embedder: Dlib ResNet (FACEPORTAL_DLIB_RUNTIME), chips from the detector's "
            "five landmarks, or dlib's 5-point predictor for detectors without them.")
    if skipped:
        note += " Skipped: " + "; ".join(skipped) + "."
    return table("Accuracy per detector (../shared/faces)", header, rows, note=note), embeddings


if __name__ == "__main__":
    setup_django()
    run(tuple(sys.argv[1:]) or DETECTORS)
