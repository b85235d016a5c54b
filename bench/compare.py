"""FacePortal against what a user would otherwise run, on the same photos and the same gallery.

* `DeepFace.find(img, db_path=folder, model_name="Dlib", detector_backend="dlib")`: its first call
  embeds the folder (enrolment), later calls embed the probe and scan the stored representations.
* The `face_recognition` library: `face_encodings` per enrolment photo; per probe `face_locations`
  + `face_encodings` + `face_distance` over all known encodings (its documented compare loop).
* FacePortal: `faces.services.person_register` per person and `recognition.services.recognize`.

All three run dlib's ResNet from the same weights. Gallery 100 = 100 real photos. Galleries of 10k
and 100k add perturbed copies of each system's own real gallery embeddings (σ=0.025 per dimension
of a unit vector), written where each system keeps them: FacePortal's vector table, DeepFace's
datastore file in the folder (searched with refresh_database=False; with its default True it would
also hash every image file on each call), face_recognition's list of known encodings.
"""

from __future__ import annotations

import base64
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import STRANGERS, log, median, people, setup_django, table  # noqa: E402

GALLERY = 100
PROBES = 6
SIZES = tuple(int(s) for s in os.environ.get("BENCH_COMPARE_SIZES", "100,10000,100000").split(","))
NOISE = 0.025


def choose_photos():
    identities = {name: photos for name, photos in people().items() if name not in STRANGERS}
    probes = [photos[-1] for photos in identities.values() if len(photos) >= 4][:PROBES]
    probe_paths = {photo.path for photo in probes}
    gallery = [photo for photos in identities.values() for photo in photos if photo.path not in probe_paths]
    # Two photos of everyone first, then the rest, so 100 photos cover every identity.
    ordered = sorted(gallery, key=lambda p: (p.path.stem not in ("1", "2"), p.identity, p.path.name))
    return ordered[:GALLERY], probes


def perturbed(vectors: np.ndarray, count: int, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = vectors[rng.integers(0, len(vectors), size=count)]
    norms = np.linalg.norm(base, axis=1, keepdims=True)
    noisy = base / norms + rng.normal(0, NOISE, base.shape)
    return (noisy / np.linalg.norm(noisy, axis=1, keepdims=True) * norms).astype(base.dtype)


def timed_median(fn, items) -> float:
    fn(items[0])  # warm-up
    values = []
    for item in items:
        started = time.perf_counter()
        fn(item)
        values.append((time.perf_counter() - started) * 1000)
    return median(values)


# --- FacePortal -----------------------------------------------------------------------------------
def faceportal_enrol(gallery) -> tuple[object, float]:
    from faces.index import get_index
    from faces.services import person_delete, person_register
    from organizations.models import Organization
    from organizations.services import organization_create

    existing = Organization.objects.filter(slug="bench-compare").first()
    if existing is not None:
        get_index().drop_organization(organization_id=existing.pk)
        existing.delete()
    organization = organization_create(slug="bench-compare")
    by_person: dict[str, list[bytes]] = {}
    for photo in gallery:
        by_person.setdefault(photo.identity, []).append(photo.path.read_bytes())
    # Warm-up, then gone: it is a real person's photo, and registering that person again under
    # another name is the identity hijack registration refuses (409).
    warm_up = person_register(organization=organization, name="warm-up", images=[gallery[0].path.read_bytes()])
    person_delete(person=warm_up.person)
    started = time.perf_counter()
    for name, images in by_person.items():
        # The other systems store whatever they are given; the dev set has look-alikes that the
        # duplicate-identity check would refuse, so it is waived here to enrol the same gallery.
        person_register(organization=organization, name=name, images=images, allow_duplicate=True)
    return organization, (time.perf_counter() - started) * 1000 / len(gallery)


def faceportal_grow(organization, size: int) -> None:
    from faces.index import VectorRecord, get_index
    from faces.models import EmbeddedVector, Face

    index = get_index()
    have = index.count(organization_id=organization.pk)
    if size <= have:
        return
    real = np.stack([face.vector for face in Face.objects.filter(organization=organization)])
    start = 10**9 + EmbeddedVector.objects.filter(organization_id=organization.pk, face_id__gte=10**9).count()
    extra = perturbed(real, size - have)
    index.add(organization_id=organization.pk, records=[
        VectorRecord(face_id=start + i, person_id=0, vector=vector) for i, vector in enumerate(extra)
    ])


def faceportal_recognise(organization, probes) -> float:
    from recognition.services import recognize

    encoded = [base64.b64encode(photo.path.read_bytes()).decode() for photo in probes]
    return timed_median(lambda image: recognize(organization=organization, image=image), encoded)


# --- DeepFace.find --------------------------------------------------------------------------------
def deepface_find(probe_path: Path, folder: Path, *, refresh: bool):
    from deepface import DeepFace

    return DeepFace.find(img_path=str(probe_path), db_path=str(folder), model_name="Dlib", detector_backend="dlib",
                         distance_metric="cosine", enforce_detection=False, silent=True,
                         refresh_database=refresh)


def deepface_datastore(folder: Path) -> Path:
    return next(folder.glob("ds_model_dlib_detector_dlib_*.npz"))


def deepface_grow(folder: Path, real_store: bytes, size: int) -> None:
    """Rewrite DeepFace's own datastore file with `size` rows, through its own (private) serialiser."""
    from deepface.modules import recognition
    from deepface.modules.filestore import build_file_store

    load = getattr(recognition, "__load_representations")
    save = getattr(recognition, "__save_representations")
    path = deepface_datastore(folder)
    path.write_bytes(real_store)
    store = build_file_store(str(folder))
    datastore = store.join(path.name)
    representations = load(store=store, datastore_path=datastore, datastore_format="npz")
    real = [r for r in representations if r["embedding"] is not None]
    vectors = perturbed(np.array([r["embedding"] for r in real], dtype=np.float64), size - len(real))
    extra = [dict(real[i % len(real)], identity=str(folder / "synthetic" / f"{i}.jpg"), embedding=list(v))
             for i, v in enumerate(vectors)]
    save(store=store, datastore_path=datastore, datastore_format="npz", representations=representations + extra)


# --- face_recognition -----------------------------------------------------------------------------
def fr_encode(path: Path):
    import face_recognition

    image = face_recognition.load_image_file(str(path))
    locations = face_recognition.face_locations(image)
    return face_recognition.face_encodings(image, locations)


def fr_recognise(known: np.ndarray, path: Path):
    import face_recognition

    encodings = fr_encode(path)
    return [int(np.argmin(face_recognition.face_distance(known, encoding))) for encoding in encodings]


def run() -> str:
    gallery, probes = choose_photos()
    rows: dict[str, list[object]] = {}
    workdir = Path(tempfile.mkdtemp(prefix="faceportal-bench-"))
    try:
        folder = workdir / "gallery"
        for photo in gallery:
            (folder / photo.identity).mkdir(parents=True, exist_ok=True)
            (folder / photo.identity / photo.path.name).symlink_to(photo.path)

        log("compare: enrolment (FacePortal, DeepFace.find's first call, face_recognition)")
        organization, fp_enrol = faceportal_enrol(gallery)
        started = time.perf_counter()
        deepface_find(probes[0].path, folder, refresh=True)
        df_first = (time.perf_counter() - started) * 1000
        df_steady = timed_median(lambda p: deepface_find(p.path, folder, refresh=True), probes[:3])
        df_enrol = max(0.0, df_first - df_steady) / len(gallery)
        started = time.perf_counter()
        known = [encodings[0] for photo in gallery if (encodings := fr_encode(photo.path))]
        fr_enrol = (time.perf_counter() - started) * 1000 / len(gallery)
        known = np.array(known)
        rows["enrol"] = ["enrolment (ms per photo, 100 photos)", fp_enrol, df_enrol, fr_enrol,
                         fp_enrol / df_enrol, fp_enrol / fr_enrol]

        real_store = deepface_datastore(folder).read_bytes()
        for size in SIZES:
            log(f"compare: recognition at {size}")
            faceportal_grow(organization, size)
            fp = faceportal_recognise(organization, probes)
            if size > len(gallery):
                deepface_grow(folder, real_store, size)
                df = timed_median(lambda p: deepface_find(p.path, folder, refresh=False), probes)
                grown = np.vstack([known, perturbed(known, size - len(known))])
            else:
                df = timed_median(lambda p: deepface_find(p.path, folder, refresh=True), probes)
                grown = known
            fr = timed_median(lambda p, g=grown: fr_recognise(g, p.path), probes)
            rows[size] = [f"recognition at {size:,} faces (ms per photo)", fp, df, fr, fp / df, fp / fr]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return table(
        "FacePortal against the alternatives (median ms; ratio < 1 means FacePortal is faster)",
        ["task", "FacePortal", "DeepFace.find", "face_recognition", "FacePortal / DeepFace",
         "FacePortal / face_recognition"],
        list(rows.values()),
        note=(f"Same {len(gallery)} real photos enrolled in each, same {len(probes)} probe photos, all dlib ResNet "
              "from the same weights, run one after the other in one process. Galleries above 100: perturbed "
              "copies of each system's own real embeddings, stored where that system keeps them (see "
              "bench/compare.py). FacePortal enrols through `person_register` (both engine threads) and "
              "recognises through `recognize` (decode, detect on ≤800 px, align, embed, search, names)."),
    )


if __name__ == "__main__":
    setup_django()
    run()
