"""One organisation's vectors in a worker's memory, searched exactly or through an HNSW graph.

A large organisation's graph and float32 vectors, once saved, are memory-mapped from their files
(`SavedBase`) rather than held in each worker's heap: the pages live once in the kernel's page
cache, shared by every worker process that maps them, and stay clean, so memory pressure can drop
them instead of swapping. What changed since that save (new faces, removals) stays in the worker's
own memory until the next save folds it into new files.
"""

from __future__ import annotations

import threading
from dataclasses import InitVar, dataclass, field
from pathlib import Path

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
# Rows copied at a time when a save streams vectors to its file (bounded extra memory).
WRITE_CHUNK = 65536


def _ann_index(dimension: int):
    from usearch.index import Index

    return Index(
        ndim=dimension, metric="ip", dtype=HNSW_DTYPE, connectivity=HNSW_CONNECTIVITY,
        expansion_add=HNSW_EXPANSION_ADD, expansion_search=settings.FACEPORTAL_ANN_EXPANSION_SEARCH,
    )



@dataclass(frozen=True)
class SavedBase:
    """A saved state, opened from its files: the graph as a usearch view and the float32 vectors
    as a copy-on-write map, both shared with every other process that maps the same files."""

    token: str
    version: int
    face_ids: np.ndarray  # sorted: the graph's keys, row i of `matrix` is face_ids[i]'s vector
    person_ids: np.ndarray
    matrix: np.ndarray  # np.memmap float32 (n, d), mode "c": writes stay private to this process
    ann: object  # usearch.index.Index viewing the graph file (never added to or removed from)
    graph_path: Path
    matrix_path: Path


@dataclass
class SaveJob:
    """What one save writes, taken under the copy's lock without copying the memory-mapped part."""

    dimension: int
    version: int
    stamp: str
    face_ids: np.ndarray
    person_ids: np.ndarray
    rows: np.ndarray
    offset: int
    base: SavedBase | None
    tail: np.ndarray  # the copy's own rows (all of them when there is no base)
    ann: object | None  # a copy of an in-memory graph; None: derive it from `base`
    changed_since_save: int = 0

    def _vectors(self, rows: np.ndarray, base_matrix: np.ndarray | None) -> np.ndarray:
        if base_matrix is None:
            return self.tail[rows]
        out = np.empty((len(rows), self.dimension), dtype=np.float32)
        low = rows < self.offset
        out[low] = base_matrix[rows[low]]
        out[~low] = self.tail[rows[~low] - self.offset]
        return out

    def _base_matrix(self) -> np.ndarray | None:
        # Read through a read-only map of its own: the live copy's map zeroes removed rows meanwhile.
        return np.load(self.base.matrix_path, mmap_mode="r") if self.base is not None else None

    def write_vectors(self, path: Path) -> None:
        """The float32 vectors in face order, streamed in chunks (no second copy of them in memory)."""
        base_matrix = self._base_matrix()
        out = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32, shape=(len(self.face_ids), self.dimension))
        for start in range(0, len(self.face_ids), WRITE_CHUNK):
            out[start:start + WRITE_CHUNK] = self._vectors(self.rows[start:start + WRITE_CHUNK], base_matrix)
        out.flush()
        del out

    def graph(self):
        """An in-memory graph over exactly `face_ids`: the saved one plus the changes since, or a new one."""
        if self.ann is not None:
            return self.ann
        from usearch.index import Index

        base_matrix = self._base_matrix()
        try:
            ann = Index.restore(str(self.base.graph_path), view=False)
        except (OSError, RuntimeError, ValueError):
            ann = None  # replaced and removed by another worker's save meanwhile: build it anew
        if ann is None:
            ann = _ann_index(self.dimension)
            loose = np.ones(len(self.face_ids), dtype=bool)
        else:
            dead = self.base.face_ids[~np.isin(self.base.face_ids, self.face_ids)]
            if len(dead):
                ann.remove(dead.astype(np.uint64))
            loose = ~np.isin(self.face_ids, self.base.face_ids)
        positions = np.flatnonzero(loose)
        for start in range(0, len(positions), WRITE_CHUNK):
            chunk = positions[start:start + WRITE_CHUNK]
            ann.add(self.face_ids[chunk].astype(np.uint64), self._vectors(self.rows[chunk], base_matrix))
        ann.expansion_search = settings.FACEPORTAL_ANN_EXPANSION_SEARCH
        return ann


@dataclass
class OrgVectors:
    """One organisation's vectors: float32 rows, searched exactly or through an HNSW graph.

    `face_ids` stays sorted with `person_ids` and `rows` aligned to it, so hits map to people by
    binary search; `rows[i]` says where face `face_ids[i]`'s vector sits. Without a graph, `store[:n]`
    is kept in face order for a single matrix product. With an in-memory graph (just built), new
    vectors are appended to `store` (amortised growth) and removed ones zeroed.

    With a `base` (a saved graph, memory-mapped), rows below `offset` are the base file's and the
    rest index `store`, which then holds only faces added since the save; those (`loose`) are not in
    the read-only graph and are searched exactly beside it, and removed faces stay in the graph
    until the next save, filtered out of its answers. Public so the benchmarks measure the very
    structure the service searches.
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
    base: SavedBase | None = field(init=False, default=None, repr=False)
    offset: int = field(init=False, default=0)  # len(base.face_ids): rows from here on index `store`
    loose: np.ndarray = field(init=False, repr=False)  # sorted face ids that are not in a base's graph
    graph_dead: int = field(init=False, default=0)  # removed faces a base's graph still holds
    # With a graph: face ids ordered by person (`people_sorted` aligned), to find a person's faces.
    people_sorted: np.ndarray = field(init=False, repr=False)
    faces_by_person: np.ndarray = field(init=False, repr=False)

    def __post_init__(self, matrix: np.ndarray | None) -> None:
        if matrix is None:
            matrix = np.zeros((len(self.face_ids), self.dimension), dtype=np.float32)
        self.store = np.ascontiguousarray(matrix, dtype=np.float32)
        self.used = len(self.store)
        self.rows = np.arange(self.used, dtype=np.int64)
        self.loose = np.zeros(0, dtype=np.int64)
        self._index_people()

    @classmethod
    def from_base(cls, base: SavedBase, *, dimension: int, ann_min_faces: int, stamp: str) -> OrgVectors:
        vectors = cls(dimension=dimension, ann_min_faces=ann_min_faces, version=base.version, stamp=stamp,
                      matrix=np.zeros((0, dimension), dtype=np.float32))
        vectors.face_ids, vectors.person_ids = base.face_ids, base.person_ids
        vectors.rows = np.zeros(len(base.face_ids), dtype=np.int64)  # all in the base: rebase sets them
        vectors.rebase(base)
        return vectors

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

    def _rows_matrix(self, rows: np.ndarray) -> np.ndarray:
        """float32 vectors at `rows` (a copy), from the base's map or the copy's own store."""
        if self.base is None:
            return self.store[rows]
        out = np.empty((len(rows), self.dimension), dtype=np.float32)
        low = rows < self.offset
        out[low] = self.base.matrix[rows[low]]
        out[~low] = self.store[rows[~low] - self.offset]
        return out

    def vectors(self) -> np.ndarray:
        """float32 (n, d) in face order (a view when the store is in that order)."""
        if self.base is None and self.used == len(self) and self._in_face_order():
            return self.store[: self.used]
        return self._rows_matrix(self.rows)

    def _in_face_order(self) -> bool:
        return len(self.rows) < 2 or bool(np.all(self.rows[1:] > self.rows[:-1]))

    def _append(self, vectors: np.ndarray) -> np.ndarray:
        needed = self.used + len(vectors)
        if needed > len(self.store):
            grown = np.empty((max(needed, int(len(self.store) * 1.25) + 1024), self.dimension), dtype=np.float32)
            grown[: self.used] = self.store[: self.used]
            self.store = grown
        self.store[self.used: needed] = vectors
        new_rows = np.arange(self.offset + self.used, self.offset + needed, dtype=np.int64)
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
            if self.base is None:
                self.ann.add(face_ids.astype(np.uint64), vectors, threads=threads)
            else:  # the saved graph is read-only: searched exactly beside it until the next save
                self.loose = np.union1d(self.loose, face_ids)
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
        removed, removed_rows = self.face_ids[~keep], self.rows[~keep]
        if self.ann is not None:
            if self.base is None:
                self.ann.remove(removed.astype(np.uint64))
            else:  # left in the read-only graph, whose answers are checked against `face_ids`
                in_loose = np.isin(removed, self.loose)
                self.graph_dead += int((~in_loose).sum())
                self.loose = self.loose[~np.isin(self.loose, removed)]
            still = ~np.isin(self.faces_by_person, gone)
            self.people_sorted, self.faces_by_person = self.people_sorted[still], self.faces_by_person[still]
        # No copy of a removed face's vector stays in this process's memory (a base's row is zeroed
        # in this process's private copy of its page; the file itself is replaced at the next save).
        if self.base is None:
            self.store[removed_rows] = 0.0
        else:
            low = removed_rows < self.offset
            self.base.matrix[removed_rows[low]] = 0.0
            self.store[removed_rows[~low] - self.offset] = 0.0
        self.changed_since_save += len(removed)
        self.face_ids, self.person_ids, self.rows = self.face_ids[keep], self.person_ids[keep], self.rows[keep]
        if self.base is None and (
                self.ann is None or self.used - len(self) > max(SAVE_MIN_CHANGES, COMPACT_DEAD_SHARE * len(self))):
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

    def rebase(self, base: SavedBase) -> None:
        """Search through `base` (saved files, memory-mapped) from now on.

        The base may be older or newer than this copy: faces it lacks move to the copy's own store
        (searched exactly), faces it holds that this copy removed are filtered out (and zeroed here).
        A face's vector never changes under its id, so a face in both is the same row either way.
        """
        n_base = len(base.face_ids)
        at = np.minimum(np.searchsorted(base.face_ids, self.face_ids), max(n_base - 1, 0))
        in_base = base.face_ids[at] == self.face_ids if n_base else np.zeros(len(self), dtype=bool)
        tail = np.ascontiguousarray(self._rows_matrix(self.rows[~in_base]), dtype=np.float32)
        rows = np.empty(len(self), dtype=np.int64)
        rows[in_base] = at[in_base]
        rows[~in_base] = n_base + np.arange(len(tail), dtype=np.int64)
        gone = np.flatnonzero(~np.isin(base.face_ids, self.face_ids))
        if len(gone):
            base.matrix[gone] = 0.0
        self.base, self.ann, self.offset = base, base.ann, n_base
        self.store, self.used, self.rows = tail, len(tail), rows
        self.loose = self.face_ids[~in_base].copy()
        self.graph_dead = len(gone)
        self._index_people()
        self.changed_since_save = len(self.loose) + self.graph_dead

    def vectors_copy(self) -> np.ndarray:
        """`vectors()` as an array of its own (copied once, even when the store is out of order)."""
        matrix = self.vectors()
        return matrix.copy() if np.shares_memory(matrix, self.store) else matrix

    def snapshot(self) -> SaveJob:
        """What a save needs, to write without holding this copy's lock (an in-memory graph is copied)."""
        return SaveJob(
            dimension=self.dimension, version=self.version, stamp=self.stamp, face_ids=self.face_ids.copy(),
            person_ids=self.person_ids.copy(), rows=self.rows.copy(), offset=self.offset, base=self.base,
            tail=self.store[: self.used].copy(),
            ann=self.ann.copy() if self.ann is not None and self.base is None else None,
        )

    def search(self, queries: np.ndarray, k: int, min_similarity: float = 0.0) -> list[list[Hit]]:
        n = len(self)
        if n == 0 or k <= 0:
            return [[] for _ in range(len(queries))]
        k = min(k, n)
        if self.ann is None:
            return self._exact(queries, k, min_similarity)
        wanted = max(k, RERANK_CANDIDATES)
        # Removed faces a read-only graph still holds take candidate places: ask for a few more.
        in_graph = len(self.ann)
        count = min(in_graph, wanted + min(self.graph_dead, RERANK_CANDIDATES))
        if count:
            matches = self.ann.search(queries, count)
            if not hasattr(matches, "counts"):  # usearch answers one query with a flat `Matches`
                candidates = [matches.keys]
            else:
                candidates = [matches.keys[i][: matches.counts[i]] for i in range(len(queries))]
        else:
            candidates = [np.zeros(0, dtype=np.int64) for _ in range(len(queries))]
        loose_positions = np.searchsorted(self.face_ids, self.loose)
        loose_cosines = queries @ self._rows_matrix(self.rows[loose_positions]).T if len(self.loose) else None
        results = []
        for row, (query, keys) in enumerate(zip(queries, candidates, strict=True)):
            keys = np.asarray(keys).astype(np.int64)
            positions = np.minimum(np.searchsorted(self.face_ids, keys), n - 1)
            positions = positions[self.face_ids[positions] == keys]  # only faces this copy still holds
            if loose_cosines is not None:
                cosines = loose_cosines[row]
                best_loose = np.argpartition(-cosines, wanted - 1)[:wanted] if len(cosines) > wanted \
                    else np.arange(len(cosines))
                positions = np.union1d(positions, loose_positions[best_loose])
            positions = self._with_same_people(positions, self._rows_matrix(self.rows[positions]) @ query)
            similarities = cosine_to_similarity(self._rows_matrix(self.rows[positions]) @ query)
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
        """What this copy holds in its own memory (not the memory-mapped files: `mapped_bytes`)."""
        own = self.face_ids.nbytes + self.person_ids.nbytes + self.rows.nbytes + self.store.nbytes + self.loose.nbytes
        if self.ann is not None:
            own += self.people_sorted.nbytes + self.faces_by_person.nbytes
            return own + (int(self.ann.memory_usage) if self.base is None else 0)
        return own

    def mapped_bytes(self) -> int:
        """Size of the memory-mapped files (shared between processes through the page cache)."""
        if self.base is None:
            return 0
        graph = self.base.graph_path.stat().st_size if self.base.graph_path.exists() else 0
        return int(self.base.matrix.nbytes) + graph
