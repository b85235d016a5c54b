"""A server's memory around one oversized request body, as an anonymous client sends it.

Streams --mb megabytes of POST body to --path (Content-Length declared, or chunked with
--chunked) on a loopback server, reads the answer, and prints the server's RSS (from
/proc/<pid>/status) before, at peak while sending, and --settle seconds after the answer.

    .venv/bin/python bench/big_body.py --url http://127.0.0.1:8000 --server-pid <daphne pid> --mb 1024
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlsplit

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.load import require_loopback, rss_mb  # noqa: E402

CHUNK = 64 * 1024


def send_body(host: str, port: int, path: str, *, size: int, chunked: bool, timeout: float) -> tuple[str, float]:
    """(the status line, or what went wrong; seconds) for one streamed body of `size` bytes."""
    started = time.perf_counter()
    sock = socket.create_connection((host, port), timeout=timeout)
    framing = "Transfer-Encoding: chunked" if chunked else f"Content-Length: {size}"
    sock.sendall(f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{framing}\r\n\r\n"
                 .encode())
    block = b"a" * CHUNK
    sent = 0
    try:
        while sent < size:
            piece = block[: min(CHUNK, size - sent)]
            sock.sendall(b"%x\r\n%s\r\n" % (len(piece), piece) if chunked else piece)
            sent += len(piece)
        if chunked:
            sock.sendall(b"0\r\n\r\n")
    except OSError:
        pass  # the server stopped reading: its answer (if any) is already on the way
    try:
        answer = sock.recv(4096).split(b"\r\n", 1)[0].decode(errors="replace") or "closed without an answer"
    except OSError as exc:
        answer = f"{exc.__class__.__name__}: {exc}"
    sock.close()
    return f"{answer} after {sent / 2**20:.0f} MB sent", time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--path", default="/healthz")
    parser.add_argument("--server-pid", type=int, required=True)
    parser.add_argument("--mb", type=float, default=1024.0)
    parser.add_argument("--chunked", action="store_true")
    parser.add_argument("--settle", type=float, default=10.0, help="seconds to wait before the final RSS")
    args = parser.parse_args()
    parts = urlsplit(args.url)
    require_loopback(parts.hostname or "", parts.port or 80)

    before = rss_mb(args.server_pid)
    peak = [before or 0.0]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            if (value := rss_mb(args.server_pid)) is not None:
                peak[0] = max(peak[0], value)
            time.sleep(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    answer, seconds = send_body(parts.hostname, parts.port or 80, args.path, size=int(args.mb * 2**20),
                                chunked=args.chunked, timeout=600)
    time.sleep(args.settle)
    done.set()
    sampler.join()
    after = rss_mb(args.server_pid)
    print(json.dumps({"path": args.path, "body_mb": args.mb, "chunked": args.chunked, "answer": answer,
                      "seconds": round(seconds, 2), "rss_before_mb": round(before or 0, 1),
                      "rss_peak_mb": round(peak[0], 1), "rss_after_mb": round(after or 0, 1),
                      "rss_growth_mb": round((after or 0) - (before or 0), 1)}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
