"""The vector-store interface every backend implements (embedded NumPy index, MongoDB Atlas).

Vectors are L2-normalised float32 keyed by face id, scoped to one organisation. Similarity is
(1 + cosine) / 2 in [0, 1], the number Atlas Vector Search reports as its cosine score.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from faceportal.errors import ServiceUnavailable


class VectorStoreUnavailable(ServiceUnavailable):
    code = "vector_store_unavailable"


@dataclass(frozen=True)
class Hit:
    face_id: int
    person_id: int
    similarity: float


@dataclass(frozen=True)
class VectorRecord:
    face_id: int
    person_id: int
    vector: np.ndarray


def cosine_to_similarity(cosine: np.ndarray | float) -> np.ndarray | float:
    return (1.0 + cosine) / 2.0


def vector_to_bytes(vector: np.ndarray) -> bytes:
    """How an embedding is stored in the database: little-endian float32."""
    return np.asarray(vector, dtype="<f4").tobytes()


def vector_from_bytes(blob: bytes | memoryview) -> np.ndarray:
    return np.frombuffer(bytes(blob), dtype="<f4")


class VectorIndex(ABC):
    name: str = "base"

    @abstractmethod
    def ensure_organization(self, *, organization_id: int, dimension: int) -> None:
        """Create whatever the organisation needs (a search index for Atlas); idempotent."""

    @abstractmethod
    def drop_organization(self, *, organization_id: int) -> None:
        """Remove every vector of the organisation and its index."""

    @abstractmethod
    def add(self, *, organization_id: int, records: list[VectorRecord]) -> None: ...

    @abstractmethod
    def remove(self, *, organization_id: int, face_ids: list[int]) -> None: ...

    @abstractmethod
    def search(
        self, *, organization_id: int, vectors: np.ndarray, k: int, min_similarity: float = 0.0
    ) -> list[list[Hit]]:
        """Top-k faces per query vector, best first, with similarity >= min_similarity."""

    @abstractmethod
    def count(self, *, organization_id: int) -> int: ...

    @abstractmethod
    def face_ids(self, *, organization_id: int) -> set[int]: ...

    @abstractmethod
    def rebuild(self, *, organization_id: int, records: Iterable[VectorRecord]) -> int:
        """Replace the organisation's vectors with `records`; return how many were written."""

    def stored_organization_ids(self) -> set[int]:
        """Organisations the store holds vectors for. A store whose vectors die with the organisation's
        rows (the embedded one) has no strays to report; the Atlas store lists its own."""
        return set()

    def ready(self) -> tuple[bool, str]:
        return True, "ok"
