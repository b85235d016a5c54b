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
    from faces.engine.embedder import DeepFaceEmbedder

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
    from faces.engine.embedder import DeepFaceEmbedder

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

    from faces.engine.config import deepface_home
    from faces.engine.weights import prepare_deepface_home

    prepare_deepface_home(deepface_home())
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
    return gil_table(chips) + "\n" + table(
        "Embedding cost per face (Dlib ResNet, 150x150 chips): ONNX Runtime against dlib-bin",
        ["runtime", "version", "ms/face, one at a time", "ms/face, batch of 8", "faces/s, 1 thread",
         "faces/s, 2 threads", "2 threads / 1", "cores busy, 2 threads"], rows,
        note=(f"Same {len(chips)} aligned chips of real dev photos through `DeepFaceEmbedder` (L2-normalised), "
              f"one runtime after the other in one process; median of {ROUNDS} rounds. Threads: each with its "
              f"own model, embedding one chip at a time for {THREAD_SECONDS:.0f} s ({os.cpu_count()} cores). "
              "Cores busy: CPU seconds per wall second during the 2-thread run. The speed-up row divides "
              "dlib-bin's ms by ONNX's (and ONNX's faces/s by dlib-bin's)."),
    )


PROBE_SECONDS = 3.0


def gil_probe(fn) -> dict[str, float]:
    """Run `fn` in a loop on a worker thread while this thread sleeps 1 ms at a time.

    A model that holds the GIL while it computes keeps this thread from waking until the call
    returns; one that releases it (ONNX Runtime, OpenCV) lets it wake within a millisecond or so.
    The gap is the call's length against about a millisecond, so a busy machine does not hide it.
    """
    fn()
    stop = threading.Event()
    calls: list[float] = []

    def worker() -> None:
        while not stop.is_set():
            started = time.perf_counter()
            fn()
            calls.append((time.perf_counter() - started) * 1000)

    thread = threading.Thread(target=worker)
    thread.start()
    time.sleep(0.2)
    waits: list[float] = []
    end = time.perf_counter() + PROBE_SECONDS
    while time.perf_counter() < end:
        started = time.perf_counter()
        time.sleep(0.001)
        waits.append((time.perf_counter() - started) * 1000)
    stop.set()
    thread.join()
    waits.sort()
    return {"call": median(calls), "p50": median(waits), "p90": waits[int(0.9 * (len(waits) - 1))],
            "max": waits[-1], "wakeups": len(waits) / PROBE_SECONDS}


def gil_table(chips) -> str:
    import base64

    import cv2
    import numpy as np

    from bench.latency import test_images
    from faces.engine.detection import DeepFaceDetector
    from faces.engine.embedder import DeepFaceEmbedder

    frame = cv2.imdecode(np.frombuffer(base64.b64decode(test_images()["640x480 frame"]), np.uint8), cv2.IMREAD_COLOR)
    batch = chips[:8]
    onnx, native = DeepFaceEmbedder("Dlib", dlib_runtime="onnx"), DeepFaceEmbedder("Dlib", dlib_runtime="dlib")
    retina = DeepFaceDetector("retinaface-onnx", max_side=800, min_side=400)
    hog = DeepFaceDetector("dlib", max_side=800, min_side=400)
    probes = [
        ("embed 8 chips, Dlib on ONNX Runtime (default)", lambda: onnx.embed(batch)),
        ("embed 8 chips, Dlib on dlib-bin", lambda: native.embed(batch)),
        ("detect a 640x480 frame, retinaface-onnx (default)", lambda: retina.detect(frame)),
        ("detect a 640x480 frame, dlib HOG", lambda: hog.detect(frame)),
    ]
    rows = []
    for label, fn in probes:
        log(f"gil: {label}")
        r = gil_probe(fn)
        rows.append([label, r["call"], r["p50"], r["p90"], r["max"], r["wakeups"]])
    return table(
        "Does the model let other threads run? (GIL probe)",
        ["work on a worker thread", "ms per call", "1 ms sleep of another thread: p50 ms", "p90 ms", "max ms",
         "wake-ups/s"], rows,
        note=(f"While the worker thread loops on the call, another thread sleeps 1 ms at a time for "
              f"{PROBE_SECONDS:.0f} s and records how long each sleep really took. A call that holds the GIL "
              "keeps that thread from waking until it returns (waits as long as the call: engine threads, "
              "the event loop and other requests stall, and a second core is of no use); a call that "
              "releases it lets the thread wake within about a millisecond, so engine threads run on all "
              "cores. This holds however busy the machine is."),
    )


if __name__ == "__main__":
    setup_django()
    run()
