"""Building a model's open-set calibration from an embedded LFW-layout folder, and the protocol
the bench measures it with. Pure NumPy on cached embeddings (faces/calibration/dataset.py).

The split is fixed by a seed and never mixes roles:
- identities with 2+ photos are the people who get enrolled (gallery photos and genuine probes);
- of the identities with 1 photo, `COHORT_SIZE` become the cohort (the calibration's stand-in
  strangers, shipped with the model) and all the others are held-out strangers for measuring.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from faces.calibration.dataset import EmbeddedSet
from faces.index.base import cosine_to_similarity

COHORT_SIZE = 1000
SEED = 12
ENROL_MAX = 3  # photos enrolled per person in the multi-photo protocol


@dataclass
class Split:
    photos: dict[str, list[int]]  # identity -> photo rows with a face, in folder order
    enrolled: list[str]  # identities with 2+ usable photos
    cohort: list[str]
    strangers: list[str]


def split(data: EmbeddedSet, *, cohort_size: int = COHORT_SIZE, seed: int = SEED) -> Split:
    chosen = data.chosen
    photos: dict[str, list[int]] = defaultdict(list)
    listed: dict[str, int] = defaultdict(int)
    for row, identity in enumerate(data.identities):
        listed[identity] += 1
        if chosen[row] >= 0:
            photos[identity].append(row)
    enrolled = sorted(i for i in photos if len(photos[i]) >= 2)
    singles = sorted(i for i in photos if listed[i] == 1)
    order = np.random.default_rng(seed).permutation(len(singles))
    cohort = sorted(singles[i] for i in order[:cohort_size])
    strangers = sorted(singles[i] for i in order[cohort_size:])
    return Split(photos=dict(photos), enrolled=enrolled, cohort=cohort, strangers=strangers)


def vectors(data: EmbeddedSet, rows: list[int]) -> np.ndarray:
    return data.embeddings[data.chosen[np.asarray(rows, dtype=np.int64)]]


def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return cosine_to_similarity(a @ b.T)


def cohort_offsets(probes: np.ndarray, cohort: np.ndarray, k: int, *, leave_one_out: bool = False) -> np.ndarray:
    """Mean of each probe's k best similarities to the cohort (leave_one_out: probes are the cohort)."""
    out = np.empty(len(probes))
    for start in range(0, len(probes), 2048):
        block = similarity(probes[start:start + 2048], cohort)
        if leave_one_out:
            idx = np.arange(start, start + len(block))
            block[np.arange(len(block)), idx] = -np.inf
        out[start:start + 2048] = np.partition(block, -k, axis=1)[:, -k:].mean(axis=1)
    return out


@dataclass
class Gallery:
    vectors: np.ndarray  # (F, D) enrolled faces
    owner: np.ndarray  # (F,) person index per face
    size: int  # people


def make_gallery(data: EmbeddedSet, sp: Split, identities: list[str], *, per_person: int) -> Gallery:
    """Each identity enrolled with its first photos (at most `per_person`, always leaving one probe)."""
    rows, owner = [], []
    for person, identity in enumerate(identities):
        mine = sp.photos[identity]
        for row in mine[: max(1, min(per_person, len(mine) - 1))]:
            rows.append(row)
            owner.append(person)
    return Gallery(vectors=vectors(data, rows), owner=np.asarray(owner), size=len(identities))


def genuine_probes(sp: Split, identities: list[str]) -> tuple[list[int], np.ndarray]:
    """Photos after the first ENROL_MAX-or-fewer of each identity: the same probes for 1 or 3 enrolled."""
    rows, owner = [], []
    for person, identity in enumerate(identities):
        mine = sp.photos[identity]
        for row in mine[min(ENROL_MAX, len(mine) - 1):]:
            rows.append(row)
            owner.append(person)
    return rows, np.asarray(owner)


def person_scores(probes: np.ndarray, gallery: Gallery, *, mode: str = "best") -> np.ndarray:
    """(P, people) similarity of each probe to each person: best face, or the mean template."""
    if mode == "template":
        templates = np.zeros((gallery.size, gallery.vectors.shape[1]))
        np.add.at(templates, gallery.owner, gallery.vectors)
        templates /= np.linalg.norm(templates, axis=1, keepdims=True)
        return similarity(probes, templates)
    faces = similarity(probes, gallery.vectors)
    out = np.full((len(probes), gallery.size), -np.inf)
    # Best face per person, vectorised: sort faces by owner, then reduceat the maxima.
    order = np.argsort(gallery.owner, kind="stable")
    owners = gallery.owner[order]
    starts = np.flatnonzero(np.r_[True, owners[1:] != owners[:-1]])
    out[:, owners[starts]] = np.maximum.reduceat(faces[:, order], starts, axis=1)
    return out


def top_two(scores: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(best person, best score, second-best score) per row."""
    if scores.shape[1] == 1:
        return np.zeros(len(scores), dtype=int), scores[:, 0], np.full(len(scores), -np.inf)
    part = np.argpartition(-scores, 1, axis=1)[:, :2]
    first = np.take_along_axis(scores, part, axis=1)
    swap = first[:, 1] > first[:, 0]
    best = np.where(swap, part[:, 1], part[:, 0])
    return best, first.max(axis=1), first.min(axis=1)


def tail_curve(impostor: np.ndarray, *, points: int = 40, min_count: int = 20) -> dict:
    """The exceedance curve log10 P(score >= t) of per-person impostor scores, and its far slope."""
    ordered = np.sort(impostor)[::-1]
    n = len(ordered)
    lowest = math.log10(min_count / n)
    logs = np.linspace(-0.3, lowest, points)
    scores = [float(ordered[max(0, int(round(10 ** lp * n)) - 1)]) for lp in logs]
    # Slope of the last 1.5 decades, for rates rarer than anything measured (log-linear tail).
    far = logs <= lowest + 1.5
    slope = float(np.polyfit(np.asarray(scores)[far], logs[far], 1)[0])
    return {"scores": [round(s, 6) for s in scores], "log10_p": [round(float(lp), 4) for lp in logs],
            "slope": round(min(slope, -1.0), 4), "pairs": int(n)}


def calibration_scores(
    data: EmbeddedSet, sp: Split, *, normalise: bool, k: int, mode: str = "best"
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(cohort, its offsets, (cohort, people) impostor scores)."""
    cohort = vectors(data, [sp.photos[i][0] for i in sp.cohort])
    offsets = cohort_offsets(cohort, cohort, k, leave_one_out=True) if normalise else np.zeros(len(cohort))
    gallery = make_gallery(data, sp, sp.enrolled, per_person=ENROL_MAX)
    scores = person_scores(cohort, gallery, mode=mode) - offsets[:, None]
    return cohort, offsets, scores


def typical_offset(data: EmbeddedSet, sp: Split, cohort: np.ndarray, k: int) -> float:
    probes = vectors(data, [rows[0] for rows in (sp.photos[i] for i in sp.enrolled)])
    return float(np.median(cohort_offsets(probes, cohort, k)))


GRID_SIZES = (1, 2, 5, 10, 20, 50, 100, 200, 400)
GRID_LOG10_RATES = tuple(round(-1.0 - 0.25 * i, 2) for i in range(13))  # 1e-1 .. 1e-4
GRID_DRAWS = 200


def threshold_grid(scores: np.ndarray, *, seed: int = SEED) -> dict:
    """Measured thresholds: for galleries of N people drawn from the enrolled set, the score the
    cohort's best match exceeds with probability `rate`. `scores` is (cohort, people).

    Galleries stop at a third of the people, so draws still differ; larger galleries extend this
    along the per-person tail (faces/decision.py).
    """
    rng = np.random.default_rng(seed)
    people = scores.shape[1]
    rows = []
    for size in GRID_SIZES:
        if size == 1:
            best = scores.ravel()  # every (cohort face, person) pair: no need to draw
        else:
            best = np.concatenate([
                scores[:, rng.choice(people, size, replace=False)].max(axis=1) for _ in range(GRID_DRAWS)])
        rows.append([round(float(np.quantile(best, 1.0 - 10 ** lr)), 6) for lr in GRID_LOG10_RATES])
    # Monotone in N and in the rate, as a threshold must be (sampling noise could break it).
    grid = np.maximum.accumulate(np.asarray(rows), axis=0)
    grid = np.maximum.accumulate(grid, axis=1)
    return {"gallery_sizes": list(GRID_SIZES), "log10_rates": list(GRID_LOG10_RATES),
            "scores": grid.round(6).tolist(), "draws": GRID_DRAWS}


# ---- the fused combination (faces/decision.py, "a second model, fused") ---------------------------

# The cascade's split of the false-match budget and its band (faces/decision.py): what
# `bench/openset.py` measured on the enrolled people's probes and the cohort, never the strangers.
ACCEPT_SHARE = 0.1
BAND_FACTOR = 100.0
# The second model's z-score counts this much against the first's (chosen on the enrolled people's
# probes at the calibrated cuts; 0.2 to 1.0 measured, docs/OPEN_SET.md).
SECOND_WEIGHT = 0.3


def second_view(data: EmbeddedSet) -> EmbeddedSet:
    """The same photos and faces with the second model's embeddings in place of the first's."""
    import dataclasses

    if data.second is None:
        raise ValueError("these embeddings have no second model")
    return dataclasses.replace(data, embeddings=data.second, second=None)


def impostor_statistics(cohort: np.ndarray, *, raw_cosine: bool) -> tuple[float, float]:
    """Mean and deviation of the cohort's scores against each other (every pair once)."""
    cosines = cohort @ cohort.T
    pairs = cosines[np.triu_indices(len(cohort), k=1)]
    values = pairs if raw_cosine else cosine_to_similarity(pairs)
    return float(values.mean()), float(values.std())


@dataclass
class FusedScorer:
    """Fused person scores for the LFW protocol, with the product's rule (faces/decision.py)."""

    mean: tuple[float, float]
    std: tuple[float, float]
    cohort_first: np.ndarray
    cohort_second: np.ndarray
    k: int
    second_weight: float = SECOND_WEIGHT

    def fuse(self, first_similarity: np.ndarray, second_cosine: np.ndarray) -> np.ndarray:
        return ((first_similarity - self.mean[0]) / self.std[0]
                + self.second_weight * (second_cosine - self.mean[1]) / self.std[1])

    def offsets(self, first: np.ndarray, second: np.ndarray, *, leave_one_out: bool = False) -> np.ndarray:
        out = np.empty(len(first))
        for start in range(0, len(first), 1024):
            block = self.fuse(similarity(first[start:start + 1024], self.cohort_first),
                              second[start:start + 1024] @ self.cohort_second.T)
            if leave_one_out:
                idx = np.arange(start, start + len(block))
                block[np.arange(len(block)), idx] = -np.inf
            out[start:start + 1024] = np.partition(block, -self.k, axis=1)[:, -self.k:].mean(axis=1)
        return out

    def person_scores(self, first: np.ndarray, second: np.ndarray, gallery_first: Gallery,
                      gallery_second: Gallery) -> np.ndarray:
        """(P, people) fused template scores, not normalised."""
        cosines = 2.0 * person_scores(second, gallery_second, mode="template") - 1.0
        return self.fuse(person_scores(first, gallery_first, mode="template"), cosines)


def fused_scorer(data: EmbeddedSet, sp: Split, *, k: int, second_weight: float = SECOND_WEIGHT) -> FusedScorer:
    """z-scoring constants from the cohort's impostor pairs (first model on similarity, second on
    raw cosine), and the cohort in both spaces."""
    rows = [sp.photos[i][0] for i in sp.cohort]
    cohort_first, cohort_second = vectors(data, rows), vectors(second_view(data), rows)
    first = impostor_statistics(cohort_first, raw_cosine=False)
    second = impostor_statistics(cohort_second, raw_cosine=True)
    return FusedScorer(mean=(first[0], second[0]), std=(first[1], second[1]), cohort_first=cohort_first,
                       cohort_second=cohort_second, k=k, second_weight=second_weight)


def fused_calibration_scores(data: EmbeddedSet, sp: Split, *, k: int,
                             second_weight: float = SECOND_WEIGHT) -> tuple[FusedScorer, np.ndarray]:
    """(the scorer, (cohort, people) fused normalised impostor scores), as `calibration_scores`."""
    scorer = fused_scorer(data, sp, k=k, second_weight=second_weight)
    offsets = scorer.offsets(scorer.cohort_first, scorer.cohort_second, leave_one_out=True)
    gallery_first = make_gallery(data, sp, sp.enrolled, per_person=ENROL_MAX)
    gallery_second = make_gallery(second_view(data), sp, sp.enrolled, per_person=ENROL_MAX)
    scores = scorer.person_scores(scorer.cohort_first, scorer.cohort_second, gallery_first, gallery_second)
    return scorer, scores - offsets[:, None]
