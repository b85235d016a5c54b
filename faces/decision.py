"""The match decision, shared by REST and WebSocket: raw similarities in, a decision out.

A search for someone who is not enrolled still returns a nearest person; whether that person is
named depends on a threshold. A fixed similarity threshold lets more strangers through as the
gallery grows (each enrolled person is one more chance of a near miss), so the threshold here is
derived per search from the organisation's `false_match_rate` and its current gallery size,
using the model's calibration: the measured chance `p1(t)` that a stranger scores at least `t`
against one enrolled person. For a gallery of N people the chance that a stranger passes is
1 - (1 - p1(t))^N; the threshold is the lowest `t` that keeps it at or under the target rate.

Scores are cohort-normalised when the calibration says so: a probe's similarity to a person,
minus the mean of its K best similarities to a fixed cohort of strangers. Faces that resemble
everybody (blur, low light, a common look) score high against everybody; subtracting what the
probe scores against strangers removes that. On the answer, each face's threshold is given back
in plain similarity units (the normalised threshold plus that face's cohort offset).

The calibration (per model) is data under faces/calibration/, built by
`manage.py calibrate_openset`, never constants here.
"""

from __future__ import annotations

import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from faces.index.base import cosine_to_similarity

CALIBRATION_DIR = Path(__file__).resolve().parent / "calibration"

SOURCE_REQUEST = "request"
SOURCE_CALIBRATED = "calibrated"
SOURCE_DEFAULT = "model_default"  # no calibration file for this model: its uncalibrated fallback

MATCH = "match"
UNKNOWN = "unknown"
AMBIGUOUS = "ambiguous"


def calibration_paths(model: str) -> tuple[Path, Path]:
    stem = model.lower()
    return CALIBRATION_DIR / f"{stem}.json", CALIBRATION_DIR / f"{stem}.cohort.npy"


@dataclass(frozen=True)
class Calibration:
    model: str
    cohort: np.ndarray  # (C, D) L2-normalised stranger embeddings, one per person
    cohort_k: int
    normalise: bool
    margin: float  # least gap between the best and second person (score units); 0 = no test
    tail_scores: np.ndarray  # ascending score values t
    tail_log10_p: np.ndarray  # log10 P(stranger scores >= t against one enrolled person)
    tail_slope: float  # d log10 p / d t below the last measured point (negative)
    safety: float  # the target rate is divided by this: thresholds travel imperfectly between datasets
    typical_offset: float  # median cohort offset of a face, to state a threshold in similarity units
    person_score: str = "best_face"  # best_face: a person's nearest face; template: their mean face
    grid_sizes: np.ndarray | None = None  # measured thresholds: gallery sizes (people) ...
    grid_log10_rates: np.ndarray | None = None  # ... by target rates ...
    grid_scores: np.ndarray | None = None  # ... (sizes, rates)

    def per_person_rate(self, *, gallery_size: int, false_match_rate: float) -> float:
        """p1 such that 1 - (1 - p1)^N equals the target rate (over the safety factor)."""
        target = min(0.999, false_match_rate / self.safety)
        people = max(1, gallery_size)
        # -expm1(log1p(-target) / N) is 1 - (1 - target)^(1/N) without cancellation for tiny rates.
        return -math.expm1(math.log1p(-target) / people)

    def tail_threshold(self, *, gallery_size: int, false_match_rate: float) -> float:
        """The threshold if each enrolled person were an independent chance for a stranger to pass."""
        log_p = math.log10(max(1e-300, self.per_person_rate(gallery_size=gallery_size,
                                                             false_match_rate=false_match_rate)))
        scores, logs = self.tail_scores, self.tail_log10_p
        if log_p >= logs[0]:
            return float(scores[0])
        if log_p < logs[-1]:
            # Rarer than anything measured: extend the tail along its last measured slope.
            return float(scores[-1] + (log_p - logs[-1]) / self.tail_slope)
        # logs fall as scores rise; np.interp wants ascending x, so walk it reversed.
        return float(np.interp(log_p, logs[::-1], scores[::-1]))

    def threshold_for(self, *, gallery_size: int, false_match_rate: float) -> float:
        """The score a best candidate needs, for this gallery size and target rate.

        Inside the measured grid: interpolated (log size, log rate). People's scores against one
        stranger are not independent, so the independence rule overstates how fast the threshold
        must rise; it only extends the grid, by its increments, to larger galleries and rarer rates.
        """
        if self.grid_scores is None:
            return self.tail_threshold(gallery_size=gallery_size, false_match_rate=false_match_rate)
        target = false_match_rate / self.safety
        size = max(1, gallery_size)
        sizes, rates = self.grid_sizes, self.grid_log10_rates
        clamped_size = float(min(max(size, sizes[0]), sizes[-1]))
        log_rate = math.log10(max(1e-300, target))
        clamped_rate = min(max(log_rate, rates[-1]), rates[0])
        # Interpolate along rates (descending in the table) for every size, then along log size.
        per_size = np.array([np.interp(clamped_rate, rates[::-1], row[::-1]) for row in self.grid_scores])
        value = float(np.interp(math.log10(clamped_size), np.log10(sizes), per_size))
        if size != clamped_size or log_rate != clamped_rate:
            edge_rate = 10 ** clamped_rate * self.safety
            value += self.tail_threshold(gallery_size=size, false_match_rate=false_match_rate) - \
                self.tail_threshold(gallery_size=int(clamped_size), false_match_rate=edge_rate)
        return value

    def offsets(self, vectors: np.ndarray) -> np.ndarray:
        """Each vector's mean similarity to its K nearest cohort faces (0 when not normalising)."""
        vectors = np.atleast_2d(vectors)
        if not self.normalise or len(vectors) == 0:
            return np.zeros(len(vectors), dtype=np.float64)
        similarities = cosine_to_similarity(vectors @ self.cohort.T)
        k = min(self.cohort_k, similarities.shape[1])
        top = np.partition(similarities, -k, axis=1)[:, -k:]
        return top.mean(axis=1).astype(np.float64)


def parse_calibration(table: dict, cohort: np.ndarray) -> Calibration:
    decision = table["decision"]
    tail = table["tail"]
    return Calibration(
        model=table["model"],
        cohort=np.ascontiguousarray(cohort, dtype=np.float32),
        cohort_k=int(decision["cohort_k"]),
        normalise=bool(decision["normalise"]),
        margin=float(decision["margin"]),
        tail_scores=np.asarray(tail["scores"], dtype=np.float64),
        tail_log10_p=np.asarray(tail["log10_p"], dtype=np.float64),
        tail_slope=float(tail["slope"]),
        safety=float(decision["safety"]),
        typical_offset=float(table["cohort"]["typical_offset"]),
        person_score=str(decision.get("person_score", "best_face")),
        grid_sizes=np.asarray(table["grid"]["gallery_sizes"], dtype=np.float64) if "grid" in table else None,
        grid_log10_rates=np.asarray(table["grid"]["log10_rates"], dtype=np.float64) if "grid" in table else None,
        grid_scores=np.asarray(table["grid"]["scores"], dtype=np.float64) if "grid" in table else None,
    )


@functools.lru_cache(maxsize=8)
def load_calibration(model: str) -> Calibration | None:
    table_path, cohort_path = calibration_paths(model)
    if not table_path.exists() or not cohort_path.exists():
        return None
    return parse_calibration(json.loads(table_path.read_text()), np.load(cohort_path))


# ---- a second model, fused ------------------------------------------------------------------------
#
# With a second model the score of a probe against a person is fused: each model's similarity
# z-scored by its impostor statistics (measured on the cohort), summed, then cohort-normalised like
# the first model's (minus the mean of the probe's K best fused scores against the cohort). The
# second model costs about twice the first, so it runs only where the first cannot decide alone
# (a cascade), and the false-match budget is split so the promise still holds:
# - the first model alone names a face whose normalised score reaches its threshold for
#   `accept_share` of the target rate;
# - it refuses a face below its threshold for `band_factor` times the rate (such faces almost
#   never pass fused either, and being refused costs no false match);
# - in between, the fused score must reach the fused threshold for the rest of the rate.
# A stranger is named only through one of the two doors, so its chance is at most the sum of the
# two calibrated rates: the target.


@dataclass(frozen=True)
class FusedCalibration:
    combination: str  # "Dlib+Facenet512": the calibration file's name
    first: Calibration  # the first model's own calibration (the cascade's outer doors)
    fused: Calibration  # thresholds of fused, cohort-normalised scores (its cohort field unused)
    cohort_first: np.ndarray  # (C, D1) the cohort in each model's space, the same faces
    cohort_second: np.ndarray  # (C, D2)
    mean: tuple[float, float]  # impostor mean and deviation per model: first on similarity,
    std: tuple[float, float]  # second on raw cosine (as the study that set the scheme)
    accept_share: float
    band_factor: float
    second_weight: float = 1.0  # the second model's z-score counts this much against the first's

    def fuse(self, first_similarity: np.ndarray, second_cosine: np.ndarray) -> np.ndarray:
        """Fused scores from each model's scores of the same pairs (any matching shapes)."""
        return ((np.asarray(first_similarity, dtype=np.float64) - self.mean[0]) / self.std[0]
                + self.second_weight * (np.asarray(second_cosine, dtype=np.float64) - self.mean[1]) / self.std[1])

    def offsets(self, first_vectors: np.ndarray, second_vectors: np.ndarray) -> np.ndarray:
        """Each probe's mean fused score against its K best cohort faces."""
        first_vectors, second_vectors = np.atleast_2d(first_vectors), np.atleast_2d(second_vectors)
        if len(first_vectors) == 0:
            return np.zeros(0, dtype=np.float64)
        scores = self.fuse(cosine_to_similarity(first_vectors @ self.cohort_first.T),
                           second_vectors @ self.cohort_second.T)
        k = min(self.fused.cohort_k, scores.shape[1])
        return np.partition(scores, -k, axis=1)[:, -k:].mean(axis=1)

    def cascade_for(self, *, gallery_size: int, false_match_rate: float) -> Cascade:
        return Cascade(
            calibration=self,
            accept=self.first.threshold_for(gallery_size=gallery_size,
                                            false_match_rate=false_match_rate * self.accept_share),
            floor=self.first.threshold_for(gallery_size=gallery_size,
                                           false_match_rate=min(0.5, false_match_rate * self.band_factor)),
            fused=self.fused.threshold_for(gallery_size=gallery_size,
                                           false_match_rate=false_match_rate * (1.0 - self.accept_share)),
        )


@dataclass(frozen=True)
class Cascade:
    """The three cuts one search runs under (normalised scores), from `FusedCalibration.cascade_for`."""

    calibration: FusedCalibration
    accept: float  # first model's normalised score that names without the second model
    floor: float  # below it, unknown without the second model
    fused: float  # fused normalised score needed in between

    def needs_second(self, first_scores: np.ndarray) -> np.ndarray:
        """Which best-candidate scores (first model, normalised) the first model cannot decide alone."""
        first_scores = np.asarray(first_scores, dtype=np.float64)
        return (first_scores >= self.floor) & (first_scores < self.accept)

    def first_similarity_needed(self, *, second_cosine: float, fused_offset: float) -> float:
        """The first model's similarity at which the fused score reaches the cut, given the second
        model's cosine: the fused decision stated in the first model's units for the answer."""
        mean, std, weight = self.calibration.mean, self.calibration.std, self.calibration.second_weight
        return float(mean[0] + std[0] * (self.fused + fused_offset - weight * (second_cosine - mean[1]) / std[1]))


def fused_calibration_paths(combination: str) -> tuple[Path, Path]:
    return calibration_paths(combination.replace("+", "_"))


@functools.lru_cache(maxsize=8)
def load_fused_calibration(combination: str) -> FusedCalibration | None:
    """The calibration of an engine combination ("Dlib+Facenet512"); None when it has none."""
    first_model = combination.split("+")[0]
    first = load_calibration(first_model)
    table_path, cohort_path = fused_calibration_paths(combination)
    if "+" not in combination or first is None or not table_path.exists() or not cohort_path.exists():
        return None
    table = json.loads(table_path.read_text())
    cohort = np.load(cohort_path)
    first_dim = int(table["fusion"]["first_dimension"])
    fusion = table["fusion"]
    return FusedCalibration(
        combination=table["model"], first=first, fused=parse_calibration(table, np.zeros((0, 0), np.float32)),
        cohort_first=np.ascontiguousarray(cohort[:, :first_dim], dtype=np.float32),
        cohort_second=np.ascontiguousarray(cohort[:, first_dim:], dtype=np.float32),
        mean=(float(fusion["mean"][0]), float(fusion["mean"][1])),
        std=(float(fusion["std"][0]), float(fusion["std"][1])),
        accept_share=float(fusion["cascade"]["accept_share"]),
        band_factor=float(fusion["cascade"]["band_factor"]),
        second_weight=float(fusion.get("second_weight", 1.0)),
    )


@dataclass(frozen=True)
class Threshold:
    """The threshold one search runs under, and where it came from."""

    source: str  # request | calibrated | model_default
    value: float | None  # request/model_default: similarity; calibrated: normalised score
    similarity: float  # the same threshold in similarity units for a typical face
    false_match_rate: float | None = None
    gallery_size: int | None = None
    calibration: Calibration | None = None
    # The engine combination whose calibration decides ("Dlib+Facenet512", or "Dlib" when the
    # combination has none and the first model decides alone); None without calibration.
    calibrated_for: str | None = None
    # With a second model: the cascade's cuts. `value` stays the first model's threshold for the
    # whole rate: what decides where the second model's scores are not to hand (verify, grouping).
    cascade: Cascade | None = None

    def for_offset(self, offset: float) -> float:
        """This threshold in similarity units for a face with this cohort offset."""
        if self.source == SOURCE_CALIBRATED and self.calibration is not None and self.calibration.normalise:
            return float(self.value + offset)
        return float(self.value if self.value is not None else self.similarity)


def effective_threshold(
    *, model: str, requested: float | None, false_match_rate: float, gallery_size: int, model_default: float,
    combination: str | None = None,
) -> Threshold:
    """An explicit threshold wins; else the calibrated one for this gallery (the engine
    combination's cascade when it has a calibration); else the model's default."""
    if requested is not None:
        return Threshold(source=SOURCE_REQUEST, value=float(requested), similarity=float(requested))
    calibration = load_calibration(model)
    if calibration is None:
        return Threshold(source=SOURCE_DEFAULT, value=model_default, similarity=model_default)
    fused = load_fused_calibration(combination) if combination and combination != model else None
    # A webcam asks once a frame, for the same organisation: the interpolation is done once.
    # Keyed by the calibrations' identities: each entry holds its own, so no id is reused.
    key = (id(calibration), id(fused), false_match_rate, gallery_size)
    threshold = _calibrated_thresholds.get(key)
    if threshold is None:
        value = calibration.threshold_for(gallery_size=gallery_size, false_match_rate=false_match_rate)
        offset = calibration.typical_offset if calibration.normalise else 0.0
        cascade = fused.cascade_for(gallery_size=gallery_size, false_match_rate=false_match_rate) if fused else None
        threshold = Threshold(
            source=SOURCE_CALIBRATED, value=value, similarity=min(1.0, value + offset),
            false_match_rate=false_match_rate, gallery_size=gallery_size, calibration=calibration,
            calibrated_for=fused.combination if fused is not None else calibration.model, cascade=cascade,
        )
        if len(_calibrated_thresholds) >= CALIBRATED_THRESHOLDS_KEPT:
            _calibrated_thresholds.clear()
        _calibrated_thresholds[key] = threshold
    return threshold


CALIBRATED_THRESHOLDS_KEPT = 4096
_calibrated_thresholds: dict[tuple[int, int, float, int], Threshold] = {}


# The fallback minimum similarity ((1 + cosine) / 2) per model, used only for a model without
# calibration data. Dlib's was measured on ../shared/faces (docs/ACCURACY.md); the others start
# from DeepFace's cosine-distance thresholds (similarity = 1 - distance / 2).
UNCALIBRATED_THRESHOLDS = {
    "Dlib": 0.96,
    "Facenet512": 0.85,
    "ArcFace": 0.66,
    "Facenet": 0.80,
    "SFace": 0.70,
    "VGG-Face": 0.66,
    "GhostFaceNet": 0.66,
}



def uncalibrated_threshold_for(model_name: str) -> float:
    """The fallback similarity for a model without calibration data (and where no request sets
    one): the configured FACEPORTAL_DEFAULT_THRESHOLD, else the model's published default."""
    from django.conf import settings

    if settings.FACEPORTAL_DEFAULT_THRESHOLD is not None:
        return float(settings.FACEPORTAL_DEFAULT_THRESHOLD)
    return UNCALIBRATED_THRESHOLDS.get(model_name, 0.85)


@dataclass(frozen=True)
class FaceDecision:
    decision: str  # match | unknown | ambiguous
    best: int | None  # index into the candidates of the matched person, when decision == match
    threshold: float  # similarity this face's best candidate had to reach
    margin: float | None  # best minus second-best person, similarity units; None with one candidate
    lead: int = 0  # the candidate the decision was about (the fused best, in the cascade's band)


def decide(*, similarities: list[float], threshold: Threshold, offset: float) -> FaceDecision:
    """Decide for one face from its candidates' similarities (one per person, best first).

    Below the threshold: unknown. At or above it, but with a different person within the
    calibrated margin: ambiguous, since naming either would be a coin toss. Otherwise a match.
    A request's explicit threshold is a plain similarity cut, as before calibration existed.
    """
    needed = threshold.for_offset(offset)
    if not similarities:
        return FaceDecision(decision=UNKNOWN, best=None, threshold=needed, margin=None)
    gap = similarities[0] - similarities[1] if len(similarities) > 1 else None
    if similarities[0] < needed:
        return FaceDecision(decision=UNKNOWN, best=None, threshold=needed, margin=gap)
    calibration = threshold.calibration
    if (threshold.source == SOURCE_CALIBRATED and calibration is not None and calibration.margin > 0
            and gap is not None and gap < calibration.margin):
        return FaceDecision(decision=AMBIGUOUS, best=None, threshold=needed, margin=gap)
    return FaceDecision(decision=MATCH, best=0, threshold=needed, margin=gap)


def decide_fused(
    *, first_similarities: list[float], second_cosines: list[float | None], cascade: Cascade,
    first_offset: float, fused_offset: float,
) -> FaceDecision:
    """Decide, in the cascade's band, from both models' scores of the candidates (one per person,
    in the first model's order). `best` indexes the candidate named; a candidate without the second
    model's score (no vector stored yet) must pass the first model's own door alone.

    The answer's threshold is the first model's similarity the named (or best) candidate needed,
    given its second-model score."""
    if not first_similarities:
        return FaceDecision(decision=UNKNOWN, best=None, threshold=cascade.accept + first_offset, margin=None)
    calibration = cascade.calibration
    scores = []
    for first, second in zip(first_similarities, second_cosines, strict=True):
        if second is None:
            scores.append(-np.inf)  # only the first model's door: not in the fused ranking
        else:
            scores.append(float(calibration.fuse(first, second)) - fused_offset)
    order = sorted(range(len(scores)), key=lambda i: scores[i], reverse=True)
    best = order[0]
    gap = first_similarities[best] - max((first_similarities[i] for i in order[1:]), default=float("nan"))
    gap = None if len(order) < 2 else gap
    if second_cosines[best] is None:
        needed = cascade.accept + first_offset
        named = first_similarities[0] >= needed
        return FaceDecision(decision=MATCH if named else UNKNOWN, best=0 if named else None, threshold=needed,
                            margin=gap)
    needed = cascade.first_similarity_needed(second_cosine=float(second_cosines[best]), fused_offset=fused_offset)
    if scores[best] >= cascade.fused:
        return FaceDecision(decision=MATCH, best=best, threshold=needed, margin=gap, lead=best)
    return FaceDecision(decision=UNKNOWN, best=None, threshold=needed, margin=gap, lead=best)
