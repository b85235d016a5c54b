"""Embedding cost per face of the dlib build this interpreter imports (run once per build by run_all).

Prints one JSON line: which dlib, whether it uses BLAS, ms per face at batch 1 and batch 8, on
aligned 150x150 chips of real dev photos, through the engine's own embedder.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import median, people, setup_django  # noqa: E402

ROUNDS = 5


def main() -> None:
    setup_django()
    import dlib
    from django.conf import settings

    from faces.engine.alignment import DlibLandmarkAligner
    from faces.engine.detection import DeepFaceDetector
    from faces.engine.recognition import DeepFaceEmbedder
    from faces.engine.weights import prepare_deepface_home
    from faces.images import decode

    prepare_deepface_home(settings.DEEPFACE_HOME)
    detector = DeepFaceDetector("dlib", max_side=800, min_side=400)
    aligner, embedder = DlibLandmarkAligner(), DeepFaceEmbedder("Dlib")
    chips = []
    for photos in list(people().values())[:8]:
        image = decode(photos[0].path.read_bytes(), index=0).pixels
        chips += aligner.align(image, detector.detect(image)[:1])
    embedder.embed(chips[:1])  # load
    single = []
    for _ in range(ROUNDS):
        for chip in chips:
            started = time.perf_counter()
            embedder.embed([chip])
            single.append((time.perf_counter() - started) * 1000)
    batched = []
    for _ in range(ROUNDS):
        started = time.perf_counter()
        embedder.embed(chips)
        batched.append((time.perf_counter() - started) * 1000 / len(chips))
    print(json.dumps({
        "dlib": f"{dlib.__version__} ({Path(dlib.__file__).parent.name})",
        "blas": bool(getattr(dlib, "DLIB_USE_BLAS", False)),
        "avx": bool(getattr(dlib, "USE_AVX_INSTRUCTIONS", False)),
        "batch1": median(single),
        "batch8": median(batched),
    }))


if __name__ == "__main__":
    main()
