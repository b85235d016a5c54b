"""Gallery scale: search p50/p99, memory, build/restore time and recall@1 at 10k, 100k and 1M faces.

The galleries are made from real faces: every synthetic identity is a random blend of three real
dlib embeddings of the dev photos (plus a little noise), and each identity gets 1–5 "photos" that
scatter around it as much as real photos of one person do; probes are fresh scatters of known
identities. Random vectors would be a worst case that says little about faces.

Run alone: `FACEPORTAL_FACES_DIR=../shared/faces .venv/bin/python bench/scale.py [sizes...]`.
"""

from __future__ import annotations

import gc
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import log, median, percentile, rss_mb, setup_django, table  # noqa: E402

DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
QUERIES = 500
EXACT_TIMED_QUERIES = 30
INTRA_PERSON_NOISE = 0.025  # per dimension: same-person photos of the dev set sit ~0.4 apart
K = 20  # what a recognition asks the index for (5 candidates x 4 faces each)


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def synthetic_gallery(real: np.ndarray, size: int, seed: int = 1):
    """(vectors, person ids, probe vectors, probe person ids) built from real embeddings."""
    rng = np.random.default_rng(seed)
    identities = max(1, size // 3)
    parents = rng.integers(0, len(real), size=(identities, 3))
    weights = rng.dirichlet(np.ones(3), size=identities).astype(np.float32)
    centres = unit(np.einsum("ij,ijk->ik", weights, real[parents]) + rng.normal(0, 0.03, (identities, 128)))
    owner = rng.integers(0, identities, size=size)
    vectors = unit(centres[owner] + rng.normal(0, INTRA_PERSON_NOISE, (size, 128)).astype(np.float32))
    probe_owner = rng.choice(owner, size=QUERIES)
    probes = unit(centres[probe_owner] + rng.normal(0, INTRA_PERSON_NOISE, (QUERIES, 128)).astype(np.float32))
    return vectors, owner.astype(np.int64), probes, probe_owner


def exact_top1(matrix: np.ndarray, probes: np.ndarray) -> np.ndarray:
    best = np.empty(len(probes), dtype=np.int64)
    for start in range(0, len(probes), 100):
        best[start:start + 100] = np.argmax(probes[start:start + 100] @ matrix.T, axis=1)
    return best


def run(real: np.ndarray, sizes=DEFAULT_SIZES) -> str:
    from django.conf import settings

    from faces.index.embedded import (
        HNSW_CONNECTIVITY,
        HNSW_DTYPE,
        HNSW_EXPANSION_ADD,
        RERANK_CANDIDATES,
        RERANK_PEOPLE,
        AnnFiles,
        OrgVectors,
    )

    rows = []
    for size in sizes:
        log(f"scale: {size} faces")
        vectors, owners, probes, probe_owners = synthetic_gallery(real, size)
        face_ids = np.arange(1, size + 1, dtype=np.int64)
        truth = exact_top1(vectors, probes)

        exact = OrgVectors(dimension=128, ann_min_faces=10**12, face_ids=face_ids, person_ids=owners,
                           matrix=vectors)
        exact_ms = []
        for probe in probes[:EXACT_TIMED_QUERIES]:
            started = time.perf_counter()
            exact.search(probe[None], K)
            exact_ms.append((time.perf_counter() - started) * 1000)

        gc.collect()
        before = rss_mb()
        started = time.perf_counter()
        served = OrgVectors(dimension=128, ann_min_faces=settings.FACEPORTAL_ANN_MIN_FACES)
        served.upsert(face_ids, owners, vectors)
        build_s = time.perf_counter() - started
        memory_mb = served.memory_bytes() / 2**20
        rss_delta = rss_mb() - before

        latencies, top_ids = [], []
        for probe in probes:
            started = time.perf_counter()
            hits = served.search(probe[None], K)[0]
            latencies.append((time.perf_counter() - started) * 1000)
            top_ids.append(hits[0].face_id if hits else -1)
        top_ids = np.array(top_ids)
        recall = float(np.mean(top_ids == face_ids[truth]))
        same_person = float(np.mean(owners[np.clip(top_ids - 1, 0, size - 1)] == owners[truth]))
        # How crowded the gallery is: exact search itself names the probe's identity this often.
        exact_identifies = float(np.mean(owners[truth] == probe_owners))

        restore_s = add_ms = float("nan")
        if served.approximate:
            with tempfile.TemporaryDirectory() as directory:
                files = AnnFiles(Path(directory))
                served.version = 1
                files.save(1, "bench", served)
                started = time.perf_counter()
                files.load(1, "bench", db_version=1, ann_min_faces=served.ann_min_faces)
                restore_s = time.perf_counter() - started
            extra = unit(vectors[:200] + np.random.default_rng(5).normal(0, 0.02, (200, 128)))
            started = time.perf_counter()
            for i, vector in enumerate(extra):
                served.upsert(np.array([size + 1 + i]), np.array([0]), vector[None])
            add_ms = (time.perf_counter() - started) * 1000 / len(extra)
        rows.append([
            f"{size:,}", f"HNSW {HNSW_DTYPE} + f32 re-rank" if served.approximate else "exact NumPy",
            percentile(latencies, 0.5), percentile(latencies, 0.99), median(exact_ms),
            recall, same_person, exact_identifies, memory_mb, rss_delta, build_s, restore_s, add_ms,
        ])
        del exact, served, vectors
        gc.collect()
    return table(
        "Gallery scale: one organisation, 128-d dlib vectors, single-query search (k=20)",
        ["faces", "structure", "p50 ms", "p99 ms", "exact NumPy p50 ms", "recall@1 vs exact",
         "same person@1", "exact names probe's identity", "index MB", "RSS +MB", "build s", "restore s", "add ms/face"],
        rows,
        note=(f"Galleries: real dlib embeddings of the dev photos blended into synthetic identities "
              f"(3 parents each, 1–5 faces per identity, noise σ={INTRA_PERSON_NOISE}/dim), {QUERIES} probes "
              f"= fresh photos of known identities. recall@1: the index's top face is exact search's top "
              f"face; same person@1: it belongs to the same identity; exact names probe's identity: how often "
              f"exact search itself returns a face of the probe's identity (lower = a more crowded gallery). "
              f"HNSW above FACEPORTAL_ANN_MIN_FACES={settings.FACEPORTAL_ANN_MIN_FACES}: usearch graph on int8 "
              f"copies (M={HNSW_CONNECTIVITY}, ef_construction={HNSW_EXPANSION_ADD}, expansion_search="
              f"{settings.FACEPORTAL_ANN_EXPANSION_SEARCH}), its best {RERANK_CANDIDATES} candidates, plus every face "
              f"of the people behind the best {RERANK_PEOPLE}, re-ranked exactly against the float32 vectors kept "
              f"in memory (index MB counts both); build = from "
              f"scratch on all {os.cpu_count()} cores (a restart loads the saved graph instead: restore s); "
              f"add = one new face into the built graph."),
    )


if __name__ == "__main__":
    setup_django()
    from bench.embeddings import dev_embeddings

    chosen = tuple(int(arg) for arg in sys.argv[1:]) or DEFAULT_SIZES
    run(dev_embeddings(), chosen)
