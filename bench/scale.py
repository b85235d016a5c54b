"""Gallery scale: search p50/p99, memory per worker, build/restore time and recall@1 at 10k, 100k and 1M faces.

Two galleries, both made from real dlib embeddings (random vectors would be a worst case that
says little about faces):

- "dev blend" (the old one): every synthetic identity blends three dev photos' embeddings, so
  identities sit far apart and exact search names the probe's identity every time;
- "crowded": every synthetic identity is one real LFW training photo (4,027 real people,
  `../shared/lfw-train`), moved a little, so the identities born of one photo, of one person and of
  real look-alikes crowd each other as real galleries do.

Each identity gets 1–5 "photos" that scatter around it as much as real photos of one person do;
probes are fresh scatters of known identities. At sizes searched through the graph, the memory
columns are those of the served structure: the saved graph and vectors memory-mapped from their
files, then a second worker process mapping the same files (RSS, anonymous, PSS from
/proc/<pid>/smaps_rollup).

Run alone: `FACEPORTAL_FACES_DIR=../shared/faces .venv/bin/python bench/scale.py [sizes...]`
(FACEPORTAL_CALIBRATION_CACHE: where the LFW embeddings are cached, see faces/calibration/dataset.py).
"""

from __future__ import annotations

import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import REPO_ROOT, log, median, percentile, rss_mb, setup_django, table  # noqa: E402

DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
QUERIES = 500
EXACT_TIMED_QUERIES = 30
INTRA_PERSON_NOISE = 0.025  # per dimension: same-person photos of the dev set sit ~0.4 apart
# Per dimension, how far an identity moves from its LFW photo: identities born of one photo sit ~0.25
# apart, so their photos (~0.45 apart) are look-alikes well inside dlib's 0.6 same-person distance,
# and at 1M faces (~47 identities per photo) exact search itself is torn between them.
IDENTITY_NOISE = 0.015
K = 20  # what a recognition asks the index for (5 candidates x 4 faces each)


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def memory() -> dict[str, float]:
    """This process's Rss, Pss and Anonymous memory in MB (file-backed shared pages: Rss - Anonymous)."""
    found = {}
    with open("/proc/self/smaps_rollup") as rollup:
        for line in rollup:
            parts = line.split()
            if parts[0] in ("Rss:", "Pss:", "Anonymous:"):
                found[parts[0][:-1].lower()] = int(parts[1]) / 1024
    return found


def _scatter(rng, centres: np.ndarray, size: int):
    owner = rng.integers(0, len(centres), size=size)
    vectors = unit(centres[owner] + rng.normal(0, INTRA_PERSON_NOISE, (size, centres.shape[1])).astype(np.float32))
    probe_owner = rng.choice(owner, size=QUERIES)
    probes = unit(centres[probe_owner] + rng.normal(0, INTRA_PERSON_NOISE, (QUERIES, centres.shape[1])))
    return vectors, owner.astype(np.int64), probes, probe_owner


def synthetic_gallery(real: np.ndarray, size: int, seed: int = 1):
    """Dev blend: (vectors, person ids, probe vectors, probe person ids) from real embeddings."""
    rng = np.random.default_rng(seed)
    identities = max(1, size // 3)
    parents = rng.integers(0, len(real), size=(identities, 3))
    weights = rng.dirichlet(np.ones(3), size=identities).astype(np.float32)
    centres = unit(np.einsum("ij,ijk->ik", weights, real[parents]) + rng.normal(0, 0.03, (identities, 128)))
    return _scatter(rng, centres, size)


def crowded_gallery(lfw: np.ndarray, size: int, seed: int = 2):
    """Crowded: each identity one real LFW photo's embedding, moved by IDENTITY_NOISE per dimension."""
    rng = np.random.default_rng(seed)
    identities = max(1, size // 3)
    parents = rng.integers(0, len(lfw), size=identities)
    centres = unit(lfw[parents] + rng.normal(0, IDENTITY_NOISE, (identities, lfw.shape[1])))
    return _scatter(rng, centres, size)


def lfw_embeddings() -> np.ndarray | None:
    """(n, 128) dlib embeddings, one per LFW training photo with a face; None without the folder."""
    from faces.calibration.dataset import default_lfw_dir, embed_folder

    folder = default_lfw_dir()
    if not (folder / "manifest.csv").exists():
        return None
    log(f"scale: LFW embeddings of {folder} (cached after the first run)")
    _, vectors = embed_folder(folder=folder).photo_embeddings()
    return vectors.astype(np.float32)


def exact_top1(matrix: np.ndarray, probes: np.ndarray) -> np.ndarray:
    best = np.empty(len(probes), dtype=np.int64)
    for start in range(0, len(probes), 100):
        best[start:start + 100] = np.argmax(probes[start:start + 100] @ matrix.T, axis=1)
    return best


def timed_search(vectors, probes: np.ndarray) -> tuple[list[float], np.ndarray]:
    latencies, top_ids = [], []
    for probe in probes:
        started = time.perf_counter()
        hits = vectors.search(probe[None], K)[0]
        latencies.append((time.perf_counter() - started) * 1000)
        top_ids.append(hits[0].face_id if hits else -1)
    return latencies, np.array(top_ids)


def second_worker(directory: str, probes_path: str) -> None:
    """`--worker`: another process opening the saved store, searching it, and reporting its memory."""
    from django.conf import settings

    from faces.index.embedded import AnnFiles

    probes = np.load(probes_path)
    before = memory()
    served = AnnFiles(Path(directory)).load(1, "bench", db_version=1, ann_min_faces=settings.FACEPORTAL_ANN_MIN_FACES)
    latencies, _ = timed_search(served, probes)
    after = memory()
    print(json.dumps({"p50": percentile(latencies, 0.5), **{f"{k}_delta": after[k] - before[k] for k in after},
                      **{f"{k}_total": after[k] for k in after}}), flush=True)
    sys.stdin.read()  # keep mapping the store until the first process has read its own memory


def second_worker_memory(directory: str, probes_path: Path) -> tuple[dict, dict[str, float]]:
    """Start the 2nd worker; while it still maps the store, read this process's memory (PSS halves)."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    child = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--worker", directory, str(probes_path)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    line = child.stdout.readline()
    shared = memory()
    _, errors = child.communicate(timeout=600)  # closes its stdin: the worker exits
    try:
        return json.loads(line), shared
    except ValueError:
        log(f"scale: second worker failed: {errors[-2000:]}")
        return {}, shared


def run(real: np.ndarray, sizes=DEFAULT_SIZES, lfw: np.ndarray | None = None) -> str:
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

    if lfw is None:
        lfw = lfw_embeddings()
    galleries = [("dev blend", synthetic_gallery, real)] + ([("crowded (LFW)", crowded_gallery, lfw)]
                                                           if lfw is not None else [])
    quality, memory_rows = [], []
    for size in sizes:
        for gallery_name, make, source in galleries:
            log(f"scale: {size} faces, {gallery_name}")
            vectors, owners, probes, probe_owners = make(source, size)
            face_ids = np.arange(1, size + 1, dtype=np.int64)
            truth = exact_top1(vectors, probes)

            exact = OrgVectors(dimension=128, ann_min_faces=10**12, face_ids=face_ids, person_ids=owners,
                               matrix=vectors)
            exact_ms = []
            for probe in probes[:EXACT_TIMED_QUERIES]:
                started = time.perf_counter()
                exact.search(probe[None], K)
                exact_ms.append((time.perf_counter() - started) * 1000)
            del exact

            gc.collect()
            before = rss_mb()
            started = time.perf_counter()
            built = OrgVectors(dimension=128, ann_min_faces=settings.FACEPORTAL_ANN_MIN_FACES)
            built.upsert(face_ids, owners, vectors)
            build_s = time.perf_counter() - started
            in_heap_rss = rss_mb() - before
            # The structure every worker held before (graph and float32 copies in its heap), same probes.
            heap_latencies, heap_top = timed_search(built, probes)
            heap_recall = float(np.mean(heap_top == face_ids[truth]))
            served, directory, built_approximate = built, None, built.approximate
            restore_s = add_ms = float("nan")
            worker: dict = {}
            if built.approximate:
                directory = tempfile.TemporaryDirectory()
                files = AnnFiles(Path(directory.name))
                built.version = 1
                files.save(1, "bench", built)
                del built, served
                gc.collect()
                before_map = memory()
                started = time.perf_counter()
                served = files.load(1, "bench", db_version=1, ann_min_faces=settings.FACEPORTAL_ANN_MIN_FACES)
                restore_s = time.perf_counter() - started
            latencies, top_ids = timed_search(served, probes)
            recall = float(np.mean(top_ids == face_ids[truth]))
            same_person = float(np.mean(owners[np.clip(top_ids - 1, 0, size - 1)] == owners[truth]))
            # How crowded the gallery is: exact search itself names the probe's identity this often.
            exact_identifies = float(np.mean(owners[truth] == probe_owners))
            if served.approximate:
                mine = memory()
                probes_path = Path(directory.name) / "probes.npy"
                np.save(probes_path, probes)
                worker, mine_shared = second_worker_memory(directory.name, probes_path)
                memory_rows.append([
                    f"{size:,}", gallery_name, in_heap_rss,
                    mine["rss"] - before_map["rss"], mine["anonymous"] - before_map["anonymous"],
                    mine_shared["pss"] - before_map["pss"],
                    worker.get("rss_delta", float("nan")), worker.get("anonymous_delta", float("nan")),
                    worker.get("pss_delta", float("nan")), worker.get("rss_total", float("nan")),
                    served.memory_bytes() / 2**20, served.mapped_bytes() / 2**20,
                ])
                extra = unit(vectors[:200] + np.random.default_rng(5).normal(0, 0.02, (200, 128)))
                started = time.perf_counter()
                for i, vector in enumerate(extra):
                    served.upsert(np.array([size + 1 + i]), np.array([0]), vector[None])
                add_ms = (time.perf_counter() - started) * 1000 / len(extra)
            quality.append([
                f"{size:,}", gallery_name,
                f"HNSW {HNSW_DTYPE} mapped + f32 re-rank mapped" if served.approximate else "exact NumPy",
                percentile(latencies, 0.5), percentile(latencies, 0.99), median(exact_ms),
                percentile(heap_latencies, 0.5), heap_recall if built_approximate else float("nan"),
                worker.get("p50", float("nan")), recall, same_person, exact_identifies, build_s, restore_s, add_ms,
            ])
            del served, vectors
            if directory is not None:
                directory.cleanup()
            gc.collect()
    hnsw = (f"HNSW above FACEPORTAL_ANN_MIN_FACES={settings.FACEPORTAL_ANN_MIN_FACES}: usearch graph on int8 "
            f"copies (M={HNSW_CONNECTIVITY}, ef_construction={HNSW_EXPANSION_ADD}, expansion_search="
            f"{settings.FACEPORTAL_ANN_EXPANSION_SEARCH}), its best {RERANK_CANDIDATES} candidates, plus every face "
            f"of the people behind the best {RERANK_PEOPLE}, re-ranked exactly against the float32 vectors.")
    text = table(
        "Gallery scale: one organisation, 128-d dlib vectors, single-query search (k=20)",
        ["faces", "gallery", "structure", "p50 ms", "p99 ms", "exact NumPy p50 ms", "in-heap p50 ms",
         "in-heap recall@1", "2nd worker p50 ms",
         "recall@1 vs exact", "same person@1", "exact names probe's identity", "build s", "restore s",
         "add ms/face"],
        quality,
        note=(f"Galleries: real dlib embeddings; dev blend = 3 dev photos blended per synthetic identity; crowded "
              f"= one LFW training photo per identity moved by σ={IDENTITY_NOISE}/dim; 1–5 faces per identity, "
              f"photo noise σ={INTRA_PERSON_NOISE}/dim, {QUERIES} probes = fresh photos of known identities. "
              f"recall@1: the index's top face is exact search's top face; same person@1: it belongs to the same "
              f"identity; exact names probe's identity: how often exact search itself returns a face of the "
              f"probe's identity (lower = a more crowded gallery). {hnsw} The graph is built in memory from "
              f"scratch on all {os.cpu_count()} cores (build s), saved, and searched from its memory-mapped "
              f"files as a restarted worker does (restore s: mapping them); add = one new face (kept in the "
              f"worker's memory, searched exactly beside the graph until the next save). In-heap: the same "
              f"graph and float32 copies before saving, in the process's own memory (the previous design), "
              f"same probes, same run."),
    )
    if memory_rows:
        text += "\n" + table(
            "Gallery scale: memory per worker (MB)",
            ["faces", "gallery", "built in memory: RSS +", "mapped: RSS +", "mapped: anon +", "mapped: PSS +",
             "2nd worker: RSS +", "2nd worker: anon +", "2nd worker: PSS +", "2nd worker: RSS total",
             "own arrays", "mapped files"],
            memory_rows,
            note=("Built in memory: the process's RSS growth while building the graph with its float32 copies "
                  "in its heap (how every worker held them before). Mapped: the structure the service now "
                  f"serves, after mapping the saved files and answering the {QUERIES} probes; anon = "
                  "Anonymous (this process's own memory); RSS - anon = file pages of the mapped graph and "
                  "vectors, shared by every worker through the page cache and dropped by the kernel under "
                  "memory pressure (they are clean); PSS = each shared page divided by the number of "
                  "processes mapping it, read while the 2nd worker maps the same files. 2nd worker: a fresh "
                  "process opening the same store and answering the same probes (+ = growth from just before "
                  "it opened the store; total includes its Python, NumPy and Django). Own arrays: face and "
                  "person ids and rows; mapped files: graph + float32 vectors on disk (the most a worker's "
                  "RSS can grow by once every page has been touched)."),
        )
    return text


if __name__ == "__main__":
    setup_django()
    if sys.argv[1:2] == ["--worker"]:
        second_worker(sys.argv[2], sys.argv[3])
        sys.exit(0)
    from bench.embeddings import dev_embeddings

    chosen = tuple(int(arg) for arg in sys.argv[1:]) or DEFAULT_SIZES
    run(dev_embeddings(), chosen)
