"""Grouping kept unknown faces: purity and completeness on LFW strangers, and the cost at 10,000.

1. Purity and completeness. Photos of LFW people (`../shared/lfw-train`) nobody enrolled are kept
   as unknowns, as recognition keeps them (most prominent face, the enrolment quality gates), and
   grouped by faces.unknowns.clustering at the organisation's default false_match_rate. Reported: how
   many clusters, how many mix two or more people (the thing that must not happen), purity (share
   of faces whose cluster's majority is their own person), how many people with 2+ kept faces were
   split over several clusters, and scikit-learn's homogeneity / completeness.
2. Cost at 10,000 kept faces: real dlib embeddings of those photos, each person's faces re-drawn
   around their own mean with their own spread until there are 10,000, stored as UnknownFace rows of
   a scratch organisation; timed: grouping alone, the first cluster list (computes), the next ones
   (cached), the newest page of the inbox, and a recognition while a grouping is being computed.

Run: `FACEPORTAL_LFW_DIR=../shared/lfw-train .venv/bin/python bench/unknown_clusters.py`
(needs DATABASE_URL and REDIS_URL like the server; uses organisation slug `bench-unknowns`).
"""

from __future__ import annotations

import csv
import random
import sys
import threading
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import REPO_ROOT, log, median, setup_django, table, timed  # noqa: E402

CACHE = REPO_ROOT / "var" / "bench" / "unknown_lfw.npz"
MULTI_PEOPLE = 200  # LFW people with 3+ photos, up to PHOTOS_EACH each
PHOTOS_EACH = 5
SINGLES = 300  # people with one photo: they must stay alone
SCALE = 10_000
SEED = 21


def lfw_sample(folder: Path) -> list[tuple[Path, str]]:
    by_person: dict[str, list[Path]] = {}
    with open(folder / "manifest.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            by_person.setdefault(row["identity"], []).append(folder / row["path"])
    rng = random.Random(SEED)
    multi = sorted(name for name, paths in by_person.items() if len(paths) >= 3)
    single = sorted(name for name, paths in by_person.items() if len(paths) == 1)
    chosen = rng.sample(multi, min(MULTI_PEOPLE, len(multi))) + rng.sample(single, min(SINGLES, len(single)))
    return [(path, name) for name in chosen for path in by_person[name][:PHOTOS_EACH]]


def embed_kept(sample: list[tuple[Path, str]]) -> tuple[np.ndarray, list[str]]:
    """The faces recognition would keep: most prominent face, passing the enrolment gates (cached)."""
    if CACHE.exists():
        with np.load(CACHE) as cached:
            return cached["vectors"], [str(name) for name in cached["identities"]]
    from faces import quality
    from faces.engine import get_engine, map_in_engine_pool
    from faces.images import decode

    engine = get_engine()

    def one(item):
        path, name = item
        pixels = decode(path.read_bytes(), index=0).pixels
        result = engine.faces_in(pixels, most_prominent_only=True)
        if not result.faces or quality.assess(pixels, result.faces[0].detection).reason is not None:
            return None
        return result.faces[0].embedding, name

    log(f"embedding {len(sample)} LFW photos once (cached in {CACHE.relative_to(REPO_ROOT)})")
    found = [hit for hit in map_in_engine_pool(one, sample) if hit is not None]
    vectors = np.stack([vector for vector, _ in found]).astype(np.float32)
    names = [name for _, name in found]
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    np.savez(CACHE, vectors=vectors, identities=np.array(names))
    return vectors, names


def quality_of(labels: np.ndarray, names: list[str]) -> dict[str, float]:
    from collections import Counter

    from sklearn.metrics import homogeneity_completeness_v_measure

    clusters: dict[int, list[str]] = {}
    for label, name in zip(labels, names, strict=True):
        clusters.setdefault(int(label), []).append(name)
    mixed = sum(1 for members in clusters.values() if len(set(members)) > 1)
    majority = sum(Counter(members).most_common(1)[0][1] for members in clusters.values())
    faces_of = Counter(names)
    spread: dict[str, set[int]] = {}
    for label, name in zip(labels, names, strict=True):
        spread.setdefault(name, set()).add(int(label))
    repeat = [name for name, count in faces_of.items() if count >= 2]
    split = sum(1 for name in repeat if len(spread[name]) > 1)
    homogeneity, completeness, _ = homogeneity_completeness_v_measure(names, labels)
    return {"clusters": len(clusters), "mixed": mixed, "purity": majority / len(names),
            "people": len(faces_of), "repeat": len(repeat), "split": split,
            "homogeneity": homogeneity, "completeness": completeness}


def synthesise(vectors: np.ndarray, names: list[str], size: int) -> np.ndarray:
    """`size` vectors: each real person's faces re-drawn around their mean with their own spread."""
    rng = np.random.default_rng(SEED)
    people: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        people.setdefault(name, []).append(i)
    centres, spreads = [], []
    typical = np.median([np.linalg.norm(vectors[rows] - vectors[rows].mean(axis=0), axis=1).mean()
                         for rows in people.values() if len(rows) >= 2])
    for rows in people.values():
        centre = vectors[rows].mean(axis=0)
        spread = np.linalg.norm(vectors[rows] - centre, axis=1).mean() if len(rows) >= 2 else typical
        centres.append(centre)
        spreads.append(spread)
    picks = rng.integers(0, len(centres), size=size)
    out = np.stack([centres[p] for p in picks]) + rng.normal(size=(size, vectors.shape[1])) * (
        np.array([spreads[p] for p in picks])[:, None] / np.sqrt(vectors.shape[1]))
    return (out / np.linalg.norm(out, axis=1, keepdims=True)).astype(np.float32)


def purity_section(vectors: np.ndarray, names: list[str]) -> str:
    from faces.decision import effective_threshold
    from faces.engine import get_engine
    from faces.matching import uncalibrated_threshold
    from faces.unknowns.clustering import cluster_labels
    from organizations.models import DEFAULT_FALSE_MATCH_RATE

    engine = get_engine()
    rows = []
    # The shipped rule, then the same faces linked at the thresholds of other gallery sizes: the price
    # of a lower threshold is clusters that mix people; of a higher one (more faces kept), more splits.
    choices = [("shipped: gallery = faces kept", len(vectors))]
    choices += [(f"gallery of {size:,}", size) for size in (1, 10, 100, SCALE)]
    for label, gallery in choices:
        threshold = effective_threshold(model=engine.model_name, requested=None, gallery_size=gallery,
                                        false_match_rate=DEFAULT_FALSE_MATCH_RATE,
                                        model_default=uncalibrated_threshold())
        ms, labels = timed(cluster_labels, vectors=vectors, threshold=threshold)
        q = quality_of(labels, names)
        rows.append([label, round(threshold.similarity, 4), q["clusters"], q["mixed"], f"{q['purity']:.1%}",
                     f"{q['split']} of {q['repeat']}", round(q["homogeneity"], 3), round(q["completeness"], 3),
                     round(ms, 1)])
    q = quality_of(np.zeros(len(names)), names)
    return table(
        f"Grouping {len(vectors)} kept faces of {q['people']} LFW strangers ({q['repeat']} with 2+ faces)",
        ["link threshold", "similarity", "clusters", "mixed clusters", "purity", "people split", "homogeneity",
         "completeness", "ms"], rows,
        note="mixed: clusters holding two or more people. people split: people with 2+ faces spread over "
        "several clusters. The threshold is the decision's (cohort-normalised, calibrated), stated for a typical "
        "face.")


def scale_section(vectors: np.ndarray, names: list[str]) -> str:
    from django.core.cache import cache
    from rest_framework.test import APIClient

    from apikeys.services import api_key_issue
    from faces.index.base import vector_to_bytes
    from faces.models import UnknownFace
    from faces.unknowns.clustering import cluster_labels, grouping_threshold, unknown_grouping
    from faces.unknowns.services import unknowns_changed
    from organizations.models import Organization
    from organizations.services import organization_create, organization_delete
    from recognition.services import recognize
    from tests.photos import STRANGERS, load_manifest

    existing = Organization.objects.filter(slug="bench-unknowns").first()
    if existing is not None:
        organization_delete(organization=existing)
    org = organization_create(slug="bench-unknowns")
    org.unknown_max_kept = SCALE
    org.save()
    synthetic = synthesise(vectors, names, SCALE)
    crop = b"\xff\xd8" + b"\x00" * 4000  # a thumbnail's size; never decoded here
    log(f"storing {SCALE} unknown faces")
    UnknownFace.objects.bulk_create([
        UnknownFace(organization=org, model_name="Dlib", embedding=vector_to_bytes(v), crop=crop,
                    box={"x": 0, "y": 0, "w": 120, "h": 120}, source="rest") for v in synthetic
    ], batch_size=2000)
    unknowns_changed(organization_id=org.pk)
    issued = api_key_issue(organization=org, user="bench", name="bench")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {issued.plaintext}")
    rows = []
    threshold = grouping_threshold(organization=org, kept=SCALE)
    ms, _ = timed(cluster_labels, vectors=synthetic, threshold=threshold)
    rows.append(["DBSCAN over 10,000 embeddings (no database)", round(ms, 1)])
    cache.clear()
    ms, response = timed(client.get, "/orgs/bench-unknowns/unknown-clusters")
    clusters = response.json()["count"]
    rows.append(["GET unknown-clusters, first (reads 10,000 rows, groups, caches)", round(ms, 1)])
    rows.append(["GET unknown-clusters, cached (median of 20)",
                 round(median(timed(client.get, "/orgs/bench-unknowns/unknown-clusters")[0] for _ in range(20)), 1)])
    rows.append(["GET unknown-faces, newest page of 50 (median of 20)",
                 round(median(timed(client.get, "/orgs/bench-unknowns/unknown-faces")[0] for _ in range(20)), 1)])
    # Recognition while a grouping is computed in another thread: it must not wait for it.
    photo = load_manifest()[STRANGERS[0]][0].b64()
    idle = [timed(recognize, organization=org, image=photo)[0] for _ in range(5)]
    cache.clear()
    grouping = threading.Thread(target=unknown_grouping, kwargs={"organization": org})
    grouping.start()
    during = []
    while grouping.is_alive() and len(during) < 5:
        during.append(timed(recognize, organization=org, image=photo)[0])
    grouping.join()
    rows.append(["POST recognize alone (median of 5)", round(median(idle), 1)])
    rows.append([f"POST recognize while grouping runs (median of {len(during)})", round(median(during), 1)])
    organization_delete(organization=org)
    return table(f"Cost at {SCALE:,} kept faces ({clusters:,} clusters)", ["step", "ms"], rows,
                 note="Synthetic faces: each of the LFW people's faces re-drawn around that person's mean with "
                 "their own spread. Recognition keeps nothing here (keeping is off for the scratch organisation).")


def run() -> str:
    from faces.calibration.dataset import default_lfw_dir

    folder = default_lfw_dir()
    if not (folder / "manifest.csv").exists():
        return f"Unknown-face grouping skipped: no LFW folder at {folder} (set FACEPORTAL_LFW_DIR)."
    vectors, names = embed_kept(lfw_sample(folder))
    sections = [purity_section(vectors, names)]
    sections.append(scale_section(vectors, names))
    return "\n\n".join(sections)


if __name__ == "__main__":
    setup_django()
    started = time.perf_counter()
    print(run())
    log(f"done in {time.perf_counter() - started:.0f} s")
