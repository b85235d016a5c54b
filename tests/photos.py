"""The photo set (/work/shared/faces layout: manifest.csv, _noface/, _group/), for tests and benchmarks.

One loader and one list of strangers, so the tests and `bench/` measure the same probes.
"""

from __future__ import annotations

import base64
import csv
import os
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
FACES_DIR = Path(os.environ.get("FACEPORTAL_FACES_DIR") or REPO_ROOT.parent / "shared" / "faces")

# Identities never enrolled: their photos must match nobody.
STRANGERS = ("Lin_Manuel_Miranda", "Azure_Family3_Lady", "Azure_Family3_Man")


@dataclass(frozen=True)
class Photo:
    path: Path
    identity: str

    def b64(self) -> str:
        return base64.b64encode(self.path.read_bytes()).decode()

    def data_uri(self) -> str:
        return "data:image/jpeg;base64," + self.b64()


def load_manifest(root: Path = FACES_DIR) -> dict[str, list[Photo]]:
    """identity -> photos in manifest order (includes `_noface` and `_group`)."""
    by_identity: dict[str, list[Photo]] = {}
    with open(root / "manifest.csv", newline="") as handle:
        for row in csv.DictReader(handle):
            by_identity.setdefault(row["identity"], []).append(Photo(root / row["path"], row["identity"]))
    return by_identity
