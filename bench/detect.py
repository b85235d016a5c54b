"""Detection cost per image on one core: RetinaFace-MobileNet0.25 on ONNX Runtime against dlib's HOG.

Both run through the engine's own detector wrapper (bounded copy, boxes mapped back), pinned to one
CPU, on the same images one after the other. Prints a Markdown table of median ms and faces found,
and the ratio HOG / RetinaFace (how many times faster the default is).

    python bench/detect.py [--rounds 15]

The data behind docs/DETECTOR.md (slow, run by hand, not by `make bench`):

    python bench/detect.py --thresholds [--sheet boxes.png]   # scores of real and false boxes, sweep
    python bench/detect.py --alignment                        # landmarks vs dlib predictor vs HOG
    python bench/detect.py --template [--photos 400]          # the chip template, from ../lfw-train
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


def _bounded(image, max_side: int = 800):
    import cv2

    height, width = image.shape[:2]
    if max(height, width) <= max_side:
        return image
    scale = max_side / max(height, width)
    return cv2.resize(image, (round(width * scale), round(height * scale)), interpolation=cv2.INTER_AREA)


def thresholds(sheet: str | None) -> None:
    """Both passes at a 0.3 floor on every photo; the boxes to look at; the threshold sweep."""
    import csv

    import cv2
    import numpy as np
    from django.conf import settings

    from bench.common import manifest
    from faces.engine.config import deepface_home
    from faces.engine.retinaface import Detections, RetinaFaceOnnx, drop_straddling, merge
    from faces.engine.retinaface_weights import require_onnx

    model = RetinaFaceOnnx(str(require_onnx(deepface_home())), score_threshold=0.3)
    with open(faces_dir() / "_group" / "groups.csv", newline="") as handle:
        expected = {row["file"]: int(row["faces"].split()[0]) for row in csv.DictReader(handle)}
    passes = {}
    for identity, photos in manifest().items():
        for photo in photos:
            image = _bounded(cv2.imread(str(photo.path)))
            height, width = image.shape[:2]
            larger = cv2.resize(image, (width * 2, height * 2), interpolation=cv2.INTER_LINEAR)
            passes[photo.path] = (identity, image, model.run(image), model.run(larger).scaled(0.5))

    def above(found: Detections, floor: float) -> Detections:
        keep = found.scores >= floor
        return Detections(found.boxes[keep], found.scores[keep], found.landmarks[keep])

    subjects = [float(first.scores.max()) if len(first) else 0.0
                for identity, _, first, _ in passes.values() if not identity.startswith("_")]
    print(f"portrait subjects: {len(subjects)}, lowest top score {min(subjects):.3f}\n")
    print("boxes to look at (not a portrait's top box), score >= 0.5: path, pass, score, width")
    tiles = []
    for path, (identity, image, first, second) in passes.items():
        small = max(image.shape[:2]) < settings.FACEPORTAL_RETINAFACE_UPSCALE_BELOW
        base = above(first, 0.3)
        merged = merge(base, above(second, 0.5)) if small else base  # merge appends the 2x-only faces
        candidates = [("1x", box, score) for box, score in zip(first.boxes, first.scores, strict=True) if score >= 0.5]
        if not identity.startswith("_"):
            candidates = candidates[1:]
        candidates += [("2x", merged.boxes[i], merged.scores[i]) for i in range(len(base), len(merged))]
        for which, box, score in candidates:
            print(f"  {path.relative_to(faces_dir())}  {which}  {score:.3f}  {box[2] - box[0]:.0f}px")
            x0, y0, x1, y1 = (int(round(v)) for v in box)
            pad = (x1 - x0) // 3
            crop = image[max(0, y0 - pad):y1 + pad, max(0, x0 - pad):x1 + pad].copy()
            if crop.size:
                tile = cv2.resize(crop, (120, 120))
                cv2.putText(tile, f"{len(tiles)} {score:.2f} {which}", (2, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.4,
                            (0, 0, 255), 1)
                tiles.append(tile)
    if sheet and tiles:
        tiles += [np.zeros_like(tiles[0])] * (-len(tiles) % 10)
        cv2.imwrite(sheet, np.vstack([np.hstack(tiles[i:i + 10]) for i in range(0, len(tiles), 10)]))
        print(f"contact sheet: {sheet}")
    rows = []
    for first_floor in (0.8, 0.85, 0.88, 0.9):
        for second_floor in (0.5, 0.55, 0.6, 0.7, 0.9, None):
            missed = no_face = 0
            groups = {}
            for path, (identity, image, first, second) in passes.items():
                found = above(first, first_floor)
                if second_floor is not None and max(image.shape[:2]) < settings.FACEPORTAL_RETINAFACE_UPSCALE_BELOW:
                    found = merge(found, above(second, second_floor))
                found = drop_straddling(found)
                if identity == "_noface":
                    no_face += len(found)
                elif identity == "_group":
                    groups[path.name] = len(found)
                elif not len(found):
                    missed += 1
            counts = " / ".join(f"{groups[name]}" for name in expected)
            rows.append([first_floor, "no 2x pass" if second_floor is None else second_floor, missed, no_face,
                         counts, "yes" if groups == expected else "no"])
    table("RetinaFace thresholds on ../shared/faces", ["score", "2x-pass score", "portraits missed",
          "boxes on no-face photos", "group faces (" + " / ".join(f"{v}" for v in expected.values()) + ")",
          "all groups right"], rows,
          note=f"2x pass for images under {settings.FACEPORTAL_RETINAFACE_UPSCALE_BELOW} px; straddle rule on.")


def alignment() -> None:
    """Rank-1 and genuine/impostor separation for three ways to make dlib's chip."""
    import cv2
    import numpy as np
    from django.conf import settings

    from bench.common import STRANGERS, people
    from faces.engine.alignment import DlibLandmarkAligner, FivePointAligner
    from faces.engine.detection import DeepFaceDetector
    from faces.engine.embedder import DeepFaceEmbedder
    from faces.engine.pipeline import prominence
    from faces.index.base import cosine_to_similarity

    retina = DeepFaceDetector("retinaface-onnx", max_side=settings.FACEPORTAL_DETECT_MAX_SIDE, min_side=400)
    hog = DeepFaceDetector("dlib", max_side=settings.FACEPORTAL_DETECT_MAX_SIDE, min_side=400)
    embedder = DeepFaceEmbedder("Dlib")
    ways = {
        "RetinaFace + its 5 landmarks": (retina, FivePointAligner()),
        "RetinaFace + dlib predictor on its box": (retina, DlibLandmarkAligner()),
        "HOG + dlib predictor (previous default)": (hog, DlibLandmarkAligner()),
    }
    identities, vectors = [], {name: [] for name in ways}
    for identity, photos in people().items():
        for photo in photos:
            image = cv2.imread(str(photo.path))
            height, width = image.shape[:2]
            for name, (detector, aligner) in ways.items():
                faces = [face for face in detector.detect(image)
                         if min(face.box.w, face.box.h) >= settings.FACEPORTAL_MIN_FACE_PIXELS]
                if not faces:
                    vectors[name].append(np.full(128, np.nan, np.float32))
                    continue
                face = max(faces, key=lambda f: prominence(f, width, height))
                vectors[name].append(embedder.embed(aligner.align(image, [face]))[0])
            identities.append(identity)
            log(f"alignment: {len(identities)} photos")
    ids = np.array(identities)
    rows = []
    for name, found in vectors.items():
        embeddings = np.array(found)
        similarity = cosine_to_similarity(embeddings @ embeddings.T)
        gallery = {}
        for k, identity in enumerate(ids):
            if identity not in STRANGERS:
                gallery.setdefault(identity, k)
        columns, names = np.array(list(gallery.values())), np.array(list(gallery))
        probes = [k for k in range(len(ids)) if ids[k] not in STRANGERS and k not in gallery.values()]
        top = [names[np.nanargmax(np.nan_to_num(similarity[k, columns], nan=-1))] for k in probes]
        best = [np.nanmax(similarity[k, columns]) for k in probes]
        rank1 = sum(t == ids[k] for t, k in zip(top, probes, strict=True))
        named = sum(t == ids[k] and b >= 0.96 for t, b, k in zip(top, best, probes, strict=True))
        impostor = np.mean([np.nanmax(np.where(names != ids[k], similarity[k, columns], np.nan)) >= 0.96
                            for k in probes])
        strangers = max(np.nanmax(similarity[k, columns]) for k in range(len(ids)) if ids[k] in STRANGERS)
        upper = np.triu_indices(len(ids), 1)
        same, scores = (ids[:, None] == ids[None, :])[upper], similarity[upper]
        valid = ~np.isnan(scores)
        genuine, impostors = scores[same & valid], scores[~same & valid]
        cuts = np.unique(scores[valid])
        far = np.array([(impostors >= t).mean() for t in cuts])
        frr = np.array([(genuine < t).mean() for t in cuts])
        at = int(np.argmin(np.abs(far - frr)))
        dprime = (genuine.mean() - impostors.mean()) / np.sqrt((genuine.var() + impostors.var()) / 2)
        rows.append([name, int(np.isnan(embeddings[:, 0]).sum()), f"{rank1}/{len(probes)}", rank1 / len(probes),
                     named / len(probes), float(impostor), 100 * (far[at] + frr[at]) / 2,
                     100 * float((genuine > impostors.max()).mean()), float(dprime), float(strangers)])
    table("Alignment for the Dlib embedder on ../shared/faces",
          ["detector + alignment", "no face", "rank-1", "rank-1 rate", "named at 0.96", "impostor >= 0.96",
           "EER %", "genuine accepted at 0 false accepts %", "d'", "strangers' best"], rows,
          note="Protocol of tests/faces/test_recognition_accuracy.py; EER and d' over all pairs of photos.")


def template(photos: int) -> None:
    """Where RetinaFace's five points land in dlib's own chips (padding 0.25), on ../lfw-train."""
    import math
    import random

    import cv2
    import dlib
    import numpy as np

    from faces.engine.config import deepface_home
    from faces.engine.retinaface import RetinaFaceOnnx
    from faces.engine.retinaface_weights import require_onnx
    from faces.engine.weights import packaged_dlib_file

    model = RetinaFaceOnnx(str(require_onnx(deepface_home())))
    predictor = dlib.shape_predictor(str(packaged_dlib_file("shape_predictor_5_face_landmarks.dat")))
    paths = sorted((faces_dir().parent / "lfw-train").glob("*/*.jpg"))
    random.Random(0).shuffle(paths)
    points = []
    for path in paths[:photos]:
        image = cv2.imread(str(path))
        found = model.detect(image)
        if not len(found):
            continue
        height, width = image.shape[:2]
        centres = (found.boxes[:, :2] + found.boxes[:, 2:]) / 2
        i = int(np.argmin(np.hypot(centres[:, 0] - width / 2, centres[:, 1] - height / 2)))
        x0, y0, x1, y1 = (int(v) for v in found.boxes[i])
        shape = predictor(np.ascontiguousarray(image[:, :, ::-1]), dlib.rectangle(x0, y0, x1, y1))
        details = dlib.get_face_chip_details(shape, 150, 0.25)
        rect, angle = details.rect, details.angle
        cx, cy = (rect.left() + rect.right()) / 2, (rect.top() + rect.bottom()) / 2

        def turned(x, y, cx=cx, cy=cy, angle=angle):
            return (cx + (x - cx) * math.cos(angle) - (y - cy) * math.sin(angle),
                    cy + (x - cx) * math.sin(angle) + (y - cy) * math.cos(angle))

        corners = np.float32([turned(rect.left(), rect.top()), turned(rect.right(), rect.top()),
                              turned(rect.right(), rect.bottom())])
        matrix = cv2.getAffineTransform(corners, np.float32([[0, 0], [149, 0], [149, 149]]))
        points.append(found.landmarks[i] @ matrix[:, :2].T + matrix[:, 2])
    mean = np.mean(points, axis=0)
    print(f"{len(points)} faces; mean chip position of eye, eye, nose, mouth, mouth:")
    print(np.round(mean, 2).tolist())
    print("spread (std):", np.round(np.std(points, axis=0), 2).tolist())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--thresholds", action="store_true")
    parser.add_argument("--sheet", help="with --thresholds: write the boxes to look at as one image")
    parser.add_argument("--alignment", action="store_true")
    parser.add_argument("--template", action="store_true")
    parser.add_argument("--photos", type=int, default=400)
    args = parser.parse_args()
    if args.thresholds or args.alignment or args.template:
        setup_django()
        from django.conf import settings

        from faces.engine.config import deepface_home
        from faces.engine.weights import prepare_deepface_home

        prepare_deepface_home(deepface_home())
        if args.thresholds:
            thresholds(args.sheet)
        if args.alignment:
            alignment()
        if args.template:
            template(args.photos)
        return
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})  # one core, as one engine worker
    setup_django()
    from django.conf import settings

    from faces.engine.config import deepface_home
    from faces.engine.detection import DeepFaceDetector
    from faces.engine.weights import prepare_deepface_home

    prepare_deepface_home(deepface_home())
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
