"""The store itself: the `EmbeddedVector` table as the durable copy, kept in step with each worker's
in-memory copy (versions, catch-up, on_commit apply) and with the graph files (background builder)."""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from django.conf import settings
from django.db import transaction
from django.db.models import F

from faces.index.base import Hit, VectorIndex, VectorRecord, vector_to_bytes
from faces.index.embedded.files import AnnFiles
from faces.index.embedded.memory import SAVE_MIN_CHANGES, OrgVectors, _ann_index
from faces.models import EmbeddedVector, IndexState

logger = logging.getLogger(__name__)

FETCH_CHUNK = 5000


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
        if vectors.save_due:
            # Another worker may have saved a later state already: map its files, no save of our own.
            self._adopt_saved(organization_id, vectors)
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
                ann.add(vectors.face_ids[new].astype(np.uint64), vectors._rows_matrix(vectors.rows[new]))
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
            return
        # Saved (or a later save was there): serve from the mapped files, drop the in-memory copy.
        self._adopt_saved(organization_id, vectors)

    def _adopt_saved(self, organization_id: int, vectors: OrgVectors) -> None:
        """Search through the saved files when they are newer than what `vectors` maps (if anything)."""
        with vectors.lock:
            version = vectors.version
            token = vectors.base.token if vectors.base is not None else None
        base = self.files.load_base(organization_id, vectors.stamp, max_version=version)
        if base is None or base.token == token:
            return
        with vectors.lock:
            with self._lock:
                if self._orgs.get(organization_id) is not vectors:
                    return
            if vectors.base is None or base.version >= vectors.base.version:
                vectors.rebase(base)

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
