"""Search, score, decide: the one place that turns embeddings into who gets a name.

Every surface asks here: REST recognise and verify, the WebSocket, registration's duplicate check,
the try-it page and the overview. `decision_in_force` says what decides (faces/decision.py turns
the organisation's false-match rate into a threshold); `decide_vectors` searches the gallery,
scores each candidate person and decides; `verify_decision` does the same for one comparison.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from faces.decision import (
    MATCH,
    SOURCE_CALIBRATED,
    Threshold,
    decide,
    decide_fused,
    effective_threshold,
    uncalibrated_threshold_for,
)
from faces.engine import get_engine
from faces.index import get_index
from faces.index.base import cosine_to_similarity, vector_from_bytes
from faces.models import Face
from faces.selectors import PersonMatch, gallery_size_of, matches_for_hits
from organizations.models import Organization

# Faces fetched per query before grouping by person, so one person's many faces cannot crowd
# the candidates list.
FACES_PER_CANDIDATE = 4


def decision_in_force(
    *, organization: Organization, requested_threshold: float | None = None, gallery_size: int | None = None
) -> Threshold:
    """What decides who gets a name, for this organisation and this request: the one place every
    surface (REST, the socket, registration's duplicate check, the try-it page, the overview) asks.

    The request's own threshold when it deliberately sets one (threshold_source "request"); else
    the organisation's false_match_rate turned into a threshold for `gallery_size` people (its
    gallery as it is now when not given; verify compares against one); else, for a model without
    calibration data, the engine's uncalibrated fallback.
    """
    engine = get_engine()
    if requested_threshold is None and gallery_size is None:
        gallery_size = gallery_size_of(organization=organization)
    return effective_threshold(
        model=engine.model_name,
        requested=requested_threshold,
        false_match_rate=organization.false_match_rate,
        gallery_size=gallery_size or 0,
        model_default=uncalibrated_threshold(),
        combination=engine.combination,
    )


def uncalibrated_threshold() -> float:
    """The similarity that decides only where the model has no calibration data
    (FACEPORTAL_DEFAULT_THRESHOLD, else the model's own); never while a calibration exists."""
    return uncalibrated_threshold_for(get_engine().model_name)


@dataclass(frozen=True)
class VectorDecision:
    decision: str  # match | unknown | ambiguous
    best: PersonMatch | None  # the person named, when decision == match
    candidates: list[PersonMatch]  # nearest people, best first
    threshold: float  # similarity the best candidate had to reach
    second_model: bool = False  # the cascade ran the second model for this face


def decide_vectors(
    *, organization: Organization, vectors: np.ndarray, threshold: Threshold, max_results: int,
    second: Callable[[list[int]], np.ndarray] | None = None,
) -> list[VectorDecision]:
    """Search the organisation's gallery for each vector and decide (faces/decision.py).

    `second` gives the second model's embeddings of some of these faces (by position; the engine's
    `EngineResult.second`): with it, and a calibrated cascade, faces the first model cannot decide
    alone are decided by both models' scores, fused. Without it the first model decides alone, at
    its own threshold for the whole rate."""
    # Candidates below the threshold still help a client tuning it, so the search has no floor;
    # the second person is always fetched, for the margin test.
    per_query = max(2, max_results)
    hits = get_index().search(organization_id=organization.pk, vectors=vectors, k=per_query * FACES_PER_CANDIDATE)
    matches = matches_for_hits(organization=organization, hits=hits, per_query=per_query)
    calibration = threshold.calibration
    if calibration is not None and calibration.person_score == "template":
        matches = _template_rescored(organization=organization, vectors=vectors, matches=matches)
    offsets = calibration.offsets(vectors) if calibration is not None else np.zeros(len(vectors))
    cascade = threshold.cascade if second is not None else None
    # The cascade's first door: the first model alone, for its share of the rate.
    alone = threshold if cascade is None else dataclasses.replace(threshold, value=cascade.accept)
    decided: list[VectorDecision | None] = []
    band: list[int] = []
    for i, (candidates, offset) in enumerate(zip(matches, offsets, strict=True)):
        if cascade is not None and candidates and cascade.needs_second([candidates[0].similarity - offset])[0]:
            band.append(i)
            decided.append(None)
            continue
        outcome = decide(similarities=[c.similarity for c in candidates], threshold=alone, offset=float(offset))
        decided.append(VectorDecision(
            decision=outcome.decision,
            best=candidates[outcome.best] if outcome.decision == MATCH else None,
            candidates=candidates[:max_results],
            threshold=outcome.threshold,
        ))
    if band:
        for i, outcome in zip(band, _decide_band(organization=organization, vectors=vectors, band=band,
                                                   matches=matches, offsets=offsets, threshold=threshold,
                                                   second=second, max_results=max_results), strict=True):
            decided[i] = outcome
    return [outcome for outcome in decided if outcome is not None]


def _decide_band(
    *, organization: Organization, vectors: np.ndarray, band: list[int], matches: list[list[PersonMatch]],
    offsets: np.ndarray, threshold: Threshold, second: Callable[[list[int]], np.ndarray], max_results: int,
) -> list[VectorDecision]:
    """The cascade's middle: the second model embeds these faces, and reads its vectors of their
    candidates' faces from the database (not the vector index), to fuse both models' scores."""
    cascade = threshold.cascade
    second_vectors = second(band)
    fused_offsets = cascade.calibration.offsets(vectors[band], second_vectors)
    templates = _second_templates(organization=organization,
                                  people={match.person_id for i in band for match in matches[i]})
    out = []
    for j, i in enumerate(band):
        candidates = matches[i]
        cosines = [float(templates[c.person_id] @ second_vectors[j]) if c.person_id in templates else None
                   for c in candidates]
        outcome = decide_fused(first_similarities=[c.similarity for c in candidates], second_cosines=cosines,
                               cascade=cascade, first_offset=float(offsets[i]), fused_offset=float(fused_offsets[j]))
        best = candidates[outcome.best] if outcome.decision == MATCH else None
        if outcome.lead:  # the fused best leads the list: the answer's threshold is about it
            lead = candidates[outcome.lead]
            candidates = [lead] + [c for c in candidates if c is not lead]
        out.append(VectorDecision(decision=outcome.decision, best=best, candidates=candidates[:max_results],
                                  threshold=outcome.threshold, second_model=True))
    return out


def _second_templates(*, organization: Organization, people: set[int]) -> dict[int, np.ndarray]:
    """Each person's template in the second model's space (the normalised mean of their faces'
    stored second-model vectors). Faces without one get it now, from their crop, once."""
    from faces.vector_maintenance import second_vectors_fill

    engine = get_engine()
    model = engine.second_embedder.name if engine.second_embedder is not None else ""
    rows = list(Face.objects.filter(organization=organization, person_id__in=people).values_list(
        "id", "person_id", "second_embedding", "second_model_name"))
    missing = [face_id for face_id, _, vector, name in rows if vector is None or name != model]
    if missing and second_vectors_fill(organization=organization, face_ids=missing):
        rows = list(Face.objects.filter(organization=organization, person_id__in=people).values_list(
            "id", "person_id", "second_embedding", "second_model_name"))
    sums: dict[int, np.ndarray] = {}
    for _, person_id, vector, name in rows:
        if vector is None or name != model:
            continue
        value = vector_from_bytes(vector).astype(np.float64)
        sums[person_id] = sums[person_id] + value if person_id in sums else value
    return {person_id: total / (np.linalg.norm(total) or 1.0) for person_id, total in sums.items()}


@dataclass(frozen=True)
class VerifyDecision:
    verified: bool
    threshold: float  # the similarity this probe had to reach
    threshold_source: str


def verify_decision(
    *, organization: Organization, probe: np.ndarray, similarity: float, requested_threshold: float | None = None
) -> VerifyDecision:
    """1:1: the organisation's false-match rate applied to one comparison (a gallery of one), with
    the probe's own cohort offset, unless the request deliberately sets a threshold."""
    chosen = decision_in_force(organization=organization, requested_threshold=requested_threshold, gallery_size=1)
    offset = float(chosen.calibration.offsets(probe)[0]) if chosen.calibration is not None else 0.0
    needed = chosen.for_offset(offset)
    return VerifyDecision(verified=similarity >= needed, threshold=needed, threshold_source=chosen.source)


def link_rule(*, threshold: Threshold, vectors: np.ndarray) -> tuple[float, np.ndarray]:
    """Two faces are one person when their similarity, less half of each one's cohort offset, reaches
    the returned score: the decision's rule for a pair (grouping unknown faces). Returns that score
    and each face's offset (0 when the calibration does not normalise)."""
    calibration = threshold.calibration
    if threshold.source == SOURCE_CALIBRATED and calibration is not None and calibration.normalise:
        return float(threshold.value), calibration.offsets(vectors)
    return float(threshold.for_offset(0.0)), np.zeros(len(vectors), dtype=np.float64)


def _template_rescored(
    *, organization: Organization, vectors: np.ndarray, matches: list[list[PersonMatch]]
) -> list[list[PersonMatch]]:
    """Score each candidate person by their template (the normalised mean of their faces), re-ranked.

    On LFW, with several photos per person, the template separates people from strangers better
    than the nearest single face (docs/OPEN_SET.md); with one photo the two are the same.
    """
    people = {match.person_id for row in matches for match in row}
    if not people:
        return matches
    sums: dict[int, np.ndarray] = {}
    for person_id, embedding in Face.objects.filter(organization=organization, person_id__in=people).values_list(
        "person_id", "embedding"
    ):
        vector = vector_from_bytes(embedding).astype(np.float64)
        sums[person_id] = sums[person_id] + vector if person_id in sums else vector
    templates = {person_id: total / (np.linalg.norm(total) or 1.0) for person_id, total in sums.items()}
    rescored = []
    for vector, row in zip(vectors, matches, strict=True):
        scored = [
            PersonMatch(m.person_id, m.name, float(cosine_to_similarity(templates[m.person_id] @ vector)), m.face_id,
                        m.external_id)
            for m in row if m.person_id in templates
        ]
        rescored.append(sorted(scored, key=lambda match: match.similarity, reverse=True))
    return rescored
