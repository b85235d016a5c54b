"""`make bench`: every benchmark table in one run, printed, and saved to var/bench/latest.md.

Database: BENCH_DATABASE_URL if set (an existing, migratable database), else a throw-away SQLite
file. Photos: FACEPORTAL_FACES_DIR (default ../shared/faces). BENCH_SCALE_SIZES (comma-separated)
overrides the gallery-scale sizes; BENCH_DETECTORS the detectors; BENCH_ONLY (comma-separated, of
embed, engine, accuracy, latency, compare, openset, scale, enrol, startup) runs only those parts.
"""

from __future__ import annotations

import os
import platform
import re
import resource
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
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        done = subprocess.run(
            [sys.executable, "manage.py", "enroll", str(faces_dir()), "--org", "bench-enrol", "--create-org",
             "--no-progress"],
            env=env, capture_output=True, text=True, cwd=REPO_ROOT,
        )
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - children.ru_utime) + (after.ru_stime - children.ru_stime)
        summary = done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-300:]
        found = re.search(r"(\d+) enrolled, (\d+) skipped, (\d+) without a face, (\d+) invalid in ([\d.]+) s", summary)
        if not found:
            rows.append([attempt, summary, "", "", float("nan"), float("nan"), wall, cpu, float("nan")])
            continue
        enrolled, skipped, no_face, _, seconds = found.groups()
        seconds = float(seconds)
        per_face = cpu * 1000 / int(enrolled) if int(enrolled) else float("nan")
        rows.append([attempt, int(enrolled), int(skipped), int(no_face), seconds,
                     int(enrolled) / seconds if seconds else float("nan"), wall, cpu, per_face])
    return table("Enrolment throughput: `manage.py enroll ../shared/faces --org bench-enrol`",
                 ["run", "enrolled", "skipped", "no face", "seconds", "faces/s", "wall s (incl. start-up)",
                  "CPU s (incl. start-up)", "CPU ms/face"], rows,
                 note="Folder per person, `_` folders skipped, 8 images of a person per registration call, "
                      "embedded on both engine threads. CPU: user + system seconds of the whole command (start-up "
                      "included), which other work on a shared machine does not inflate as it does wall time.")


PARTS = ("embed", "engine", "accuracy", "latency", "compare", "openset", "scale", "enrol", "startup")


def main() -> None:
    started = time.perf_counter()
    scratch = Path(tempfile.mkdtemp(prefix="faceportal-bench-"))
    env = dict(os.environ)
    env["DATABASE_URL"] = os.environ.get("BENCH_DATABASE_URL") or f"sqlite:///{scratch / 'bench.sqlite3'}"
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

    from bench import accuracy, compare, embed, engine, latency, openset, scale, startup
    from bench.embeddings import save_cache

    sections = [f"Machine: {machine()}. Database: {env['DATABASE_URL'].split('@')[-1].split('?')[0]}. "
                f"Engine: {settings.DEEPFACE_DETECTOR_BACKEND} detector, {settings.DEEPFACE_EMBEDDER_MODEL} on "
                f"{settings.FACEPORTAL_DLIB_RUNTIME}, {settings.FACEPORTAL_ENGINE_WORKERS} engine threads."]
    print(sections[0] + "\n", flush=True)
    # BENCH_ONLY=embed,engine,enrol,startup runs only those parts (names as in PARTS).
    only = set(filter(None, os.environ.get("BENCH_ONLY", "").split(","))) or set(PARTS)
    if "embed" in only:
        sections.append(embed.run())
    if "engine" in only:
        sections.append(engine.run())
    detectors = tuple(filter(None, os.environ.get("BENCH_DETECTORS", "").split(","))) or accuracy.DETECTORS
    if "accuracy" in only:
        text, embeddings = accuracy.run(detectors)
        sections.append(text)
        # The gallery-scale vectors come from the default detector's embeddings when it ran.
        cached = next((name for name in (settings.DEEPFACE_DETECTOR_BACKEND, "dlib") if name in embeddings), None)
        if cached:
            save_cache(embeddings[cached]["paths"], embeddings[cached]["vectors"])
        usable = [name for name in detectors if name in embeddings]
    else:
        usable = [settings.DEEPFACE_DETECTOR_BACKEND]
    if "latency" in only:
        sections.append(latency.run(usable))
    if "compare" in only:
        sections.append(compare.run())
    if "openset" in only:  # LFW View 1 training; embedded once (cached in var/calibration)
        sections.append(openset.run())
    if "scale" in only:
        from bench.embeddings import dev_embeddings

        sizes = tuple(int(s) for s in os.environ.get("BENCH_SCALE_SIZES", "").split(",") if s) or scale.DEFAULT_SIZES
        sections.append(scale.run(dev_embeddings(), sizes))
    if "enrol" in only:
        sections.append(enrol_table(env))
    if "startup" in only:
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
