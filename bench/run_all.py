"""`make bench`: every benchmark table in one run, printed, and saved to var/bench/latest.md.

Database: BENCH_DATABASE_URL if set (an existing, migratable database), else a throw-away SQLite
file. Photos: FACEPORTAL_FACES_DIR (default ../shared/faces). BENCH_SCALE_SIZES (comma-separated)
overrides the gallery-scale sizes; BENCH_DETECTORS the detectors.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import REPO_ROOT, faces_dir, log, table  # noqa: E402


def machine() -> str:
    import psutil

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (f"{cpu}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM, "
            f"Python {platform.python_version()}, {platform.system()} {platform.release()}")


def enrol_table(env: dict[str, str]) -> str:
    rows = []
    for attempt in ("first run", "second run (resume: all skipped)"):
        log(f"enrol: {attempt}")
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "manage.py", "enroll", str(faces_dir()), "--org", "bench-enrol", "--create-org",
             "--no-progress"],
            env=env, capture_output=True, text=True, cwd=REPO_ROOT,
        )
        wall = time.perf_counter() - started
        summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-300:]
        found = re.search(r"(\d+) enrolled, (\d+) skipped, (\d+) without a face, (\d+) invalid in ([\d.]+) s", summary)
        if not found:
            rows.append([attempt, summary, "", "", float("nan"), float("nan"), wall])
            continue
        enrolled, skipped, no_face, _, seconds = found.groups()
        seconds = float(seconds)
        rows.append([attempt, int(enrolled), int(skipped), int(no_face), seconds,
                     int(enrolled) / seconds if seconds else float("nan"), wall])
    return table("Enrolment throughput: `manage.py enroll ../shared/faces --org bench-enrol`",
                 ["run", "enrolled", "skipped", "no face", "seconds", "faces/s", "wall s (incl. start-up)"], rows,
                 note="Folder per person, `_` folders skipped, 8 images of a person per registration call, "
                      "embedded on both engine threads.")


def main() -> None:
    started = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="faceportal-bench-"))
    env = dict(os.environ)
    env["DATABASE_URL"] = os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{scratch / 'bench.sqlite3'}"
    env.setdefault("DEEPFACE_HOME", str(REPO_ROOT / "var" / "deepface"))
    env["FACEPORTAL_VAR_DIR"] = str(scratch)  # saved index graphs of the bench stay out of var/
    env["FACEPORTAL_FACES_DIR"] = str(faces_dir())
    env.setdefault("FACEPORTAL_WARM_ENGINE", "0")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.update(env)

    from bench.common import setup_django

    setup_django()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from django.conf import settings

    from bench import accuracy, compare, embed, engine, latency, scale, startup
    from bench.embeddings import save_cache

    sections = [f"Machine: {machine()}. Database: {env['DATABASE_URL'].split('@')[-1].split('?')[0]}. "
                f"Engine: {settings.DEEPFACE_DETECTOR_BACKEND} detector, {settings.DEEPFACE_EMBEDDER_MODEL} on "
                f"{settings.FACEPORTAL_DLIB_RUNTIME}, {settings.FACEPORTAL_ENGINE_WORKERS} engine threads."]
    print(sections[0] + "\n", flush=True)
    sections.append(embed.run())
    sections.append(engine.run())
    detectors = tuple(filter(None, os.environ.get("BENCH_DETECTORS", "").split(","))) or accuracy.DETECTORS
    text, embeddings = accuracy.run(detectors)
    sections.append(text)
    if "dlib" in embeddings:
        save_cache(embeddings["dlib"]["paths"], embeddings["dlib"]["vectors"])
    usable = [name for name in detectors if name in embeddings]
    sections.append(latency.run(usable))
    sections.append(compare.run())
    from bench.embeddings import dev_embeddings

    sizes = tuple(int(s) for s in os.environ.get("BENCH_SCALE_SIZES", "").split(",") if s) or scale.DEFAULT_SIZES
    sections.append(scale.run(dev_embeddings(), sizes))
    sections.append(enrol_table(env))
    sections.append(startup.run(env))
    minutes = (time.perf_counter() - started) / 60
    sections.append(f"Whole run: {minutes:.1f} minutes.")
    print(sections[-1])
    out = REPO_ROOT / "var" / "bench" / "latest.md"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(sections) + "\n")
    print(f"\nSaved to {out.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
