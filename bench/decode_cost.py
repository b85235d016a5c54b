"""What decoding crafted and ordinary images really costs: wall time and peak RSS per image, next
to the memory `faces.images.decode` reserves for it.

Each image is decoded in a fresh process (so one decode's freed memory cannot hide the next one's
peak); RSS is sampled every millisecond. Prints a table; asserts nothing.

    .venv/bin/python bench/decode_cost.py [--side 4000] [--only webp,tiff]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))


def cases(side: int) -> dict[str, bytes]:
    import numpy as np
    from PIL import Image

    from tests.image_samples import (
        encoded_array,
        gif_with_comments,
        jpeg_with_comments,
        png_with_chunks,
        png_with_split_idat,
        progressive_jpeg_repeating_last_scan,
        tiff_with_strips,
    )

    flat = np.full((side, side, 3), 128, np.uint8)
    grey16 = np.full((side, side), 30000, np.uint16)
    floats = np.full((side, side), 0.5, np.float32)
    out = {
        f"webp lossless RGB {side}²": encoded_array(flat, "RGB", "WEBP", lossless=True, method=0),
        f"webp lossless RGBA {side}²": encoded_array(np.dstack([flat, flat[:, :, 0]]), "RGBA", "WEBP",
                                                     lossless=True, method=0),
        f"webp lossy RGB {side}²": encoded_array(flat, "RGB", "WEBP", quality=50),
        f"tiff float (F) {side}²": encoded_array(floats, "F", "TIFF", compression="tiff_adobe_deflate"),
        f"tiff 16-bit grey {side}²": encoded_array(grey16, "I;16", "TIFF", compression="tiff_adobe_deflate"),
        f"tiff RGB deflate {side}²": encoded_array(flat, "RGB", "TIFF", compression="tiff_adobe_deflate"),
        f"png 16-bit grey {side}²": encoded_array(grey16, "I;16", "PNG"),
        f"png RGBA {side}²": encoded_array(np.dstack([flat, flat[:, :, 0]]), "RGBA", "PNG"),
        f"png palette {side}²": encoded_array(flat[:, :, 0], "L", "PNG"),
        f"gif {side}²": encoded_array(flat[:, :, 0], "L", "GIF"),
        f"bmp RGB {min(side, 1800)}²": encoded_array(flat[:1800, :1800], "RGB", "BMP"),
        f"jpeg baseline {side}²": encoded_array(flat, "RGB", "JPEG", quality=90),
        f"jpeg progressive {side}²": encoded_array(flat, "RGB", "JPEG", progressive=True),
        f"jpeg CMYK {side}²": encoded_array(np.dstack([flat, flat[:, :, 0]]), "CMYK", "JPEG"),
        "jpeg 2048² last scan x1000": progressive_jpeg_repeating_last_scan((2048, 2048), 1000),
        "jpeg 4096² last scan x2000": progressive_jpeg_repeating_last_scan((4096, 4096), 2000),
        "jpeg 100,000 COM segments": jpeg_with_comments(100_000),
        "gif 400,000 comment blocks": gif_with_comments(400_000),
        "png 100,000 tEXt chunks": png_with_chunks(100_000),
        "png 500,000 empty IDAT chunks": png_with_split_idat(500_000),
        "tiff 1,000,000 strips": tiff_with_strips(1_000_000, width=8),
        "tiff 16,000 strips": tiff_with_strips(16_000, width=2000),
    }
    del Image
    return out


def measure_one(path: str) -> dict:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
    import django

    django.setup()
    import psutil
    from PIL import Image

    from faces import images

    data = Path(path).read_bytes()
    # Load the decoder libraries first: their code pages are not the image's cost.
    images.decode(_tiny(), index=0)
    process = psutil.Process()
    before = process.memory_info().rss
    peak, stop = [before], threading.Event()

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            time.sleep(0.001)

    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    reserved = [0]
    original = images.decode_budget.reserve

    def spy(nbytes, **kwargs):
        reserved[0] = max(reserved[0], nbytes)
        return original(nbytes, **kwargs)

    images.decode_budget.reserve = spy
    started = time.perf_counter()
    try:
        images.decode(data, index=0)
        outcome = "decoded"
    except Exception as exc:  # noqa: BLE001 - the outcome is what is printed
        outcome = f"{getattr(exc, 'status_code', '?')} {getattr(exc, 'code', type(exc).__name__)}"
    seconds = time.perf_counter() - started
    stop.set()
    watcher.join()
    del Image
    return {"seconds": seconds, "peak_mb": (peak[0] - before) / 2**20, "reserved_mb": reserved[0] / 2**20,
            "outcome": outcome}


def _tiny() -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("RGB", (8, 8)).save(buffer, "PNG")
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--side", type=int, default=4000)
    parser.add_argument("--only", default="", help="comma-separated words; a case runs if its name has one")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds one decode may take")
    parser.add_argument("--measure", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure_one(args.measure)))
        return
    words = [word for word in args.only.split(",") if word]
    print("| image | bytes | decode time | peak RSS increase | reserved from the budget | outcome |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as folder:
        for name, data in cases(args.side).items():
            if words and not any(word in name for word in words):
                continue
            path = Path(folder) / "image"
            path.write_bytes(data)
            try:
                result = subprocess.run([sys.executable, __file__, "--measure", str(path)], capture_output=True,
                                        text=True, timeout=args.timeout, cwd=REPO_ROOT, check=False)
                row = json.loads(result.stdout.strip().splitlines()[-1])
                cells = (f"{row['seconds']:.3f} s", f"{row['peak_mb']:.0f} MB", f"{row['reserved_mb']:.0f} MB",
                         row["outcome"])
            except subprocess.TimeoutExpired:
                cells = (f"> {args.timeout:.0f} s", "?", "?", "killed")
            except (IndexError, json.JSONDecodeError):
                cells = ("?", "?", "?", result.stderr.strip().splitlines()[-1][:80] if result.stderr else "crashed")
            print(f"| {name} | {len(data):,} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    main()
