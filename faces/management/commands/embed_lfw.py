"""`manage.py embed_lfw [folder]`: embed the calibration folder once into var/ (resumable)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from django.core.management.base import BaseCommand

from faces.calibration.dataset import default_lfw_dir, embed_folder


class Command(BaseCommand):
    help = "Embed every photo of an LFW-layout folder with the current engine (cached under var/calibration)."

    def add_arguments(self, parser):
        parser.add_argument("folder", type=Path, nargs="?", default=None)
        parser.add_argument("--limit", type=int, default=None)

    def handle(self, *args, folder: Path | None, limit: int | None, **options):
        folder = folder or default_lfw_dir()
        started = time.perf_counter()

        def progress(n: int, total: int) -> None:
            if n % 100 == 0 or n == total:
                rate = n / max(1e-9, time.perf_counter() - started)
                sys.stderr.write(f"{n}/{total} photos, {rate:.1f}/s\n")

        data = embed_folder(folder=folder, progress=progress, limit=limit)
        self.stdout.write(f"{len(data.paths)} photos, {len(data.face_photo)} faces, model {data.model}")
