"""`manage.py calibrate_openset [folder]`: build the current model's open-set calibration.

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
    COHORT_SIZE,
    ENROL_MAX,
    SEED,
    calibration_scores,
    split,
    tail_curve,
    threshold_grid,
    typical_offset,
)
from faces.calibration.dataset import default_lfw_dir, embed_folder
from faces.decision import calibration_paths, load_calibration

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

    def handle(self, *args, folder: Path | None, no_normalise: bool, k: int, margin: float, safety: float,
               person_score: str, **options):
        folder = folder or default_lfw_dir()
        if not (folder / "manifest.csv").exists():
            raise CommandError(f"{folder} has no manifest.csv (set FACEPORTAL_LFW_DIR).")
        started = time.perf_counter()

        def progress(n: int, total: int) -> None:
            if n % 200 == 0 or n == total:
                sys.stderr.write(f"embedding {n}/{total}\n")

        data = embed_folder(folder=folder, progress=progress)
        sp = split(data)
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
