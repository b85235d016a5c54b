"""The vector store chosen by settings (FACEPORTAL_VECTOR_STORE: embedded | atlas), built once."""

from __future__ import annotations

import threading

from django.conf import settings

from faces.index.base import Hit, VectorIndex, VectorRecord, VectorStoreUnavailable

_index: VectorIndex | None = None
_lock = threading.Lock()


def build_index(kind: str) -> VectorIndex:
    if kind == "atlas":
        from faces.index.atlas import AtlasVectorIndex

        return AtlasVectorIndex.from_settings()
    if kind == "embedded":
        from faces.index.embedded import EmbeddedVectorIndex

        return EmbeddedVectorIndex()
    raise ValueError(f"Unknown FACEPORTAL_VECTOR_STORE '{kind}' (use 'embedded' or 'atlas').")


def get_index() -> VectorIndex:
    global _index
    with _lock:
        if _index is None:
            _index = build_index(settings.FACEPORTAL_VECTOR_STORE)
        return _index


def reset_index() -> None:
    """Forget the built index (tests switch backends)."""
    global _index
    with _lock:
        _index = None


__all__ = ["Hit", "VectorIndex", "VectorRecord", "VectorStoreUnavailable", "get_index", "reset_index"]
