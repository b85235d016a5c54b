"""dlib's ResNet on ONNX Runtime: the same embeddings as dlib itself, built offline, TensorFlow-free."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import cv2
import dlib
import numpy as np
import pytest

from faces.engine.config import deepface_home
from faces.engine.dlib_onnx import DatFormatError, ensure_onnx, file_sha256, onnx_name, parse_dat, source_path
from faces.engine.dlib_onnx_client import DlibOnnxClient
from faces.engine.embedder import DeepFaceEmbedder, model_class
from faces.engine.weights import packaged_dlib_file, prepare_deepface_home

REPO_ROOT = Path(__file__).resolve().parents[2]
PHOTOS_PER_IDENTITY = 2
DETECT_MAX_SIDE = 640  # HOG without upsampling at this size finds every face of the manifest's photos


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("weights")


@pytest.fixture(scope="module")
def client(weights_dir) -> DlibOnnxClient:
    return DlibOnnxClient(weights_dir=weights_dir)


@pytest.fixture(scope="module")
def chips(manifest) -> list[tuple[str, np.ndarray]]:
    """Every face of two photos of each identity and of every group photo, as dlib's own 150x150 RGB
    chip at padding 0.25 (every identity, pose and group; all 234 photos only cost time)."""
    detector = dlib.get_frontal_face_detector()
    predictor = dlib.shape_predictor(str(packaged_dlib_file("shape_predictor_5_face_landmarks.dat")))
    found = []
    for identity, photos in manifest.items():
        if identity == "_noface":
            continue
        for photo in photos if identity.startswith("_") else photos[:PHOTOS_PER_IDENTITY]:
            rgb = cv2.imread(str(photo.path))[:, :, ::-1]
            scale = min(1.0, DETECT_MAX_SIDE / max(rgb.shape[:2]))
            small = cv2.resize(rgb, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA) if scale < 1 else rgb
            for box in detector(np.ascontiguousarray(small), 0):
                rect = dlib.rectangle(*(round(v / scale) for v in (box.left(), box.top(), box.right(), box.bottom())))
                shape = predictor(np.ascontiguousarray(rgb), rect)
                found.append((photo.path.name, dlib.get_face_chip(np.ascontiguousarray(rgb), shape, size=150,
                                                                  padding=0.25)))
    return found


def test_onnx_descriptors_equal_dlibs_on_every_face_of_the_photos(client, chips, manifest):
    photos = sum(len(p) if name.startswith("_") else min(len(p), PHOTOS_PER_IDENTITY)
                 for name, p in manifest.items() if name != "_noface")
    assert len(chips) >= photos  # every photo gave at least one face on average (groups give more)
    net = dlib.face_recognition_model_v1(str(packaged_dlib_file("dlib_face_recognition_resnet_model_v1.dat")))
    rgb_chips = [chip for _, chip in chips]
    expected = np.array([np.array(d) for d in net.compute_face_descriptor(rgb_chips)], dtype=np.float32)
    # The client takes BGR, as every DeepFace model does; a batch and one-by-one agree.
    got = client.predict(np.stack([chip[:, :, ::-1] for chip in rgb_chips]))
    one = np.array([client.forward(chip[:, :, ::-1]) for chip in rgb_chips[:5]], dtype=np.float32)
    assert got.shape == expected.shape == (len(chips), 128)
    worst = float(np.abs(got - expected).max())
    cosine = np.sum(got * expected, axis=1) / np.linalg.norm(got, axis=1) / np.linalg.norm(expected, axis=1)
    print(f"\n[dlib-onnx] {len(chips)} faces: max |diff| {worst:.2e}, min cosine {cosine.min():.8f}")
    assert worst <= 1e-5
    assert cosine.min() >= 0.99999
    assert np.abs(one - got[:5]).max() <= 1e-5


def test_deepface_float_input_gives_the_same_descriptor(client, chips):
    """DeepFace feeds models [0, 1] floats; the client treats them as dlib's own client does."""
    bgr = np.ascontiguousarray(chips[0][1][:, :, ::-1])
    as_float = client.forward(bgr.astype(np.float32) / 255.0)
    assert np.abs(np.array(as_float) - np.array(client.forward(bgr))).max() <= 1e-6
    with pytest.raises(ValueError, match="150, 150, 3"):
        client.predict(np.zeros((1, 112, 112, 3), dtype=np.uint8))


def test_engine_embedder_gives_the_same_unit_vectors_on_both_runtimes(chips, settings):
    prepare_deepface_home(deepface_home())  # dlib-bin's client reads the linked .dat there
    bgr = [np.ascontiguousarray(chip[:, :, ::-1]) for _, chip in chips[:6]]
    onnx = DeepFaceEmbedder("Dlib", dlib_runtime="onnx").embed(bgr)
    native = DeepFaceEmbedder("Dlib", dlib_runtime="dlib").embed(bgr)
    assert onnx.dtype == np.float32 and onnx.shape == (6, 128)
    assert np.allclose(np.linalg.norm(onnx, axis=1), 1.0, atol=1e-5)
    assert np.abs(onnx - native).max() <= 1e-5
    with pytest.raises(ValueError, match="unknown Dlib runtime"):
        DeepFaceEmbedder("Dlib", dlib_runtime="tensorrt")
    # Other models keep DeepFace's own classes.
    assert model_class("SFace").__module__.startswith("deepface.")


def test_concurrent_sessions_give_the_same_descriptors(client, chips, weights_dir):
    """Engine-pool threads each run their own session at once (the GIL is released in `run`)."""
    batch = np.stack([chip[:, :, ::-1] for _, chip in chips[:8]])
    expected = client.predict(batch)
    results: list[np.ndarray] = []
    errors: list[BaseException] = []

    def work():
        try:
            session = DlibOnnxClient(weights_dir=weights_dir)
            for _ in range(3):
                results.append(session.predict(batch))
        except BaseException as error:  # surfaced by the assert below
            errors.append(error)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(results) == 9
    for result in results:
        assert np.array_equal(result, expected)


def test_conversion_is_keyed_by_the_source_hash_and_done_once(tmp_path, weights_dir, client):
    path = ensure_onnx(weights_dir)
    assert path == client.model_path
    assert path.name == onnx_name(file_sha256(source_path()))
    stamp = path.stat().st_mtime_ns
    assert ensure_onnx(weights_dir) == path and path.stat().st_mtime_ns == stamp  # not rebuilt
    assert [p.name for p in weights_dir.iterdir()] == [path.name]  # no temporary file left behind

    # Another .dat (here: one weight changed) gets its own graph, never the cached one.
    data = bytearray(source_path().read_bytes())
    data[-100] ^= 0x01
    other = tmp_path / "other.dat"
    other.write_bytes(bytes(data))
    other_path = ensure_onnx(weights_dir, source=other)
    assert other_path != path and other_path.exists()


def test_a_file_that_is_not_dlibs_resnet_is_refused(tmp_path):
    data = source_path().read_bytes()
    with pytest.raises(DatFormatError):
        parse_dat(data[: len(data) // 2])  # cut before the fully connected layer
    shape_predictor = packaged_dlib_file("shape_predictor_5_face_landmarks.dat").read_bytes()
    with pytest.raises(DatFormatError):
        parse_dat(shape_predictor)
    with pytest.raises(DatFormatError):
        ensure_onnx(tmp_path / "weights", source=packaged_dlib_file("shape_predictor_5_face_landmarks.dat"))
    assert not (tmp_path / "weights").exists() or list((tmp_path / "weights").iterdir()) == []


NO_TF_SCRIPT = """
import json, os, sys
import django
django.setup()
import cv2
from faces.engine import get_engine
from faces.engine.config import deepface_home
engine = get_engine()
result = engine.faces_in(cv2.imread(sys.argv[1]))
heavy = sorted({name.split(".")[0] for name in sys.modules} & {"tensorflow", "keras", "tf_keras", "torch"})
print(json.dumps({
    "faces": len(result.faces), "model": engine.model_name, "runtime": engine.embedder.runtime,
    "norm": float((result.faces[0].embedding ** 2).sum()) if result.faces else 0.0,
    "heavy": heavy, "weights": sorted(os.listdir(os.path.join(deepface_home(), ".deepface", "weights"))),
}))
"""


def test_the_default_engine_embeds_a_photo_without_importing_tensorflow(tmp_path, manifest, settings):
    """A fresh process on the default settings: ONNX Dlib, graph converted on first use, no TF.

    Its DeepFace home holds what `make install` put in ours (the detector's weights), except our
    converted graph, so the first use has to convert it.
    """
    installed = Path(deepface_home()) / ".deepface" / "weights"
    home_weights = tmp_path / "home" / ".deepface" / "weights"
    home_weights.mkdir(parents=True)
    for path in installed.iterdir():
        if not path.name.startswith("dlib_resnet_v1."):
            (home_weights / path.name).symlink_to(path.resolve())
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("DEEPFACE_", "FACEPORTAL_DLIB", "TF_"))}
    env.update(DJANGO_SETTINGS_MODULE="faceportal.settings", DEEPFACE_HOME=str(tmp_path / "home"),
               PYTHONPATH=str(REPO_ROOT), FACEPORTAL_WARM_ENGINE="false")
    photo = manifest["Angelina_Jolie"][0].path
    completed = subprocess.run([sys.executable, "-c", NO_TF_SCRIPT, str(photo)], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-3000:]
    report = json.loads(completed.stdout.strip().splitlines()[-1])
    assert report["faces"] == 1
    assert report["model"] == "Dlib" and report["runtime"] == "onnx"
    assert abs(report["norm"] - 1.0) < 1e-4
    assert report["heavy"] == []
    assert onnx_name(file_sha256(source_path())) in report["weights"]
    assert not (home_weights / onnx_name(file_sha256(source_path()))).is_symlink()  # converted, not linked


def test_an_unknown_dlib_runtime_stops_start_up_with_a_clear_message(tmp_path):
    env = dict(os.environ, FACEPORTAL_DLIB_RUNTIME="tensorflow", DJANGO_SETTINGS_MODULE="faceportal.settings",
               PYTHONPATH=str(REPO_ROOT))
    completed = subprocess.run([sys.executable, "-c", "import django; django.setup()"], cwd=tmp_path, env=env,
                               capture_output=True, text=True, timeout=120)
    assert completed.returncode != 0
    assert "FACEPORTAL_DLIB_RUNTIME='tensorflow' is not one of dlib, onnx" in completed.stderr
