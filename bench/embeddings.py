"""Real dlib embeddings of the dev photos (most prominent face each), cached under var/bench/."""

from __future__ import annotations

import numpy as np

from bench.common import REPO_ROOT, log, manifest

CACHE = REPO_ROOT / "var" / "bench" / "dev_embeddings.npz"


def embed_photos(engine, paths) -> list[np.ndarray | None]:
    from faces.engine import map_in_engine_pool
    from faces.images import decode

    def one(path):
        result = engine.faces_in(decode(path.read_bytes(), index=0).pixels, most_prominent_only=True)
        return result.faces[0].embedding if result.faces else None

    return map_in_engine_pool(one, list(paths))


def save_cache(paths, vectors) -> None:
    found = [(str(p), v) for p, v in zip(paths, vectors, strict=True) if v is not None]
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    np.savez(CACHE, paths=np.array([p for p, _ in found]), vectors=np.stack([v for _, v in found]))


def dev_embeddings() -> np.ndarray:
    """(n, 128) float32, one row per dev photo with a face."""
    if CACHE.exists():
        with np.load(CACHE) as cached:
            return cached["vectors"].astype(np.float32)
    from faces.engine import get_engine

    log("embedding the dev photos once (cached in var/bench/)")
    paths = [photo.path for name, photos in manifest().items() if not name.startswith("_") for photo in photos]
    vectors = embed_photos(get_engine(), paths)
    save_cache(paths, vectors)
    return np.stack([v for v in vectors if v is not None]).astype(np.float32)
