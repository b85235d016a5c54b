"""Embedded vector store: exact NumPy top-k for small organisations, a persisted HNSW graph for large ones.

The durable copy is the `EmbeddedVector` table, written in the caller's database transaction, so
registration is atomic with its face rows. Each worker process keeps the vectors of an organisation
in memory with the `IndexState.version` they reflect; every write bumps that version and stamps its
rows with it, so before a search a worker compares versions (one indexed read) and, when another
worker wrote, fetches only the newer rows (plus an id diff when a count shows removals).

Organisations with at least `FACEPORTAL_ANN_MIN_FACES` faces are searched through a usearch HNSW
graph (inner product on L2-normalised float32, so similarities are exact for the hits it returns).
The graph is saved under `VAR_DIR/index/`, beside the float32 vectors it re-ranks with, with the
version it reflects and the organisation's creation time, so a restart maps it and catches up
instead of rebuilding it; a file from another database (same id, other organisation) or from the
future is ignored. Workers search the saved graph and vectors through memory maps rather than
copies in their heaps, so a box with several workers holds one copy of a million faces (in the
page cache) instead of one per worker. Faces written since the save are held by each worker and
searched exactly beside the read-only graph, removed ones filtered out of its answers; once they
add up to a save's worth, one worker writes new files and the others map those.

Building a graph (when an organisation crosses the threshold, or opens with no usable file) and
saving it are slow, so neither runs in a request's after-commit hook nor under a search's lock:
a background thread per process does both, while searches stay exact until the graph is ready.
Files are written, replaced and removed under a cross-process lock (`flock` on `org-<id>.lock`),
and never replaced by an older version, so two workers cannot delete each other's graph files.

The package: `memory` (one organisation's vectors and their search), `files` (the graph files on
disk) and `sync` (the store: the table, the versions and the background builder).
"""

from faces.index.embedded.files import AnnFiles
from faces.index.embedded.memory import (
    COMPACT_DEAD_SHARE,
    HNSW_CONNECTIVITY,
    HNSW_DTYPE,
    HNSW_EXPANSION_ADD,
    RERANK_CANDIDATES,
    RERANK_PEOPLE,
    RERANK_PERSON_FACES,
    SAVE_CHANGED_SHARE,
    SAVE_MIN_CHANGES,
    OrgVectors,
    SavedBase,
    SaveJob,
)
from faces.index.embedded.sync import FETCH_CHUNK, EmbeddedVectorIndex, GraphBuilder

__all__ = [
    "COMPACT_DEAD_SHARE",
    "FETCH_CHUNK",
    "HNSW_CONNECTIVITY",
    "HNSW_DTYPE",
    "HNSW_EXPANSION_ADD",
    "RERANK_CANDIDATES",
    "RERANK_PEOPLE",
    "RERANK_PERSON_FACES",
    "SAVE_CHANGED_SHARE",
    "SAVE_MIN_CHANGES",
    "AnnFiles",
    "EmbeddedVectorIndex",
    "GraphBuilder",
    "OrgVectors",
    "SaveJob",
    "SavedBase",
]
