"""Templates that improve with use: measured before it is built (issue 19, lever 3).

The idea: a face the service names with a very wide margin is added to that person's faces, so a
person enrolled from one photo gains views as they come back. The risk: a stranger close to
someone is added once, pulls that person's template towards them, and is named ever more easily
on each later visit (creep); and a fresh stranger meets a gallery whose templates have drifted.

Protocol, on LFW View 1 training (`../shared/lfw-train`) with the split of faces/calibration/build.py
(the 1,000 cohort identities are never used; strangers are held out from the calibration):
- the gallery is 1,000 identities with 2+ photos (the seeded subset of bench/openset.py), each
  enrolled with its first photo;
- each identity's last photo is a held-out test probe, never a visit; the photos in between (at
  most MAX_VISITS) are its visits, one per round;
- half the held-out strangers are "returning": every one of them visits once in each of
  STRANGER_ROUNDS rounds, the same photo every time (a stranger trying again); the other half are
  "fresh", scored once at the end;
- each round's visits (people and returning strangers) come in a seeded random order, and every
  visit is decided as the service decides (faces.decision: the organisation's false_match_rate
  turned into a threshold for the gallery size by the shipped calibration, template scores minus
  the probe's cohort offset), against the gallery as it has grown so far.

Growth rules tried: a match is added to the person named when its score also reaches the threshold
of a false-match rate `strictness` times lower, and no second person reaches the naming threshold
(two enrolled people close: never added), up to `cap` added faces per person; "anchored" measures
the wide margin against the person's enrolled faces only. The verdict is in docs/OPEN_SET.md.

Run: `FACEPORTAL_CALIBRATION_CACHE=/work/cache/burst-calibration .venv/bin/python bench/template_growth.py`
(the embeddings of the folder are cached there by the first run; bench/openset.py shares them).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import log, setup_django, table  # noqa: E402

PEOPLE = 1000
MAX_VISITS = 8  # a person with more photos than this still visits at most this often
STRANGER_ROUNDS = 20  # returning strangers keep coming after the people's visits are over
SEED = 19


@dataclass(frozen=True)
class Rule:
    label: str
    strictness: float | None  # growth rate = false_match_rate * strictness; None: no growth
    cap: int = 3
    anchored: bool = False  # the wide margin is measured against the enrolled faces only


RULES = (
    Rule("no growth (today)", None),
    Rule("grow at 1/100 of the rate, cap 3", 0.01, 3),
    Rule("grow at 1/10 of the rate, cap 3", 0.1, 3),
    Rule("grow at the naming threshold, cap 3", 1.0, 3),
    Rule("grow at 1/100 of the rate, cap 10", 0.01, 10),
    Rule("grow at 1/3 of the rate, cap 3", 0.3, 3),
    Rule("grow at 1/10 of the rate, cap 3, anchored", 0.1, 3, anchored=True),
    Rule("grow at the naming threshold, cap 3, anchored", 1.0, 3, anchored=True),
)
RATES = (0.001, 0.01)


@dataclass
class Outcome:
    visits_named_right: int = 0
    visits: int = 0
    last_round_right: int = 0
    last_round: int = 0
    added_right: int = 0
    added_wrong_person: int = 0
    added_strangers: int = 0
    returning_named_first: int = 0  # returning strangers named on their first visit
    returning_named_ever: int = 0
    returning_named_last: int = 0
    returning_named_visits: int = 0
    returning_visits: int = 0
    test_right: float = 0.0
    test_wrong: float = 0.0
    fresh_named: float = 0.0
    per_round: list[float] = field(default_factory=list)


class Gallery:
    """Person templates (the normalised mean of their faces), as faces.matching scores them."""

    def __init__(self, enrolled: np.ndarray):
        self.sums = enrolled.astype(np.float64).copy()
        self.templates = self.sums / np.linalg.norm(self.sums, axis=1, keepdims=True)
        self.added = np.zeros(len(enrolled), dtype=int)
        self.enrolled_templates = self.templates.copy()  # never moved by an added face

    def add(self, person: int, vector: np.ndarray) -> None:
        self.sums[person] += vector
        self.templates[person] = self.sums[person] / np.linalg.norm(self.sums[person])
        self.added[person] += 1

    def top_two(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        from faces.calibration.build import top_two
        from faces.index.base import cosine_to_similarity

        return top_two(cosine_to_similarity(np.atleast_2d(vectors) @ self.templates.T))

    def enrolled_score(self, person: int, vector: np.ndarray) -> float:
        from faces.index.base import cosine_to_similarity

        return float(cosine_to_similarity(self.enrolled_templates[person] @ vector))


def simulate(*, calibration, model: str, enrolled: np.ndarray, visits: list[list[np.ndarray]],
             returning: np.ndarray, fresh: np.ndarray, tests: np.ndarray, rate: float, rule: Rule) -> Outcome:
    from faces.decision import MATCH, decide, effective_threshold

    people = len(enrolled)
    threshold = effective_threshold(model=model, requested=None, false_match_rate=rate, gallery_size=people,
                                    model_default=0.0)
    growth = None
    if rule.strictness is not None:
        growth = effective_threshold(model=model, requested=None, false_match_rate=rate * rule.strictness,
                                     gallery_size=people, model_default=0.0)
    gallery = Gallery(enrolled)
    out = Outcome()
    rng = np.random.default_rng(SEED)
    rounds = max(STRANGER_ROUNDS, max(len(v) for v in visits))
    stranger_offsets = calibration.offsets(returning)
    named_ever = np.zeros(len(returning), dtype=bool)
    for round_ in range(rounds):
        # (kind, who, vector): people who still have a visit this round, and every returning stranger.
        queue = [(0, person, visits[person][round_]) for person in range(people) if round_ < len(visits[person])]
        queue += [(1, s, returning[s]) for s in range(len(returning))]
        right = 0
        genuine = 0
        for n in rng.permutation(len(queue)):
            kind, who, vector = queue[n]
            best, first, second = gallery.top_two(vector)
            offset = float(stranger_offsets[who]) if kind else float(calibration.offsets(vector)[0])
            decided = decide(similarities=[float(first[0]), float(second[0])], threshold=threshold, offset=offset)
            named = decided.decision == MATCH
            person = int(best[0])
            if kind == 0:
                genuine += 1
                right += int(named and person == who)
            else:
                out.returning_visits += 1
                out.returning_named_visits += int(named)
                if named and round_ == 0:
                    out.returning_named_first += 1
                if named and round_ == rounds - 1:
                    out.returning_named_last += 1
                named_ever[who] |= named
            if not named or growth is None or gallery.added[person] >= rule.cap:
                continue
            # A very wide margin: the score also clears a much rarer false-match rate, and no second
            # person is nameable (the threshold the second candidate would need is not reached).
            wide = gallery.enrolled_score(person, vector) if rule.anchored else float(first[0])
            if decide(similarities=[wide], threshold=growth, offset=offset).decision != MATCH:
                continue
            if decide(similarities=[float(second[0])], threshold=threshold, offset=offset).decision == MATCH:
                continue
            gallery.add(person, vector)
            if kind == 1:
                out.added_strangers += 1
            elif person == who:
                out.added_right += 1
            else:
                out.added_wrong_person += 1
        out.visits += genuine
        out.visits_named_right += right
        out.per_round.append(right / genuine if genuine else float("nan"))
        if genuine:  # the last round any person came back in
            out.last_round, out.last_round_right = genuine, right
    out.returning_named_ever = int(named_ever.sum())

    def named(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        best, first, second = gallery.top_two(vectors)
        offsets = calibration.offsets(vectors)
        matched = np.array([decide(similarities=[float(a), float(b)], threshold=threshold, offset=float(o)).decision
                            == MATCH for a, b, o in zip(first, second, offsets, strict=True)])
        return matched, best

    matched, best = named(tests)
    out.test_right = float((matched & (best == np.arange(people))).mean())
    out.test_wrong = float((matched & (best != np.arange(people))).mean())
    out.fresh_named = float(named(fresh)[0].mean())
    return out


def run() -> str:
    from faces.calibration.build import split, vectors
    from faces.calibration.dataset import default_lfw_dir, embed_folder
    from faces.decision import load_calibration

    folder = default_lfw_dir()
    if not (folder / "manifest.csv").exists():
        return f"Template growth skipped: no LFW folder at {folder} (set FACEPORTAL_LFW_DIR)."
    log(f"template growth: embedding {folder} (cached after the first run)")
    data = embed_folder(folder=folder)
    calibration = load_calibration(data.model)
    if calibration is None:
        return f"Template growth skipped: no calibration for {data.model}."
    if calibration.person_score != "template":
        return "Template growth skipped: this bench scores people by template, as the shipped dlib calibration does."
    sp = split(data)
    picks = np.random.default_rng(7).permutation(len(sp.enrolled))[:PEOPLE]
    identities = [sp.enrolled[i] for i in sorted(picks)]
    enrolled = vectors(data, [sp.photos[i][0] for i in identities])
    tests = vectors(data, [sp.photos[i][-1] for i in identities])
    visits = [[vectors(data, [row])[0] for row in sp.photos[i][1:-1][:MAX_VISITS]] for i in identities]
    strangers = vectors(data, [sp.photos[i][0] for i in sp.strangers])
    order = np.random.default_rng(SEED).permutation(len(strangers))
    returning, fresh = strangers[order[: len(order) // 2]], strangers[order[len(order) // 2:]]
    with_visits = sum(1 for v in visits if v)
    log(f"{len(identities)} people ({with_visits} with visits, {sum(map(len, visits))} visits), "
        f"{len(returning)} returning strangers x {STRANGER_ROUNDS} rounds, {len(fresh)} fresh strangers")

    sections = []
    for rate in RATES:
        rows = []
        for rule in RULES:
            o = simulate(calibration=calibration, model=data.model, enrolled=enrolled, visits=visits,
                         returning=returning, fresh=fresh, tests=tests, rate=rate, rule=rule)
            rows.append([
                rule.label,
                f"{o.visits_named_right / o.visits:.3f}",
                f"{o.last_round_right / max(1, o.last_round):.3f}",
                f"{o.test_right:.3f}",
                f"{o.test_wrong:.2%}",
                f"{o.added_right} / {o.added_wrong_person} / {o.added_strangers}",
                f"{o.returning_named_first / len(returning):.2%} -> {o.returning_named_last / len(returning):.2%}",
                f"{o.returning_named_ever / len(returning):.2%} ({o.returning_named_ever})",
                f"{o.fresh_named:.2%}",
            ])
        sections.append(table(
            f"Template growth at false_match_rate {rate:g} ({'default' if rate == 0.001 else 'organisation setting'})",
            ["rule", "visits named right", "last round", "held-out rank-1", "held-out named wrongly",
             "added: right / wrong person / stranger", "returning strangers named: round 1 -> last",
             "returning strangers ever named", "fresh strangers named"], rows,
            note=f"{len(identities)} people enrolled with one photo each ({with_visits} come back, "
            f"{sum(map(len, visits))} visits in up to {max(map(len, visits))} rounds); {len(returning)} held-out "
            f"strangers visit in each of {STRANGER_ROUNDS} rounds with the same photo; {len(fresh)} other "
            "held-out strangers are scored once against the grown gallery. Held-out rank-1: each person's "
            "last photo, never a visit, named right after all rounds. Anchored: the wide margin is measured "
            "against the person's enrolled faces only, so an added face never helps add the next."))
    return "\n".join(sections)


if __name__ == "__main__":
    setup_django()
    run()
