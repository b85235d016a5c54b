"""Flip-averaged embeddings: does embedding each face twice (its chip and the chip mirrored,
averaged) name more of the people enrolled, and what does it cost?

Protocol: bench/openset.py's, on LFW View 1 training (`../shared/lfw-train`, strangers held out,
1,000 people enrolled), for each of the four engine variants (the first model, dlib, flip-averaged
or not; the second, FaceNet 512, flip-averaged or not). Each photo's chosen face is detected again,
aligned as the engine aligns it, and embedded plain and mirrored; the plain vectors must equal the
cached ones (printed), so only the flip differs. The cohort is the same 1,000 strangers in each
variant's own space. Rank-1 when the threshold lets 0.1% / 1% / 5% of the strangers be named: dlib
alone (cohort-normalised templates, as shipped), and dlib + FaceNet fused on every face, with all
strangers and without the identical twins of enrolled people (bench/openset.py). The cost: dlib's
network on one chip and on a batch of the chip and its mirror. The verdict is in docs/OPEN_SET.md.

Run: `.venv/bin/python bench/flip_average.py` (the first run embeds the folder, about 15 minutes on
2 cores; cached in var/calibration/ beside bench/openset.py's embeddings).
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import time
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import log, setup_django, table  # noqa: E402


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def flipped_embeddings(data, folder: Path, cache: Path) -> dict[str, np.ndarray]:
    """Per photo row: plain and flip-averaged vectors of the chosen face, for both models."""
    if cache.exists():
        with np.load(cache) as cached:
            return {key: cached[key] for key in cached.files}
    import cv2

    from faces.engine import call_in_engine_pool, get_engine

    engine = get_engine()
    chosen = data.chosen

    def work() -> dict[str, np.ndarray]:
        out = {"plain1": np.zeros((len(data.paths), data.embeddings.shape[1]), np.float32),
               "plain2": np.zeros((len(data.paths), data.second.shape[1]), np.float32)}
        out["flip1"], out["flip2"] = np.zeros_like(out["plain1"]), np.zeros_like(out["plain2"])
        for row, relative in enumerate(data.paths):
            if chosen[row] < 0:
                continue
            image = cv2.imread(str(folder / relative))
            faces = engine.detect_faces(image)
            if not faces:
                continue
            x, y, w, _ = data.boxes[chosen[row]]
            face = min(faces, key=lambda f: abs(f.box.x - x) + abs(f.box.y - y) + abs(f.box.w - w))
            for model, aligner, embedder in (("1", engine.aligner, engine.embedder),
                                             ("2", engine.second_aligner, engine.second_embedder)):
                chip = aligner.align(image, [face])[0]
                plain, mirrored = _unit(embedder.embed([chip, np.ascontiguousarray(chip[:, ::-1])]))
                out["plain" + model][row] = plain
                out["flip" + model][row] = _unit(plain + mirrored)
            if row % 1000 == 0:
                log(f"flip: {row} of {len(data.paths)} photos")
        return out

    embedded = call_in_engine_pool(work)
    np.savez(cache, **embedded)
    return embedded


def dlib_cost_ms() -> tuple[float, float]:
    from faces.engine import call_in_engine_pool, get_engine

    engine = get_engine()
    chip = (np.random.default_rng(0).random((150, 150, 3)) * 255).astype(np.uint8)
    mirrored = np.ascontiguousarray(chip[:, ::-1])

    def median_ms(fn, runs: int = 100) -> float:
        fn()
        times = []
        for _ in range(runs):
            started = time.perf_counter()
            fn()
            times.append((time.perf_counter() - started) * 1000)
        return statistics.median(times)

    return call_in_engine_pool(lambda: (median_ms(lambda: engine.embedder.embed([chip])),
                                        median_ms(lambda: engine.embedder.embed([chip, mirrored]))))


def run() -> str:
    from bench import openset
    from faces.calibration.build import split, vectors
    from faces.calibration.dataset import cache_path, default_lfw_dir, embed_folder
    from faces.decision import load_calibration, load_fused_calibration
    from faces.engine import get_engine

    folder = default_lfw_dir()
    engine = get_engine()
    if engine.second_embedder is None:
        return "Flip table skipped: the engine has no second model."
    data = embed_folder(folder=folder, with_second=True)
    calibration = load_calibration(data.model)
    fused_calibration = load_fused_calibration(engine.combination)
    base = cache_path(model=engine.model_name, detector=engine.detector_name)
    flips = flipped_embeddings(data, folder, base.with_name(base.stem + ".flip.npz"))
    chosen = data.chosen
    rows = np.flatnonzero(chosen >= 0)
    agreement = (float(np.median(np.sum(flips["plain1"][rows] * data.embeddings[chosen[rows]], axis=1))),
                 float(np.median(np.sum(flips["plain2"][rows] * data.second[chosen[rows]], axis=1))))
    sp = split(data)
    twins = openset.twins_of_enrolled(sp)
    shipped = openset.Scorer("shipped", normalise=True, k=calibration.cohort_k, mode="template")
    table_rows = []
    for flip_first, flip_second in ((False, False), (True, False), (False, True), (True, True)):
        embeddings, second = data.embeddings.copy(), data.second.copy()
        if flip_first:
            embeddings[chosen[rows]] = flips["flip1"][rows]
        if flip_second:
            second[chosen[rows]] = flips["flip2"][rows]
        variant = dataclasses.replace(data, embeddings=embeddings, second=second)
        cohort = vectors(variant, [sp.photos[i][0] for i in sp.cohort])
        protocol = openset.Protocol(variant, sp, cohort, calibration.cohort_k)
        fused = openset.FusedProtocol(variant, sp, protocol, fused_calibration.fused.cohort_k,
                                      fused_calibration.second_weight)
        label = f"dlib {'flipped' if flip_first else 'plain'}, FaceNet {'flipped' if flip_second else 'plain'}"
        for per_person in (1, 3):
            genuine, strangers = protocol.run(shipped, people=1000, per_person=per_person)
            fused_genuine, fused_strangers = fused.run(people=1000, per_person=per_person)
            everywhere = fused_genuine.fused_everywhere()
            for keep, who in openset.stranger_sets(twins):
                alone = strangers.only(keep)
                together = fused_strangers.only(keep).fused_everywhere()
                table_rows.append([label, per_person, who] + [
                    openset.rank1(genuine, openset.threshold_at(alone, rate, 0.0), 0.0)
                    for rate in openset.STRANGER_RATES] + [
                    openset.rank1(everywhere, openset.threshold_at(together, rate, 0.0), 0.0)
                    for rate in openset.STRANGER_RATES])
    one, two = dlib_cost_ms()
    return table(
        "Flip-averaged embeddings: rank-1 when 0.1% / 1% / 5% of strangers are named (1,000 people)",
        ["variant", "photos each", "strangers", "dlib @0.1%", "dlib @1%", "dlib @5%", "fused @0.1%", "fused @1%",
         "fused @5%"], table_rows,
        note=f"Plain vectors re-embedded here against the cached ones: median cosine {agreement[0]:.4f} (dlib), "
             f"{agreement[1]:.4f} (FaceNet). Fused: FaceNet on every face, the shipped weight and z-scoring. "
             f"Cost: dlib's network {one:.2f} ms for a chip, {two:.2f} ms for the chip and its mirror (one "
             "batch), median of 100 on one engine thread.")


if __name__ == "__main__":
    setup_django()
    run()  # table() prints as it goes
