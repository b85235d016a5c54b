"""Grouping kept unknown faces by person: DBSCAN (scikit-learn) over the faces' pairwise scores,
with the decision's own similarity and threshold.

Two faces are neighbours when the decision would call them the same person: their similarity
((1 + cosine) / 2), less their cohort offsets when the calibration normalises, reaches the
calibrated threshold for a gallery the size of the kept set (each kept face is, in effect, one
more chance for a stranger to look close enough). DBSCAN with `min_samples=1` makes every face a
core point, so a cluster is a chain of such neighbours and a lone face is a cluster of one.

Only the neighbour pairs are stored (a sparse radius graph built in blocks), so 10,000 faces need
megabytes, not the 800 MB of a dense matrix. A grouping is computed on demand and cached for the
organisation's change counter (unknowns.models.UnknownState): reads of an unchanged inbox are a
cache hit, and recognition never waits on it (keeping a face only bumps the counter).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
from django.core.cache import cache
from scipy.sparse import csr_matrix
from sklearn.cluster import DBSCAN
from threadpoolctl import threadpool_limits

from faces.decision import Threshold
from faces.index.base import vector_from_bytes
from faces.matching import decision_in_force, link_rule
from faces.models import UnknownFace, UnknownState
from organizations.models import Organization

BLOCK = 1024  # rows of the similarity matrix computed at once (BLOCK x N float32)
CACHE_TTL = 24 * 3600  # a grouping also goes stale with its version; this only bounds the memory
SAMPLES = 4  # sample faces shown per cluster


@dataclass(frozen=True)
class Cluster:
    id: int  # the smallest id among its faces: stable while that face stays
    face_ids: list[int]  # newest first
    first_seen: datetime
    last_seen: datetime

    @property
    def size(self) -> int:
        return len(self.face_ids)

    @property
    def sample_face_ids(self) -> list[int]:
        return self.face_ids[:SAMPLES]


@dataclass(frozen=True)
class Grouping:
    version: int
    threshold: float  # the link threshold, in similarity units for a typical face
    clusters: list[Cluster]  # most recently seen first

    def cluster(self, cluster_id: int) -> Cluster | None:
        return next((c for c in self.clusters if c.id == cluster_id), None)


def neighbour_graph(*, vectors: np.ndarray, offsets: np.ndarray, needed: float) -> tuple[csr_matrix, float]:
    """Pairs whose score reaches `needed`, as a sparse distance matrix (distance = 1 - score), and eps."""
    count = len(vectors)
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    half_offsets = (offsets / 2.0).astype(np.float32)
    rows, cols, data = [], [], []
    for start in range(0, count, BLOCK):
        block = vectors[start:start + BLOCK]
        scores = (1.0 + block @ vectors.T) / 2.0 - half_offsets[start:start + BLOCK, None] - half_offsets[None, :]
        r, c = np.nonzero(scores >= needed)
        rows.append(r + start)
        cols.append(c)
        # Distances must be positive: an explicit zero would read as "no edge" in a sparse matrix.
        data.append(np.maximum(1.0 - scores[r, c], 1e-9))
    eps = max(1.0 - needed, 1e-9)
    if not count:
        return csr_matrix((0, 0)), eps
    graph = csr_matrix((np.concatenate(data), (np.concatenate(rows), np.concatenate(cols))), shape=(count, count))
    return graph, eps


def cluster_labels(*, vectors: np.ndarray, threshold: Threshold) -> np.ndarray:
    """One label per vector: faces with the same label are grouped as one person."""
    if len(vectors) == 0:
        return np.zeros(0, dtype=np.int64)
    needed, offsets = link_rule(threshold=threshold, vectors=vectors)
    # One BLAS thread: a grouping must not take the cores recognition is running on.
    with threadpool_limits(limits=1):
        graph, eps = neighbour_graph(vectors=vectors, offsets=offsets, needed=needed)
        return DBSCAN(eps=eps, min_samples=1, metric="precomputed", n_jobs=1).fit(graph).labels_


def grouping_threshold(*, organization: Organization, kept: int) -> Threshold:
    return decision_in_force(organization=organization, gallery_size=max(1, kept))


def _version(organization: Organization) -> int:
    state = UnknownState.objects.filter(organization=organization).values_list("version", flat=True).first()
    return int(state or 0)


def _cache_key(organization_id: int, version: int) -> str:
    return f"unknown-clusters:{organization_id}:{version}"


def unknown_grouping(*, organization: Organization) -> Grouping:
    """The organisation's kept unknowns grouped by person, cached until they change."""
    version = _version(organization)
    key = _cache_key(organization.pk, version)
    cached = cache.get(key)
    if cached is not None:
        return cached
    rows = list(UnknownFace.objects.filter(organization=organization).order_by("-seen_at", "-id")
                .values_list("id", "embedding", "seen_at"))
    threshold = grouping_threshold(organization=organization, kept=len(rows))
    if rows:
        vectors = np.stack([vector_from_bytes(embedding) for _, embedding, _ in rows])
        labels = cluster_labels(vectors=vectors, threshold=threshold)
    else:
        labels = np.zeros(0, dtype=np.int64)
    members: dict[int, list[int]] = {}
    for position, label in enumerate(labels):
        members.setdefault(int(label), []).append(position)  # rows are newest first, so members are too
    clusters = [
        Cluster(id=min(rows[p][0] for p in positions), face_ids=[rows[p][0] for p in positions],
                first_seen=rows[positions[-1]][2], last_seen=rows[positions[0]][2])
        for positions in members.values()
    ]
    clusters.sort(key=lambda c: (c.last_seen, c.id), reverse=True)
    grouping = Grouping(version=version, threshold=round(float(threshold.similarity), 4), clusters=clusters)
    cache.set(key, grouping, CACHE_TTL)
    return grouping
