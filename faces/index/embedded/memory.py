"""One organisation's vectors in a worker's memory, searched exactly or through an HNSW graph."""

from __future__ import annotations

import threading
from dataclasses import InitVar, dataclass, field

import numpy as np
from django.conf import settings

from faces.index.base import Hit, cosine_to_similarity

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
