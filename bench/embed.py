"""Embedding cost per face: dlib's ResNet on ONNX Runtime (the default) against dlib-bin, same chips.

Both runtimes go through the engine's own embedder (`DeepFaceEmbedder`, L2-normalised output) on
the same aligned 150x150 chips of real dev photos, one after the other in this process: ms per face
one at a time and in a batch of 8, then faces/s with 1 and with 2 threads embedding at once (each
thread with its own model, as the engine pool runs them), and the ratio of the two.

Run alone: `FACEPORTAL_FACES_DIR=../shared/faces .venv/bin/python bench/embed.py`.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import log, median, people, setup_django, table  # noqa: E402

ROUNDS = 5
THREAD_SECONDS = 3.0  # each concurrency measurement embeds for about this long
RUNTIMES = (("onnx", "ONNX Runtime, 1 intra-op thread (default)"), ("dlib", "dlib-bin (PyPI wheel, no BLAS)"))


def dev_chips(count: int = 8):
    from faces.engine.alignment import DlibLandmarkAligner
    from faces.engine.detection import DeepFaceDetector
    from faces.images import decode

    detector = DeepFaceDetector("dlib", max_side=800, min_side=400)
    aligner = DlibLandmarkAligner()
    chips = []
    for photos in list(people().values())[:count]:
        image = decode(photos[0].path.read_bytes(), index=0).pixels
        chips += aligner.align(image, detector.detect(image)[:1])
    return chips


def faces_per_second(runtime: str, chips, threads: int) -> tuple[float, float]:
    """(faces/s, cores busy): every thread builds its own model, then all embed one chip at a time.

    Cores busy is this process's CPU seconds per wall second: near the thread count when the model
    runs outside the GIL, near 1 when the threads take turns (or fewer when the machine is busy).
    """
    from faces.engine.recognition import DeepFaceEmbedder

    ready = threading.Barrier(threads + 1)
    counts = [0] * threads
    stop = threading.Event()

    def work(slot: int) -> None:
        embedder = DeepFaceEmbedder("Dlib", dlib_runtime=runtime)
        embedder.embed(chips[:1])  # load on this thread
        ready.wait()
        i = 0
        while not stop.is_set():
            embedder.embed([chips[i % len(chips)]])
            i += 1
        counts[slot] = i

    workers = [threading.Thread(target=work, args=(slot,)) for slot in range(threads)]
    for worker in workers:
        worker.start()
    ready.wait()
    started, cpu_started = time.perf_counter(), time.process_time()
    time.sleep(THREAD_SECONDS)
    stop.set()
    for worker in workers:
        worker.join()
    wall = time.perf_counter() - started
    return sum(counts) / wall, (time.process_time() - cpu_started) / wall


def measure(runtime: str, chips) -> dict[str, float]:
    from faces.engine.recognition import DeepFaceEmbedder

    embedder = DeepFaceEmbedder("Dlib", dlib_runtime=runtime)
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
    one, _ = faces_per_second(runtime, chips, 1)
    two, busy = faces_per_second(runtime, chips, 2)
    return {"batch1": median(single), "batch8": median(batched), "fps1": one, "fps2": two, "busy2": busy}


def run() -> str:
    import os

    import dlib
    import onnxruntime
    from django.conf import settings

    from faces.engine.weights import prepare_deepface_home

    prepare_deepface_home(settings.DEEPFACE_HOME)
    chips = dev_chips()
    results = {}
    for runtime, _ in RUNTIMES:
        log(f"embed: {runtime}")
        results[runtime] = measure(runtime, chips)
    rows = []
    versions = {"onnx": f"onnxruntime {onnxruntime.__version__}", "dlib": f"dlib {dlib.__version__}"}
    for runtime, label in RUNTIMES:
        r = results[runtime]
        rows.append([label, versions[runtime], r["batch1"], r["batch8"], r["fps1"], r["fps2"], r["fps2"] / r["fps1"],
                     r["busy2"]])
    onnx, native = results["onnx"], results["dlib"]
    rows.append(["speed-up ONNX / dlib-bin", "", native["batch1"] / onnx["batch1"], native["batch8"] / onnx["batch8"],
                 onnx["fps1"] / native["fps1"], onnx["fps2"] / native["fps2"], "", ""])
    return table(
        "Embedding cost per face (Dlib ResNet, 150x150 chips): ONNX Runtime against dlib-bin",
        ["runtime", "version", "ms/face, one at a time", "ms/face, batch of 8", "faces/s, 1 thread",
         "faces/s, 2 threads", "2 threads / 1", "cores busy, 2 threads"], rows,
        note=(f"Same {len(chips)} aligned chips of real dev photos through `DeepFaceEmbedder` (L2-normalised), "
              f"one runtime after the other in one process; median of {ROUNDS} rounds. Threads: each with its "
              f"own model, embedding one chip at a time for {THREAD_SECONDS:.0f} s ({os.cpu_count()} cores). "
              "Cores busy: CPU seconds per wall second during the 2-thread run. The speed-up row divides "
              "dlib-bin's ms by ONNX's (and ONNX's faces/s by dlib-bin's)."),
    )


if __name__ == "__main__":
    setup_django()
    run()
