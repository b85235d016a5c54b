"""Embedding a labelled photo folder (LFW layout) once, cached, for calibration and the open-set bench.

The folder has `manifest.csv` (`path,identity,...`). Every face of every photo is embedded with
the current engine; the cache (one .npz per model and detector under var/) makes re-runs free and
an interrupted run resumes from its last checkpoint.
"""

from __future__ import annotations

import csv
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
from django.conf import settings

CHECKPOINT_EVERY = 200


def default_lfw_dir() -> Path:
    configured = os.environ.get("FACEPORTAL_LFW_DIR")
    if configured:
        return Path(configured)
    return Path(settings.BASE_DIR).parent / "shared" / "lfw-train"


@dataclass
class EmbeddedSet:
    """Photos of a folder and the faces the engine found in them.

    `face_photo[i]` is the photo row of face i; `chosen[p]` is the face the engine's prominence rule
    picks for photo p (the first face it returns), or -1 when none was found.
    """

    paths: list[str]
    identities: list[str]
    face_photo: np.ndarray  # (F,) int
    boxes: np.ndarray  # (F, 4) x, y, w, h
    confidences: np.ndarray  # (F,)
    embeddings: np.ndarray  # (F, D) float32, L2-normalised
    model: str
    detector: str
    # The second model's embedding of each photo's chosen face (other rows zero); None: not asked.
    second: np.ndarray | None = None

    @property
    def chosen(self) -> np.ndarray:
        chosen = np.full(len(self.paths), -1, dtype=np.int64)
        # Faces of a photo are stored most prominent first; keep the first per photo.
        for face in range(len(self.face_photo) - 1, -1, -1):
            chosen[self.face_photo[face]] = face
        return chosen

    def photo_embeddings(self) -> tuple[np.ndarray, np.ndarray]:
        """(photo rows with a face, their chosen embeddings)."""
        chosen = self.chosen
        rows = np.flatnonzero(chosen >= 0)
        return rows, self.embeddings[chosen[rows]]


def read_manifest(folder: Path) -> list[tuple[str, str]]:
    with open(folder / "manifest.csv", newline="") as handle:
        return [(row["path"], row["identity"]) for row in csv.DictReader(handle)]


def cache_path(*, model: str, detector: str, second: str = "") -> Path:
    # Under the checkout's var/, not FACEPORTAL_VAR_DIR: `make bench` points that at a scratch folder,
    # and the embeddings of 7,047 photos are worth keeping between runs.
    root = os.environ.get("FACEPORTAL_CALIBRATION_CACHE") or str(Path(settings.BASE_DIR) / "var" / "calibration")
    if second:  # the second model's own file, keyed by the first's so both index the same faces
        return Path(root) / f"lfw-{model}-{detector}.{second}.npz".lower()
    return Path(root) / f"lfw-{model}-{detector}.npz".lower()


def _save(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp.npz")
    np.savez(tmp, **data)
    os.replace(tmp, path)


def embed_folder(
    *, folder: Path, progress: Callable[[int, int], None] | None = None, limit: int | None = None,
    with_second: bool = False,
) -> EmbeddedSet:
    """Embed every photo in `folder` (resuming from the cache); faces most prominent first."""
    from faces.engine import get_engine

    engine = get_engine()
    rows = read_manifest(folder)
    if limit is not None:
        rows = rows[:limit]
    path = cache_path(model=engine.model_name, detector=engine.detector_name)
    done: dict[str, list[tuple[list[int], float, np.ndarray]]] = {}
    dimension = engine.dimension
    if path.exists():
        with np.load(path, allow_pickle=False) as cached:  # each key read once: npz members reload per access
            paths, face_photo = [str(p) for p in cached["paths"]], cached["face_photo"]
            boxes, confidences, embeddings = cached["boxes"], cached["confidences"], cached["embeddings"]
        for photo in paths:
            done[photo] = []
        for face, p in enumerate(face_photo):
            done[paths[p]].append((boxes[face].tolist(), float(confidences[face]), embeddings[face]))

    def snapshot() -> dict:
        paths = list(done)
        face_photo, boxes, confidences, embeddings = [], [], [], []
        for p, photo in enumerate(paths):
            for box, confidence, embedding in done[photo]:
                face_photo.append(p)
                boxes.append(box)
                confidences.append(confidence)
                embeddings.append(embedding)
        return {
            "paths": np.array(paths, dtype=str),
            "face_photo": np.array(face_photo, dtype=np.int64),
            "boxes": np.array(boxes, dtype=np.int64).reshape(-1, 4),
            "confidences": np.array(confidences, dtype=np.float32),
            "embeddings": np.array(embeddings, dtype=np.float32).reshape(-1, dimension),
        }

    todo = [relative for relative, _ in rows if relative not in done]
    since_save = 0
    started = time.perf_counter()
    for n, relative in enumerate(todo, 1):
        image = cv2.imread(str(folder / relative))
        faces = [] if image is None else engine.faces_in(image).faces
        done[relative] = [
            ([f.detection.box.x, f.detection.box.y, f.detection.box.w, f.detection.box.h],
             f.detection.confidence, f.embedding)
            for f in faces
        ]
        since_save += 1
        if since_save >= CHECKPOINT_EVERY:
            _save(path, snapshot())
            since_save = 0
        if progress:
            progress(n, len(todo))
    if since_save or not path.exists():
        _save(path, snapshot())
    del started
    data = snapshot()
    data["second"] = _second_embeddings(folder, data, wanted={relative for relative, _ in rows}) \
        if with_second else None
    index = {photo: p for p, photo in enumerate(data["paths"])}
    # Rows in manifest order, whatever order the cache was filled in.
    order = [index[relative] for relative, _ in rows]
    remap = {old: new for new, old in enumerate(order)}
    keep = np.isin(data["face_photo"], order)
    face_photo = np.array([remap[p] for p in data["face_photo"][keep]], dtype=np.int64)
    sort = np.argsort(face_photo, kind="stable")
    return EmbeddedSet(
        paths=[relative for relative, _ in rows],
        identities=[identity for _, identity in rows],
        face_photo=face_photo[sort],
        boxes=data["boxes"][keep][sort],
        confidences=data["confidences"][keep][sort],
        embeddings=data["embeddings"][keep][sort],
        model=engine.model_name,
        detector=engine.detector_name,
        second=None if data["second"] is None else data["second"][keep][sort],
    )


def _second_embeddings(folder: Path, data: dict, *, wanted: set[str]) -> np.ndarray:
    """The engine's second model on each photo's first (chosen) face, cached in its own file.

    The photo is detected again (deterministic: the same faces, in the same order, as the cached
    boxes say) and the second model embeds the first face; rows of other faces stay zero."""
    from faces.engine import get_engine, map_in_engine_pool
    from faces.engine.alignment import FACENET_MARGIN

    engine = get_engine()
    if engine.second_embedder is None:
        raise RuntimeError("the engine has no second model (FACEPORTAL_SECOND_MODEL)")
    # The aligner's crop is part of the name: a different chip is a different embedding.
    path = cache_path(model=engine.model_name, detector=engine.detector_name,
                      second=f"{engine.second_embedder.name}-box{round(FACENET_MARGIN * 112.5)}"
                      + ("-flip" if engine.config.second_flip else ""))
    paths = [str(p) for p in data["paths"]]
    first_face = {}
    for face in range(len(data["face_photo"]) - 1, -1, -1):
        first_face[int(data["face_photo"][face])] = face
    done: dict[str, np.ndarray] = {}
    if path.exists():
        with np.load(path, allow_pickle=False) as cached:
            done = dict(zip((str(p) for p in cached["paths"]), cached["second"], strict=True))
    dimension = engine.second_embedder.dimension
    since_save = 0

    def save() -> None:
        _save(path, {"paths": np.array(list(done), dtype=str),
                     "second": np.array(list(done.values()), dtype=np.float32).reshape(-1, dimension)})

    def one(p: int) -> np.ndarray:
        relative = paths[p]
        image = cv2.imread(str(folder / relative))
        faces = engine._detect(image)
        box = data["boxes"][first_face[p]].tolist()
        if not faces or [faces[0].box.x, faces[0].box.y, faces[0].box.w, faces[0].box.h] != box:
            raise RuntimeError(f"{relative}: detection differs from the cached embeddings'; remove {path}")
        return engine.second_embeddings(image, faces[:1])[0]

    todo = [p for p, relative in enumerate(paths) if p in first_face and relative not in done and relative in wanted]
    for start in range(0, len(todo), CHECKPOINT_EVERY):
        chunk = todo[start:start + CHECKPOINT_EVERY]
        for p, vector in zip(chunk, map_in_engine_pool(one, chunk), strict=True):  # every engine thread
            done[paths[p]] = vector
        since_save += len(chunk)
        save()
        since_save = 0
    if since_save or not path.exists():
        save()
    out = np.zeros((len(data["face_photo"]), dimension), dtype=np.float32)
    for p, face in first_face.items():
        if paths[p] in done:
            out[face] = done[paths[p]]
    return out
