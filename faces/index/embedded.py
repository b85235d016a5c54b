"""Embedded vector store: exact cosine top-k over an in-memory matrix per organisation.

The durable copy is the `EmbeddedVector` table, written in the caller's database transaction, so
registration is atomic with its face rows. Each worker process keeps a matrix per organisation and
a version number; `IndexState.version` is bumped with every write, and a search first compares it
(one indexed read) and reloads the organisation when another worker changed it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from django.db import transaction
from django.db.models import F

from faces.index.base import Hit, VectorIndex, VectorRecord, cosine_to_similarity
from faces.models import EmbeddedVector, IndexState


@dataclass
class _OrgMatrix:
    version: int
    face_ids: np.ndarray  # int64 (n,)
    person_ids: np.ndarray  # int64 (n,)
    matrix: np.ndarray  # float32 (n, d)


def _to_bytes(vector: np.ndarray) -> bytes:
    return np.asarray(vector, dtype="<f4").tobytes()


class EmbeddedVectorIndex(VectorIndex):
    name = "embedded"

    def __init__(self) -> None:
        self._orgs: dict[int, _OrgMatrix] = {}
        self._lock = threading.Lock()

    # --- versioning ---------------------------------------------------------------------------
    def _bump(self, organization_id: int) -> int:
        IndexState.objects.get_or_create(organization_id=organization_id)
        IndexState.objects.filter(organization_id=organization_id).update(version=F("version") + 1)
        return IndexState.objects.values_list("version", flat=True).get(organization_id=organization_id)

    def _db_version(self, organization_id: int) -> int:
        version = IndexState.objects.filter(organization_id=organization_id).values_list("version", flat=True).first()
        return version or 0

    def _load(self, organization_id: int) -> _OrgMatrix:
        with transaction.atomic():
            version = self._db_version(organization_id)
            rows = list(
                EmbeddedVector.objects.filter(organization_id=organization_id)
                .order_by("face_id")
                .values_list("face_id", "person_id", "vector")
            )
        if rows:
            matrix = np.stack([np.frombuffer(bytes(row[2]), dtype="<f4") for row in rows]).astype(np.float32)
        else:
            matrix = np.zeros((0, 0), dtype=np.float32)
        return _OrgMatrix(
            version=version,
            face_ids=np.array([row[0] for row in rows], dtype=np.int64),
            person_ids=np.array([row[1] for row in rows], dtype=np.int64),
            matrix=matrix,
        )

    def _current(self, organization_id: int) -> _OrgMatrix:
        version = self._db_version(organization_id)
        with self._lock:
            cached = self._orgs.get(organization_id)
        if cached is not None and cached.version == version:
            return cached
        loaded = self._load(organization_id)
        with self._lock:
            self._orgs[organization_id] = loaded
        return loaded

    def _after_commit(self, organization_id: int, new_version: int, apply) -> None:
        """Apply our own write to the in-memory copy once committed, if nothing else intervened."""

        def callback() -> None:
            with self._lock:
                cached = self._orgs.get(organization_id)
                if cached is not None and cached.version == new_version - 1:
                    self._orgs[organization_id] = apply(cached)
                    self._orgs[organization_id].version = new_version
                else:
                    self._orgs.pop(organization_id, None)

        transaction.on_commit(callback)

    # --- interface ----------------------------------------------------------------------------
    def ensure_organization(self, *, organization_id: int, dimension: int) -> None:
        IndexState.objects.get_or_create(organization_id=organization_id)

    def drop_organization(self, *, organization_id: int) -> None:
        with transaction.atomic():
            EmbeddedVector.objects.filter(organization_id=organization_id).delete()
            IndexState.objects.filter(organization_id=organization_id).delete()
        with self._lock:
            self._orgs.pop(organization_id, None)

    def add(self, *, organization_id: int, records: list[VectorRecord]) -> None:
        if not records:
            return
        with transaction.atomic():
            EmbeddedVector.objects.bulk_create(
                [
                    EmbeddedVector(
                        organization_id=organization_id,
                        face_id=record.face_id,
                        person_id=record.person_id,
                        vector=_to_bytes(record.vector),
                    )
                    for record in records
                ]
            )
            new_version = self._bump(organization_id)

            def apply(cached: _OrgMatrix) -> _OrgMatrix:
                vectors = np.stack([np.asarray(r.vector, dtype=np.float32) for r in records])
                matrix = vectors if cached.matrix.size == 0 else np.vstack([cached.matrix, vectors])
                return _OrgMatrix(
                    version=cached.version,
                    face_ids=np.concatenate([cached.face_ids, [r.face_id for r in records]]).astype(np.int64),
                    person_ids=np.concatenate([cached.person_ids, [r.person_id for r in records]]).astype(np.int64),
                    matrix=matrix,
                )

            self._after_commit(organization_id, new_version, apply)

    def remove(self, *, organization_id: int, face_ids: list[int]) -> None:
        if not face_ids:
            return
        with transaction.atomic():
            EmbeddedVector.objects.filter(organization_id=organization_id, face_id__in=face_ids).delete()
            new_version = self._bump(organization_id)
            gone = np.array(face_ids, dtype=np.int64)

            def apply(cached: _OrgMatrix) -> _OrgMatrix:
                keep = ~np.isin(cached.face_ids, gone)
                return _OrgMatrix(
                    version=cached.version,
                    face_ids=cached.face_ids[keep],
                    person_ids=cached.person_ids[keep],
                    matrix=cached.matrix[keep] if cached.matrix.size else cached.matrix,
                )

            self._after_commit(organization_id, new_version, apply)

    def search(
        self, *, organization_id: int, vectors: np.ndarray, k: int, min_similarity: float = 0.0
    ) -> list[list[Hit]]:
        queries = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
        current = self._current(organization_id)
        n = len(current.face_ids)
        if n == 0 or k <= 0:
            return [[] for _ in range(len(queries))]
        similarities = cosine_to_similarity(queries @ current.matrix.T)
        k = min(k, n)
        results = []
        for row in similarities:
            top = np.argpartition(-row, k - 1)[:k] if k < n else np.arange(n)
            top = top[np.argsort(-row[top], kind="stable")]
            results.append(
                [
                    Hit(face_id=int(current.face_ids[i]), person_id=int(current.person_ids[i]),
                        similarity=float(row[i]))
                    for i in top
                    if row[i] >= min_similarity
                ]
            )
        return results

    def count(self, *, organization_id: int) -> int:
        return EmbeddedVector.objects.filter(organization_id=organization_id).count()

    def face_ids(self, *, organization_id: int) -> set[int]:
        return set(EmbeddedVector.objects.filter(organization_id=organization_id).values_list("face_id", flat=True))

    def rebuild(self, *, organization_id: int, records: Iterable[VectorRecord]) -> int:
        with transaction.atomic():
            EmbeddedVector.objects.filter(organization_id=organization_id).delete()
            batch: list[EmbeddedVector] = []
            written = 0
            for record in records:
                batch.append(
                    EmbeddedVector(
                        organization_id=organization_id, face_id=record.face_id, person_id=record.person_id,
                        vector=_to_bytes(record.vector),
                    )
                )
                if len(batch) >= 1000:
                    EmbeddedVector.objects.bulk_create(batch)
                    written += len(batch)
                    batch = []
            EmbeddedVector.objects.bulk_create(batch)
            written += len(batch)
            self._bump(organization_id)
        with self._lock:
            self._orgs.pop(organization_id, None)
        return written
