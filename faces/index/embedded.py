"""Embedded vector store: exact NumPy top-k for small organisations, a persisted HNSW graph for large ones.

The durable copy is the `EmbeddedVector` table, written in the caller's database transaction, so
registration is atomic with its face rows. Each worker process keeps the vectors of an organisation
in memory with the `IndexState.version` they reflect; every write bumps that version and stamps its
rows with it, so before a search a worker compares versions (one indexed read) and, when another
worker wrote, fetches only the newer rows (plus an id diff when a count shows removals).

Organisations with at least `FACEPORTAL_ANN_MIN_FACES` faces are searched through a usearch HNSW
graph (inner product on L2-normalised float32, so similarities are exact for the hits it returns).
The graph is saved under `VAR_DIR/index/` with the version it reflects and the organisation's
creation time, so a restart loads it and catches up instead of rebuilding it; a file from another
database (same id, other organisation) or from the future is ignored.

Building a graph (when an organisation crosses the threshold, or opens with no usable file) and
saving it are slow, so neither runs in a request's after-commit hook nor under a search's lock:
a background thread per process does both, while searches stay exact until the graph is ready.
Files are written, replaced and removed under a cross-process lock (`flock` on `org-<id>.lock`),
and never replaced by an older version, so two workers cannot delete each other's graph files.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import queue
import threading
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import InitVar, dataclass, field
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import F

from faces.index.base import Hit, VectorIndex, VectorRecord, cosine_to_similarity, vector_to_bytes
from faces.models import EmbeddedVector, IndexState

logger = logging.getLogger(__name__)

HNSW_CONNECTIVITY = 24
HNSW_EXPANSION_ADD = 48
# The graph holds int8 copies (4x less to compare while building and searching); the float32 copies
# kept beside it re-rank what the graph proposes, so returned similarities stay exact.
HNSW_DTYPE = "i8"
RERANK_CANDIDATES = 32
# The other faces of the people behind this many best candidates are re-ranked too (at most
# RERANK_PERSON_FACES of them): a person's photos sit close together, and the graph can reach a
# person yet stop at a photo other than the nearest.
RERANK_PEOPLE = 4
RERANK_PERSON_FACES = 256
# Dead rows (of removed faces) are reclaimed once they reach this share of the live ones.
COMPACT_DEAD_SHARE = 0.25
# Save the graph again once this share of it changed since the last save (and at least SAVE_MIN_CHANGES).
SAVE_CHANGED_SHARE = 0.02
SAVE_MIN_CHANGES = 1000
FETCH_CHUNK = 5000


def _ann_index(dimension: int):
    from usearch.index import Index

    return Index(
        ndim=dimension, metric="ip", dtype=HNSW_DTYPE, connectivity=HNSW_CONNECTIVITY,
        expansion_add=HNSW_EXPANSION_ADD, expansion_search=settings.FACEPORTAL_ANN_EXPANSION_SEARCH,
    )


@dataclass
class OrgVectors:
    """One organisation's vectors in memory: float32 rows, searched exactly or through an HNSW graph.

    `face_ids` stays sorted with `person_ids` and `rows` aligned to it, so hits map to people by
    binary search; `rows[i]` is where face `face_ids[i]`'s vector sits in `store`. Without a graph,
    `store[:n]` is kept in face order for a single matrix product. With one, new vectors are
    appended (amortised growth, no copy of a million rows per registration) and removed ones zeroed.
    Public so the benchmarks measure the very structure the service searches.
    """

    dimension: int
    ann_min_faces: int
    version: int = 0
    face_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    person_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    matrix: InitVar[np.ndarray | None] = None  # float32 (n, d) aligned with face_ids, to start from
    ann: object | None = None  # usearch.index.Index keyed by face id
    changed_since_save: int = 0
    # False: crossing `ann_min_faces` only makes `wants_graph` true, and the owner builds the graph
    # elsewhere (the embedded index, in its background thread); True builds it inline (benchmarks).
    build_inline: bool = True
    stamp: str = ""  # which organisation (id and creation time) the saved files must belong to
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    store: np.ndarray = field(init=False, repr=False)
    rows: np.ndarray = field(init=False, repr=False)
    used: int = field(init=False, default=0)
    # With a graph: face ids ordered by person (`people_sorted` aligned), to find a person's faces.
    people_sorted: np.ndarray = field(init=False, repr=False)
    faces_by_person: np.ndarray = field(init=False, repr=False)

    def __post_init__(self, matrix: np.ndarray | None) -> None:
        if matrix is None:
            matrix = np.zeros((len(self.face_ids), self.dimension), dtype=np.float32)
        self.store = np.ascontiguousarray(matrix, dtype=np.float32)
        self.used = len(self.store)
        self.rows = np.arange(self.used, dtype=np.int64)
        self._index_people()

    def _index_people(self) -> None:
        order = np.lexsort((self.face_ids, self.person_ids))
        self.people_sorted, self.faces_by_person = self.person_ids[order], self.face_ids[order]

    def __len__(self) -> int:
        return len(self.face_ids)

    @property
    def approximate(self) -> bool:
        return self.ann is not None

    def ensure_dimension(self, dimension: int) -> None:
        if self.dimension == 0 and not len(self):
            self.dimension = dimension
            self.store = np.zeros((0, dimension), dtype=np.float32)

    def vectors(self) -> np.ndarray:
        """float32 (n, d) in face order (a view when the store is in that order)."""
        if self.used == len(self) and self._in_face_order():
            return self.store[: self.used]
        return self.store[self.rows]

    def _in_face_order(self) -> bool:
        return len(self.rows) < 2 or bool(np.all(self.rows[1:] > self.rows[:-1]))

    def _append(self, vectors: np.ndarray) -> np.ndarray:
        needed = self.used + len(vectors)
        if needed > len(self.store):
            grown = np.empty((max(needed, int(len(self.store) * 1.25) + 1024), self.dimension), dtype=np.float32)
            grown[: self.used] = self.store[: self.used]
            self.store = grown
        self.store[self.used: needed] = vectors
        new_rows = np.arange(self.used, needed, dtype=np.int64)
        self.used = needed
        return new_rows

    def _compact(self) -> None:
        self.store = np.ascontiguousarray(self.vectors())
        self.used = len(self.store)
        self.rows = np.arange(self.used, dtype=np.int64)

    def upsert(self, face_ids: np.ndarray, person_ids: np.ndarray, vectors: np.ndarray, *,
               threads: int = 0) -> None:
        face_ids = np.asarray(face_ids, dtype=np.int64)
        if not len(face_ids):
            return
        vectors = np.ascontiguousarray(vectors, dtype=np.float32).reshape(len(face_ids), self.dimension)
        self.remove(face_ids[np.isin(face_ids, self.face_ids)])
        all_ids = np.concatenate([self.face_ids, face_ids])
        all_people = np.concatenate([self.person_ids, np.asarray(person_ids, dtype=np.int64)])
        all_rows = np.concatenate([self.rows, self._append(vectors)])
        if len(all_ids) > 1 and not np.all(all_ids[1:] > all_ids[:-1]):
            order = np.argsort(all_ids, kind="stable")
            all_ids, all_people, all_rows = all_ids[order], all_people[order], all_rows[order]
        self.face_ids, self.person_ids, self.rows = all_ids, all_people, all_rows
        if self.ann is not None:
            self.ann.add(face_ids.astype(np.uint64), vectors, threads=threads)
            people = np.asarray(person_ids, dtype=np.int64)
            order = np.lexsort((face_ids, people))
            at = np.searchsorted(self.people_sorted, people[order], side="right")
            self.people_sorted = np.insert(self.people_sorted, at, people[order])
            self.faces_by_person = np.insert(self.faces_by_person, at, face_ids[order])
        elif not (self.used == len(self) and self._in_face_order()):
            self._compact()
        self.changed_since_save += len(face_ids)
        if self.build_inline and self.wants_graph:
            self.to_ann(threads=threads)

    @property
    def wants_graph(self) -> bool:
        return self.ann is None and len(self) >= self.ann_min_faces

    @property
    def save_due(self) -> bool:
        return self.approximate and self.changed_since_save >= max(SAVE_MIN_CHANGES, SAVE_CHANGED_SHARE * len(self))

    def remove(self, face_ids: np.ndarray) -> None:
        gone = np.asarray(face_ids, dtype=np.int64)
        if not len(gone) or not len(self.face_ids):
            return
        keep = ~np.isin(self.face_ids, gone)
        if keep.all():
            return
        if self.ann is not None:
            self.ann.remove(self.face_ids[~keep].astype(np.uint64))
            still = ~np.isin(self.faces_by_person, gone)
            self.people_sorted, self.faces_by_person = self.people_sorted[still], self.faces_by_person[still]
        self.store[self.rows[~keep]] = 0.0  # no copy of a removed face's vector stays in memory
        self.changed_since_save += int((~keep).sum())
        self.face_ids, self.person_ids, self.rows = self.face_ids[keep], self.person_ids[keep], self.rows[keep]
        if self.ann is None or self.used - len(self) > max(SAVE_MIN_CHANGES, COMPACT_DEAD_SHARE * len(self)):
            self._compact()

    def to_ann(self, *, threads: int = 0) -> None:
        ann = _ann_index(self.dimension)
        if len(self):
            ann.add(self.face_ids.astype(np.uint64), self.vectors(), threads=threads)
        self.adopt_graph(ann)

    def adopt_graph(self, ann) -> None:
        """Search through `ann` (built elsewhere over exactly this copy's faces) from now on."""
        self.ann = ann
        self._index_people()
        self.changed_since_save = len(self)

    def vectors_copy(self) -> np.ndarray:
        """`vectors()` as an array of its own (copied once, even when the store is out of order)."""
        matrix = self.vectors()
        return matrix.copy() if np.shares_memory(matrix, self.store) else matrix

    def snapshot(self) -> OrgVectors:
        """A copy to save from without holding this one's lock (the graph is copied in memory)."""
        return OrgVectors(
            dimension=self.dimension, ann_min_faces=self.ann_min_faces, version=self.version,
            face_ids=self.face_ids.copy(), person_ids=self.person_ids.copy(), matrix=self.vectors_copy(),
            ann=self.ann.copy() if self.ann is not None else None, stamp=self.stamp,
        )

    def search(self, queries: np.ndarray, k: int, min_similarity: float = 0.0) -> list[list[Hit]]:
        n = len(self)
        if n == 0 or k <= 0:
            return [[] for _ in range(len(queries))]
        k = min(k, n)
        if self.ann is None:
            return self._exact(queries, k, min_similarity)
        matches = self.ann.search(queries, min(n, max(k, RERANK_CANDIDATES)))
        if not hasattr(matches, "counts"):  # usearch answers one query with a flat `Matches`
            candidates = [matches.keys]
        else:
            candidates = [matches.keys[i][: matches.counts[i]] for i in range(len(queries))]
        results = []
        for query, keys in zip(queries, candidates, strict=True):
            keys = np.asarray(keys).astype(np.int64)
            positions = np.minimum(np.searchsorted(self.face_ids, keys), n - 1)
            positions = positions[self.face_ids[positions] == keys]  # only faces this copy still holds
            positions = self._with_same_people(positions, self.store[self.rows[positions]] @ query)
            similarities = cosine_to_similarity(self.store[self.rows[positions]] @ query)
            best = np.argsort(-similarities, kind="stable")[:k]
            results.append(
                [
                    Hit(face_id=int(self.face_ids[p]), person_id=int(self.person_ids[p]), similarity=float(s))
                    for p, s in zip(positions[best], similarities[best], strict=True)
                    if s >= min_similarity
                ]
            )
        return results

    def _with_same_people(self, positions: np.ndarray, cosines: np.ndarray) -> np.ndarray:
        """`positions` plus those of every face of the people behind the best few of them."""
        people = np.unique(self.person_ids[positions[np.argsort(-cosines)[:RERANK_PEOPLE]]])
        if not len(people):
            return positions
        starts = np.searchsorted(self.people_sorted, people, side="left")
        ends = np.searchsorted(self.people_sorted, people, side="right")
        faces = np.concatenate([self.faces_by_person[a:b] for a, b in zip(starts, ends, strict=True)])
        faces = faces[:RERANK_PERSON_FACES]
        if not len(faces):
            return positions
        extra = np.minimum(np.searchsorted(self.face_ids, faces), len(self) - 1)
        return np.union1d(positions, extra[self.face_ids[extra] == faces])

    def _exact(self, queries: np.ndarray, k: int, min_similarity: float) -> list[list[Hit]]:
        n = len(self)
        similarities = cosine_to_similarity(queries @ self.store[:n].T)
        results = []
        for row in similarities:
            top = np.argpartition(-row, k - 1)[:k] if k < n else np.arange(n)
            top = top[np.argsort(-row[top], kind="stable")]
            results.append(
                [
                    Hit(face_id=int(self.face_ids[i]), person_id=int(self.person_ids[i]), similarity=float(row[i]))
                    for i in top
                    if row[i] >= min_similarity
                ]
            )
        return results

    def memory_bytes(self) -> int:
        own = self.face_ids.nbytes + self.person_ids.nbytes + self.rows.nbytes + self.store.nbytes
        if self.ann is not None:
            return own + self.people_sorted.nbytes + self.faces_by_person.nbytes + int(self.ann.memory_usage)
        return own


class AnnFiles:
    """`VAR_DIR/index/org-<id>.json` names the current graph file and says what it reflects."""

    def __init__(self, directory: Path):
        self.directory = directory

    def _meta(self, organization_id: int) -> Path:
        return self.directory / f"org-{organization_id}.json"

    @contextmanager
    def _locked(self, organization_id: int, *, exclusive: bool) -> Iterator[None]:
        """Cross-process: writers (save, delete) exclude each other and readers (load)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / f"org-{organization_id}.lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _saved_version(self, organization_id: int, stamp: str) -> int:
        try:
            meta = json.loads(self._meta(organization_id).read_text())
        except (OSError, ValueError):
            return -1
        return int(meta.get("version", -1)) if meta.get("stamp") == stamp else -1

    def save(self, organization_id: int, stamp: str, vectors: OrgVectors) -> bool:
        """Write the graph, then point the meta file at it; False when a newer one is there already."""
        with self._locked(organization_id, exclusive=True):
            if self._saved_version(organization_id, stamp) > vectors.version:
                return False  # another worker saved a later state: keep it
            token = f"org-{organization_id}-v{vectors.version}-{uuid.uuid4().hex[:8]}"
            vectors.ann.save(str(self.directory / f"{token}.usearch"))
            np.savez(self.directory / f"{token}.npz", face_ids=vectors.face_ids, person_ids=vectors.person_ids,
                     vectors=vectors.vectors())
            meta = {"token": token, "version": vectors.version, "stamp": stamp, "dimension": vectors.dimension}
            temporary = self.directory / f".{token}.json"
            temporary.write_text(json.dumps(meta))
            os.replace(temporary, self._meta(organization_id))  # readers see the old or the new file, whole
            vectors.changed_since_save = 0
            self._remove_others(organization_id, keep=token)
        return True

    def load(self, organization_id: int, stamp: str, *, db_version: int, ann_min_faces: int) -> OrgVectors | None:
        if not self._meta(organization_id).exists():
            return None
        with self._locked(organization_id, exclusive=False):
            return self._load(organization_id, stamp, db_version=db_version, ann_min_faces=ann_min_faces)

    def _load(self, organization_id: int, stamp: str, *, db_version: int, ann_min_faces: int) -> OrgVectors | None:
        from usearch.index import Index

        try:
            meta = json.loads(self._meta(organization_id).read_text())
        except (OSError, ValueError):
            return None
        if meta.get("stamp") != stamp or int(meta.get("version", -1)) > db_version:
            return None  # another database's organisation with this id, or a rolled-back future
        try:
            ann = Index.restore(str(self.directory / f"{meta['token']}.usearch"), view=False)
            with np.load(self.directory / f"{meta['token']}.npz") as saved:
                face_ids, person_ids, matrix = saved["face_ids"], saved["person_ids"], saved["vectors"]
        except (OSError, ValueError, KeyError, RuntimeError):  # KeyError: a file from before re-ranking
            logger.warning("ignoring unreadable vector index file", extra={"organization_id": organization_id})
            return None
        dimension = int(meta["dimension"])
        if ann is None or len(ann) != len(face_ids) or matrix.shape != (len(face_ids), dimension):
            return None
        ann.expansion_search = settings.FACEPORTAL_ANN_EXPANSION_SEARCH
        return OrgVectors(
            dimension=dimension, ann_min_faces=ann_min_faces, version=int(meta["version"]),
            face_ids=face_ids.astype(np.int64), person_ids=person_ids.astype(np.int64), matrix=matrix, ann=ann,
            stamp=stamp,
        )

    def _remove_others(self, organization_id: int, *, keep: str | None) -> None:
        for path in self.directory.glob(f"org-{organization_id}-v*"):
            if keep is None or not path.name.startswith(keep):
                path.unlink(missing_ok=True)

    def delete(self, organization_id: int) -> None:
        if self.directory.exists():
            with self._locked(organization_id, exclusive=True):
                self._meta(organization_id).unlink(missing_ok=True)
                self._remove_others(organization_id, keep=None)


class GraphBuilder:
    """One daemon thread per index that builds and saves graphs, off request and search paths.

    An organisation is queued at most once at a time; what it needs is decided when its turn comes.
    """

    def __init__(self, work) -> None:
        self._work = work
        self._queue: queue.Queue[int] = queue.Queue()
        self._pending: set[int] = set()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.busy = threading.Lock()  # held while a task runs

    def submit(self, organization_id: int) -> None:
        with self._lock:
            if organization_id in self._pending:
                return
            self._pending.add(organization_id)
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="faceportal-graph-builder", daemon=True)
                self._thread.start()
        self._queue.put(organization_id)

    def wait(self) -> None:
        """Until everything queued so far is done (tests, benchmarks, management commands)."""
        self._queue.join()

    def _run(self) -> None:
        while True:
            organization_id = self._queue.get()
            with self._lock:
                self._pending.discard(organization_id)
            try:
                with self.busy:
                    self._work(organization_id)
            except Exception:  # the graph is only a speed-up: searches stay exact, the next write retries
                logger.exception("building or saving the vector graph failed",
                                 extra={"organization_id": organization_id})
            finally:
                self._queue.task_done()


class EmbeddedVectorIndex(VectorIndex):
    name = "embedded"

    def __init__(self, *, ann_min_faces: int | None = None, directory: Path | None = None) -> None:
        self.ann_min_faces = ann_min_faces if ann_min_faces is not None else settings.FACEPORTAL_ANN_MIN_FACES
        self.files = AnnFiles(directory or Path(settings.VAR_DIR) / "index")
        self._orgs: dict[int, OrgVectors] = {}
        self._lock = threading.Lock()
        self._open_locks: dict[int, threading.Lock] = {}
        self.builder = GraphBuilder(self._background_work)

    # --- versioning ---------------------------------------------------------------------------
    def _bump(self, organization_id: int) -> int:
        """Next version; the row lock it takes orders concurrent writers of one organisation."""
        IndexState.objects.get_or_create(organization_id=organization_id)
        IndexState.objects.filter(organization_id=organization_id).update(version=F("version") + 1)
        return IndexState.objects.values_list("version", flat=True).get(organization_id=organization_id)

    def _db_version(self, organization_id: int) -> int:
        version = IndexState.objects.filter(organization_id=organization_id).values_list("version", flat=True).first()
        return version or 0

    def _stamp(self, organization_id: int) -> str:
        from organizations.models import Organization

        created = Organization.objects.filter(pk=organization_id).values_list("created_at", flat=True).first()
        return f"{organization_id}:{created.isoformat() if created else ''}"

    # --- loading and catching up --------------------------------------------------------------
    def _fetch(self, queryset) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        face_ids, person_ids, blobs = [], [], []
        for face_id, person_id, vector in queryset.values_list("face_id", "person_id", "vector").iterator(
            chunk_size=FETCH_CHUNK
        ):
            face_ids.append(face_id)
            person_ids.append(person_id)
            blobs.append(bytes(vector))
        if not blobs:
            return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 0), np.float32)
        matrix = np.frombuffer(b"".join(blobs), dtype="<f4").reshape(len(blobs), -1).astype(np.float32)
        return np.array(face_ids, dtype=np.int64), np.array(person_ids, dtype=np.int64), matrix

    def _load_from_db(self, organization_id: int) -> OrgVectors:
        with transaction.atomic():
            version = self._db_version(organization_id)
            face_ids, person_ids, matrix = self._fetch(
                EmbeddedVector.objects.filter(organization_id=organization_id).order_by("face_id")
            )
        vectors = OrgVectors(dimension=matrix.shape[1] if len(matrix) else 0, ann_min_faces=self.ann_min_faces,
                             version=version, build_inline=False)
        if len(face_ids):
            vectors.upsert(face_ids, person_ids, matrix)
        return vectors

    def _open(self, organization_id: int, db_version: int) -> OrgVectors:
        stamp = self._stamp(organization_id)
        vectors = self.files.load(organization_id, stamp, db_version=db_version, ann_min_faces=self.ann_min_faces)
        if vectors is not None:
            vectors.build_inline = False
            if self._catch_up(organization_id, vectors, db_version) is not None:
                return vectors
        # No usable file, or one too far behind to catch up: the table is the truth. Searched
        # exactly until the background thread has built its graph (when it is big enough).
        vectors = self._load_from_db(organization_id)
        vectors.stamp = stamp
        self._schedule(organization_id, vectors)
        return vectors

    def _catch_up(self, organization_id: int, vectors: OrgVectors, db_version: int) -> OrgVectors | None:
        """Bring `vectors` to `db_version` in place; None when a full reload is cheaper or needed."""
        if db_version < vectors.version:
            return None  # the state row was dropped and re-created
        rows = EmbeddedVector.objects.filter(organization_id=organization_id, version__gt=vectors.version)
        if rows.count() > max(SAVE_MIN_CHANGES, len(vectors) // 2):
            return None  # rebuilt elsewhere
        face_ids, person_ids, matrix = self._fetch(rows)
        if len(face_ids):
            vectors.ensure_dimension(matrix.shape[1])
            vectors.upsert(face_ids, person_ids, matrix)
        if EmbeddedVector.objects.filter(organization_id=organization_id).count() != len(vectors):
            # Removals leave no rows behind: compare ids, and fetch whatever arrived meanwhile.
            stored = np.array(
                EmbeddedVector.objects.filter(organization_id=organization_id).values_list("face_id", flat=True),
                dtype=np.int64,
            )
            vectors.remove(vectors.face_ids[~np.isin(vectors.face_ids, stored)])
            missing = stored[~np.isin(stored, vectors.face_ids)]
            if len(missing):
                vectors.upsert(*self._fetch(EmbeddedVector.objects.filter(organization_id=organization_id,
                                                                          face_id__in=missing.tolist())))
        vectors.version = db_version
        self._schedule(organization_id, vectors)
        return vectors

    # --- background: graph build and save -------------------------------------------------------
    def _schedule(self, organization_id: int, vectors: OrgVectors) -> None:
        if vectors.wants_graph or vectors.save_due:
            self.builder.submit(organization_id)

    def wait_for_background(self) -> None:
        self.builder.wait()

    def _background_work(self, organization_id: int) -> None:
        with self._lock:
            vectors = self._orgs.get(organization_id)
        if vectors is None:
            return
        if vectors.wants_graph:
            self._build_graph(vectors)
        self._save(organization_id, vectors)

    def _build_graph(self, vectors: OrgVectors) -> None:
        with vectors.lock:  # a copy, taken quickly; searches go on meanwhile
            face_ids, matrix = vectors.face_ids.copy(), vectors.vectors_copy()
        ann = _ann_index(vectors.dimension)
        ann.add(face_ids.astype(np.uint64), matrix)
        with vectors.lock:
            if not vectors.wants_graph:
                return
            # Faces removed and added while the graph was being built.
            gone = face_ids[~np.isin(face_ids, vectors.face_ids)]
            if len(gone):
                ann.remove(gone.astype(np.uint64))
            new = ~np.isin(vectors.face_ids, face_ids)
            if new.any():
                ann.add(vectors.face_ids[new].astype(np.uint64), vectors.store[vectors.rows[new]])
            vectors.adopt_graph(ann)

    def _save(self, organization_id: int, vectors: OrgVectors) -> None:
        with vectors.lock:
            if not vectors.save_due:
                return
            snapshot = vectors.snapshot()
            changed, vectors.changed_since_save = vectors.changed_since_save, 0
        with self._lock:
            current = self._orgs.get(organization_id) is vectors
        try:
            if current:  # not dropped or rebuilt meanwhile
                self.files.save(organization_id, vectors.stamp, snapshot)
        except OSError:  # the graph is only a cache of the table: serve from memory, save next time
            with vectors.lock:
                vectors.changed_since_save += changed
            logger.exception("could not save the vector index", extra={"organization_id": organization_id})

    def _open_lock(self, organization_id: int) -> threading.Lock:
        with self._lock:
            return self._open_locks.setdefault(organization_id, threading.Lock())

    def _current(self, organization_id: int) -> OrgVectors:
        db_version = self._db_version(organization_id)
        with self._lock:
            vectors = self._orgs.get(organization_id)
        if vectors is not None and vectors.version == db_version:
            return vectors
        with self._open_lock(organization_id):
            with self._lock:
                vectors = self._orgs.get(organization_id)
            if vectors is not None:
                if vectors.version == db_version:
                    return vectors
                with vectors.lock:
                    if self._catch_up(organization_id, vectors, db_version) is not None:
                        return vectors
            vectors = self._open(organization_id, db_version)
            with self._lock:
                self._orgs[organization_id] = vectors
            return vectors

    def _after_commit(self, organization_id: int, new_version: int, apply) -> None:
        """Apply our own write to the in-memory copy once committed, if nothing else intervened.

        Otherwise the next search catches up from the rows stamped with the versions it missed.
        """

        def callback() -> None:
            with self._lock:
                vectors = self._orgs.get(organization_id)
            if vectors is None:
                return
            try:
                with vectors.lock:
                    if vectors.version == new_version - 1:
                        apply(vectors)
                        vectors.version = new_version
                self._schedule(organization_id, vectors)
            except Exception:
                # The write committed (the table has it): never fail it now. Forget this worker's
                # copy instead; the next search reloads it from the table, whole.
                with self._lock:
                    if self._orgs.get(organization_id) is vectors:
                        del self._orgs[organization_id]
                logger.exception("in-memory vector update failed; reloading from the table",
                                 extra={"organization_id": organization_id})

        transaction.on_commit(callback, robust=True)

    # --- interface ----------------------------------------------------------------------------
    def ensure_organization(self, *, organization_id: int, dimension: int) -> None:
        IndexState.objects.get_or_create(organization_id=organization_id)

    def drop_organization(self, *, organization_id: int) -> None:
        with transaction.atomic():
            EmbeddedVector.objects.filter(organization_id=organization_id).delete()
            IndexState.objects.filter(organization_id=organization_id).delete()
        with self._lock:
            self._orgs.pop(organization_id, None)
        self.files.delete(organization_id)

    def add(self, *, organization_id: int, records: list[VectorRecord]) -> None:
        if not records:
            return
        with transaction.atomic():
            new_version = self._bump(organization_id)
            EmbeddedVector.objects.bulk_create(
                [
                    EmbeddedVector(
                        organization_id=organization_id,
                        face_id=record.face_id,
                        person_id=record.person_id,
                        vector=vector_to_bytes(record.vector),
                        version=new_version,
                    )
                    for record in records
                ],
                batch_size=2000,
            )
            face_ids = np.array([r.face_id for r in records], dtype=np.int64)
            person_ids = np.array([r.person_id for r in records], dtype=np.int64)
            matrix = np.stack([np.asarray(r.vector, dtype=np.float32) for r in records])

            def apply(vectors: OrgVectors) -> None:
                vectors.ensure_dimension(matrix.shape[1])
                vectors.upsert(face_ids, person_ids, matrix)

            self._after_commit(organization_id, new_version, apply)

    def remove(self, *, organization_id: int, face_ids: list[int]) -> None:
        if not face_ids:
            return
        with transaction.atomic():
            new_version = self._bump(organization_id)
            EmbeddedVector.objects.filter(organization_id=organization_id, face_id__in=face_ids).delete()
            gone = np.array(face_ids, dtype=np.int64)
            self._after_commit(organization_id, new_version, lambda vectors: vectors.remove(gone))

    def search(
        self, *, organization_id: int, vectors: np.ndarray, k: int, min_similarity: float = 0.0
    ) -> list[list[Hit]]:
        queries = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        current = self._current(organization_id)
        with current.lock:
            return current.search(queries, k, min_similarity)

    def count(self, *, organization_id: int) -> int:
        return EmbeddedVector.objects.filter(organization_id=organization_id).count()

    def face_ids(self, *, organization_id: int) -> set[int]:
        return set(EmbeddedVector.objects.filter(organization_id=organization_id).values_list("face_id", flat=True))

    def rebuild(self, *, organization_id: int, records: Iterable[VectorRecord]) -> int:
        with transaction.atomic():
            new_version = self._bump(organization_id)
            EmbeddedVector.objects.filter(organization_id=organization_id).delete()
            batch: list[EmbeddedVector] = []
            written = 0
            for record in records:
                batch.append(
                    EmbeddedVector(
                        organization_id=organization_id, face_id=record.face_id, person_id=record.person_id,
                        vector=vector_to_bytes(record.vector), version=new_version,
                    )
                )
                if len(batch) >= 1000:
                    EmbeddedVector.objects.bulk_create(batch)
                    written += len(batch)
                    batch = []
            EmbeddedVector.objects.bulk_create(batch)
            written += len(batch)
        with self._lock:
            self._orgs.pop(organization_id, None)
        self.files.delete(organization_id)
        return written
