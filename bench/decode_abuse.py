"""Another tenant's recognition latency while one client sends images that are costly to decode.

In one process, as a server runs it: the victim decodes a real photo and runs the engine on it
(what POST /recognize and a WebSocket frame do before the search), one request after another; the
attacker keeps `--attackers` crafted images in flight (as many as the engine has threads). Prints
the victim's p50 / max, clean and under each attack, and what each attack image got. Asserts nothing.

    FACEPORTAL_FACES_DIR=../shared/faces .venv/bin/python bench/decode_abuse.py [--requests 10]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import manifest, setup_django  # noqa: E402


def attacks() -> dict[str, bytes]:
    from tests.image_samples import gif_with_comments, png_with_split_idat, progressive_jpeg_repeating_last_scan

    return {
        "progressive JPEG, last scan x1000 (2048², 41 KB)": progressive_jpeg_repeating_last_scan((2048, 2048), 1000),
        "GIF of 400,000 comment blocks (2 MB)": gif_with_comments(400_000),
        "PNG of 500,000 empty IDAT chunks (6 MB)": png_with_split_idat(500_000),
        # Within every limit, but slow: what a client may still send.
        "progressive JPEG 4096², 30 scans (allowed)": progressive_jpeg_repeating_last_scan((4096, 4096), 20),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--requests", type=int, default=10, help="victim requests per phase")
    parser.add_argument("--attackers", type=int, default=2)
    parser.add_argument("--only", default="", help="comma-separated words; an attack runs if its name has one")
    args = parser.parse_args()
    setup_django()
    from faces import images
    from faces.engine import get_engine, run_in_engine_pool

    photo = next(p for name, photos in manifest().items() if not name.startswith("_") for p in photos)
    data = photo.path.read_bytes()
    from django.conf import settings

    engine = get_engine()
    workers = settings.FACEPORTAL_ENGINE_WORKERS
    barrier = threading.Barrier(workers)

    def warm_one() -> None:  # each engine thread holds its own models: load them on every one
        engine.warm()
        barrier.wait(timeout=300)

    for future in [run_in_engine_pool(warm_one) for _ in range(workers)]:
        future.result()

    def as_tenant(name: str):
        # The release before per-tenant decode slots has no `decoding_for`: measured as it was.
        return images.decoding_for(name) if hasattr(images, "decoding_for") else contextlib.nullcontext()

    def victim_once() -> float:
        started = time.perf_counter()
        with as_tenant("victim"):
            pixels = images.decode(data, index=0).pixels
        engine.faces_in(pixels)
        return time.perf_counter() - started

    def phase(bomb: bytes | None) -> tuple[list[float], list[str], list[float]]:
        stop, outcomes, bomb_seconds = threading.Event(), [], []

        def attack() -> None:
            with as_tenant("attacker"):
                attack_until_stopped()

        def attack_until_stopped() -> None:
            while not stop.is_set():
                started = time.perf_counter()
                try:
                    images.decode(bomb, index=0)
                    outcomes.append("decoded")
                except Exception as exc:  # noqa: BLE001 - reported
                    outcomes.append(f"{getattr(exc, 'status_code', '?')} {getattr(exc, 'code', type(exc).__name__)}")
                bomb_seconds.append(time.perf_counter() - started)
                time.sleep(0.001)

        threads = [threading.Thread(target=attack) for _ in range(args.attackers if bomb else 0)]
        for thread in threads:
            thread.start()
        time.sleep(0.2)
        latencies = [victim_once() for _ in range(args.requests)]
        stop.set()
        for thread in threads:
            thread.join()
        return latencies, outcomes, bomb_seconds

    for _ in range(2 * workers):
        victim_once()
    print("| phase | victim p50 | victim max | attack images | each attack image |")
    print("|---|---|---|---|---|")
    words = [word for word in args.only.split(",") if word]
    chosen = [(name, bomb) for name, bomb in attacks().items() if not words or any(word in name for word in words)]
    for name, bomb in [("clean", None), *chosen, ("clean again", None)]:
        latencies, outcomes, bomb_seconds = phase(bomb)
        latencies.sort()
        kinds = ", ".join(sorted(set(outcomes))) or "-"
        each = f"{max(bomb_seconds):.3f} s at most" if bomb_seconds else "-"
        print(f"| {name} | {1000 * latencies[len(latencies) // 2]:.0f} ms | {1000 * latencies[-1]:.0f} ms | "
              f"{len(outcomes)} ({kinds}) | {each} |", flush=True)


if __name__ == "__main__":
    main()
