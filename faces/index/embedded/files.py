"""The HNSW graph files on disk (`VAR_DIR/index/`), written and read under a cross-process lock.

A save writes three files per token: the graph (`.usearch`), the face and person ids (`.npz`) and
the float32 vectors in face order (`.npy`). Loading maps the graph and the vectors instead of
reading them, so every worker process on the box shares one copy of them in the page cache.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from django.conf import settings

from faces.index.embedded.memory import OrgVectors, SavedBase, SaveJob

logger = logging.getLogger(__name__)


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

    def save(self, organization_id: int, stamp: str, vectors: OrgVectors | SaveJob) -> bool:
        """Write the graph, then point the meta file at it; False when a newer one is there already."""
        job = vectors.snapshot() if isinstance(vectors, OrgVectors) else vectors
        with self._locked(organization_id, exclusive=True):
            if self._saved_version(organization_id, stamp) > job.version:
                return False  # another worker saved a later state: keep it
            token = f"org-{organization_id}-v{job.version}-{uuid.uuid4().hex[:8]}"
            job.graph().save(str(self.directory / f"{token}.usearch"))
            np.savez(self.directory / f"{token}.npz", face_ids=job.face_ids, person_ids=job.person_ids)
            job.write_vectors(self.directory / f"{token}.npy")
            meta = {"token": token, "version": job.version, "stamp": stamp, "dimension": job.dimension}
            temporary = self.directory / f".{token}.json"
            temporary.write_text(json.dumps(meta))
            os.replace(temporary, self._meta(organization_id))  # readers see the old or the new file, whole
            vectors.changed_since_save = 0
            # Files other processes still map stay readable to them: unlinking keeps a mapped file.
            self._remove_others(organization_id, keep=token)
        return True

    def load(self, organization_id: int, stamp: str, *, db_version: int, ann_min_faces: int) -> OrgVectors | None:
        base = self.load_base(organization_id, stamp, max_version=db_version)
        if base is None:
            return None
        return OrgVectors.from_base(base, dimension=base.matrix.shape[1], ann_min_faces=ann_min_faces, stamp=stamp)

    def load_base(self, organization_id: int, stamp: str, *, max_version: int) -> SavedBase | None:
        """The saved state, memory-mapped; None when there is none usable up to `max_version`."""
        if not self._meta(organization_id).exists():
            return None
        with self._locked(organization_id, exclusive=False):
            return self._load(organization_id, stamp, max_version=max_version)

    def _load(self, organization_id: int, stamp: str, *, max_version: int) -> SavedBase | None:
        from usearch.index import Index

        try:
            meta = json.loads(self._meta(organization_id).read_text())
        except (OSError, ValueError):
            return None
        if meta.get("stamp") != stamp or int(meta.get("version", -1)) > max_version:
            return None  # another database's organisation with this id, or a rolled-back future
        graph_path = self.directory / f"{meta['token']}.usearch"
        matrix_path = self.directory / f"{meta['token']}.npy"
        try:
            ann = Index.restore(str(graph_path), view=True)
            with np.load(self.directory / f"{meta['token']}.npz") as saved:
                face_ids, person_ids = saved["face_ids"], saved["person_ids"]
            # Copy-on-write: a removed face's row is zeroed in this process only, the file stays whole.
            matrix = np.load(matrix_path, mmap_mode="c")
        except (OSError, ValueError, KeyError, RuntimeError):  # KeyError/OSError: files from before mapping
            logger.warning("ignoring unreadable vector index file", extra={"organization_id": organization_id})
            return None
        dimension = int(meta["dimension"])
        if ann is None or len(ann) != len(face_ids) or matrix.shape != (len(face_ids), dimension) \
                or matrix.dtype != np.float32:
            return None
        ann.expansion_search = settings.FACEPORTAL_ANN_EXPANSION_SEARCH
        return SavedBase(
            token=meta["token"], version=int(meta["version"]), face_ids=face_ids.astype(np.int64),
            person_ids=person_ids.astype(np.int64), matrix=matrix, ann=ann, graph_path=graph_path,
            matrix_path=matrix_path,
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
