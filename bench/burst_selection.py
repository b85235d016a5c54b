"""Which three of several photos to enrol (`keep_best`): does ranking by sharpness pick better
references than taking any three?

`POST /register` with `keep_best` keeps the sharpest faces that pass the gates (faces/quality.py,
`burst_rank`). LFW has no camera bursts, so this is the nearest test it allows: each identity of
LFW View 1 training with 6+ photos offers its first 5 as the candidates, and its other photos are
the probes. Three are enrolled, chosen by sharpness (the shipped rank), by the reverse, by folder
order, and all five as a ceiling; each probe is decided as the service decides (faces.decision,
shipped calibration, threshold for this gallery size), and held-out strangers say what the
threshold lets through. Sharpness is measured on the cached detection box, as the gate measures it.

Run: `FACEPORTAL_CALIBRATION_CACHE=/work/cache/burst-calibration .venv/bin/python bench/burst_selection.py`
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import log, setup_django, table  # noqa: E402

CANDIDATES = 5
KEEP = 3
RATES = (0.001, 0.01)


def sharpness_of(folder: Path, data, row: int) -> float:
    import cv2

    from faces.engine.base import DetectedFace, FaceBox
    from faces.quality import sharpness

    x, y, w, h = (int(v) for v in data.boxes[data.chosen[row]])
    image = cv2.imread(str(folder / data.paths[row]))
    return sharpness(image, DetectedFace(box=FaceBox(x=x, y=y, w=w, h=h), confidence=1.0))


def rank1(*, calibration, model: str, templates: np.ndarray, probes: np.ndarray, owner: np.ndarray,
          strangers: np.ndarray, rate: float) -> tuple[float, float]:
    from faces.calibration.build import top_two
    from faces.decision import MATCH, decide, effective_threshold
    from faces.index.base import cosine_to_similarity

    threshold = effective_threshold(model=model, requested=None, false_match_rate=rate,
                                    gallery_size=len(templates), model_default=0.0)

    def named(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        best, first, second = top_two(cosine_to_similarity(vectors @ templates.T))
        offsets = calibration.offsets(vectors)
        matched = np.array([decide(similarities=[float(a), float(b)], threshold=threshold, offset=float(o)).decision
                            == MATCH for a, b, o in zip(first, second, offsets, strict=True)])
        return matched, best

    matched, best = named(probes)
    return float((matched & (best == owner)).mean()), float(named(strangers)[0].mean())


def run() -> str:
    from faces.calibration.build import split, vectors
    from faces.calibration.dataset import default_lfw_dir, embed_folder
    from faces.decision import load_calibration
    from faces.quality import burst_rank

    folder = default_lfw_dir()
    if not (folder / "manifest.csv").exists():
        return f"Burst selection skipped: no LFW folder at {folder} (set FACEPORTAL_LFW_DIR)."
    data = embed_folder(folder=folder)
    calibration = load_calibration(data.model)
    if calibration is None or calibration.person_score != "template":
        return "Burst selection skipped: it scores people by template, as the shipped dlib calibration does."
    sp = split(data)
    identities = [i for i in sp.enrolled if len(sp.photos[i]) > CANDIDATES]
    log(f"burst selection: {len(identities)} identities with {CANDIDATES + 1}+ photos; measuring sharpness")
    pools = [sp.photos[i][:CANDIDATES] for i in identities]
    sharp = [[sharpness_of(folder, data, row) for row in pool] for pool in pools]
    probe_rows, owner = [], []
    for person, identity in enumerate(identities):
        probe_rows += sp.photos[identity][CANDIDATES:]
        owner += [person] * (len(sp.photos[identity]) - CANDIDATES)
    probes, owner = vectors(data, probe_rows), np.asarray(owner)
    strangers = vectors(data, [sp.photos[i][0] for i in sp.strangers])

    def by_rank(pool: list[int], scores: list[float], reverse: bool) -> list[int]:
        order = sorted(range(len(pool)), key=lambda n: burst_rank({"sharpness": scores[n]}), reverse=reverse)
        return [pool[n] for n in order[:KEEP]]

    choices = {
        "sharpest 3 of 5 (shipped keep_best)": [by_rank(p, s, True) for p, s in zip(pools, sharp, strict=True)],
        "first 3 of 5 (folder order)": [p[:KEEP] for p in pools],
        "least sharp 3 of 5": [by_rank(p, s, False) for p, s in zip(pools, sharp, strict=True)],
        "all 5": pools,
        "first 1 (one photo)": [p[:1] for p in pools],
    }
    rows = []
    for label, chosen in choices.items():
        templates = np.stack([vectors(data, rows_).sum(axis=0) for rows_ in chosen])
        templates /= np.linalg.norm(templates, axis=1, keepdims=True)
        row = [label]
        for rate in RATES:
            right, strangers_named = rank1(calibration=calibration, model=data.model, templates=templates,
                                           probes=probes, owner=owner, strangers=strangers, rate=rate)
            row += [f"{right:.3f}", f"{strangers_named:.2%}"]
        rows.append(row)
    return table(
        f"Which {KEEP} photos to enrol: rank-1 at false_match_rate 0.001 and 0.01",
        ["enrolled", "rank-1 @0.001", "strangers named @0.001", "rank-1 @0.01", "strangers named @0.01"], rows,
        note=f"{len(identities)} LFW identities with {CANDIDATES + 1}+ photos, {len(probes)} probes (their photos "
        f"after the first {CANDIDATES}), {len(strangers)} held-out strangers; threshold from the shipped "
        f"calibration for {len(identities)} people.")


if __name__ == "__main__":
    setup_django()
    run()
