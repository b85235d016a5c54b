"""`manage.py calibrate_openset [folder] [--second]`: build the current model's open-set calibration
(with `--second`: the engine combination's, first model plus second, fused; faces/decision.py).

Writes faces/calibration/<model>.json (the decision settings and the stranger-score tail the
threshold is derived from) and <model>.cohort.npy (one embedding each of COHORT_SIZE people with
a single photo). The folder is LFW View 1 training (`../shared/lfw-train`, FACEPORTAL_LFW_DIR);
its embeddings are cached in var/calibration, so a rebuild after the first is seconds.
"""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from django.core.management.base import BaseCommand, CommandError

from faces.calibration.build import (
    ACCEPT_SHARE,
    BAND_FACTOR,
    COHORT_SIZE,
    ENROL_MAX,
    SECOND_WEIGHT,
    SEED,
    calibration_scores,
    fused_calibration_scores,
    split,
    tail_curve,
    threshold_grid,
    typical_offset,
)
from faces.calibration.dataset import default_lfw_dir, embed_folder
from faces.decision import calibration_paths, fused_calibration_paths, load_calibration, load_fused_calibration

# What the LFW measurements chose (docs/OPEN_SET.md, `bench/openset.py --explore`).
DEFAULT_K = 10
DEFAULT_MARGIN = 0.0
# Thresholds move between datasets (up to 2x over target in the study behind the notes), so the
# target rate is halved.
DEFAULT_SAFETY = 1.0
DEFAULT_PERSON_SCORE = "template"


class Command(BaseCommand):
    help = "Build faces/calibration/<model>.json and .cohort.npy from an LFW-layout folder."

    def add_arguments(self, parser):
        parser.add_argument("folder", type=Path, nargs="?", default=None)
        parser.add_argument("--no-normalise", action="store_true", help="score raw similarities")
        parser.add_argument("--k", type=int, default=DEFAULT_K, help="cohort faces averaged per probe")
        parser.add_argument("--margin", type=float, default=DEFAULT_MARGIN,
                            help="least gap between the best and second person, else 'ambiguous' (0: off)")
        parser.add_argument("--safety", type=float, default=DEFAULT_SAFETY)
        parser.add_argument("--person-score", choices=["best_face", "template"], default=DEFAULT_PERSON_SCORE,
                            help="a person's score: their nearest face, or their template (mean face)")
        parser.add_argument("--second", action="store_true",
                            help="calibrate the engine combination (first model + FACEPORTAL_SECOND_MODEL, fused)")

    def handle(self, *args, folder: Path | None, no_normalise: bool, k: int, margin: float, safety: float,
               person_score: str, second: bool = False, **options):
        folder = folder or default_lfw_dir()
        if not (folder / "manifest.csv").exists():
            raise CommandError(f"{folder} has no manifest.csv (set FACEPORTAL_LFW_DIR).")
        started = time.perf_counter()

        def progress(n: int, total: int) -> None:
            if n % 200 == 0 or n == total:
                sys.stderr.write(f"embedding {n}/{total}\n")

        data = embed_folder(folder=folder, progress=progress, with_second=second)
        sp = split(data)
        if second:
            self._fused(data=data, sp=sp, folder=folder, k=k, safety=safety, started=started)
            return
        normalise = not no_normalise
        cohort, offsets, impostor = calibration_scores(
            data, sp, normalise=normalise, k=k, mode="template" if person_score == "template" else "best")
        table = {
            "model": data.model,
            "detector": data.detector,
            "similarity": "(1 + cosine) / 2",
            "built_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "built_from": {
                "folder": folder.name, "photos": len(data.paths), "faces": int(len(data.face_photo)),
                "enrolled_identities": len(sp.enrolled), "cohort_identities": len(sp.cohort),
                "held_out_strangers": len(sp.strangers), "seed": SEED, "photos_per_person": ENROL_MAX,
            },
            "decision": {"normalise": normalise, "cohort_k": k, "margin": margin, "safety": safety,
                         "person_score": person_score},
            "cohort": {"size": len(cohort), "typical_offset": round(typical_offset(data, sp, cohort, k), 6)
                       if normalise else 0.0},
            "tail": tail_curve(impostor.ravel()),
            "grid": threshold_grid(impostor),
        }
        table_path, cohort_path = calibration_paths(data.model)
        table_path.write_text(json.dumps(table, indent=1) + "\n")
        np.save(cohort_path, cohort.astype(np.float32))
        load_calibration.cache_clear()
        calibration = load_calibration(data.model)
        assert COHORT_SIZE == len(cohort) or len(cohort) < COHORT_SIZE
        for people in (1, 100, 1000, 10000, 100000):
            self.stdout.write(f"  {people:>6} people, false_match_rate 0.001: score threshold "
                              f"{calibration.threshold_for(gallery_size=people, false_match_rate=0.001):.4f}")
        self.stdout.write(f"wrote {table_path.name} and {cohort_path.name} in {time.perf_counter() - started:.1f} s")

    def _fused(self, *, data, sp, folder: Path, k: int, safety: float, started: float,
               second_weight: float = SECOND_WEIGHT) -> None:
        from faces.engine import get_engine

        combination = get_engine().combination
        scorer, impostor = fused_calibration_scores(data, sp, k=k, second_weight=second_weight)
        genuine_rows = [rows[0] for rows in (sp.photos[i] for i in sp.enrolled)]
        chosen = data.chosen[np.asarray(genuine_rows)]
        typical = float(np.median(scorer.offsets(data.embeddings[chosen], data.second[chosen])))
        table = {
            "model": combination,
            "detector": data.detector,
            "similarity": "z-scored first-model similarity + z-scored second-model cosine, per person template",
            "built_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "built_from": {
                "folder": folder.name, "photos": len(data.paths), "faces": int(len(data.face_photo)),
                "enrolled_identities": len(sp.enrolled), "cohort_identities": len(sp.cohort),
                "held_out_strangers": len(sp.strangers), "seed": SEED, "photos_per_person": ENROL_MAX,
            },
            "decision": {"normalise": True, "cohort_k": k, "margin": 0.0, "safety": safety,
                         "person_score": "template"},
            "fusion": {"first_dimension": int(scorer.cohort_first.shape[1]),
                       "mean": [round(v, 6) for v in scorer.mean], "std": [round(v, 6) for v in scorer.std],
                       "second_weight": second_weight,
                       "cascade": {"accept_share": ACCEPT_SHARE, "band_factor": BAND_FACTOR}},
            "cohort": {"size": len(scorer.cohort_first), "typical_offset": round(typical, 6)},
            "tail": tail_curve(impostor.ravel()),
            "grid": threshold_grid(impostor),
        }
        table_path, cohort_path = fused_calibration_paths(combination)
        table_path.write_text(json.dumps(table, indent=1) + "\n")
        np.save(cohort_path, np.concatenate([scorer.cohort_first, scorer.cohort_second], axis=1).astype(np.float32))
        load_fused_calibration.cache_clear()
        fused = load_fused_calibration(combination)
        for people in (1, 100, 1000, 10000):
            cascade = fused.cascade_for(gallery_size=people, false_match_rate=0.001)
            self.stdout.write(f"  {people:>6} people, false_match_rate 0.001: first alone >= {cascade.accept:.4f}, "
                              f"second model from {cascade.floor:.4f}, fused >= {cascade.fused:.3f}")
        self.stdout.write(f"z-scoring: mean {scorer.mean}, std {scorer.std}")
        self.stdout.write(f"wrote {table_path.name} and {cohort_path.name} in {time.perf_counter() - started:.1f} s")
