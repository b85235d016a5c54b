"""WebSocket benchmark: sustained frames per second and end-to-end frame latency for webcam clients.

Against a running server on this machine (loopback only), 1 and 4 concurrent clients each send a
real photo as JPEG frames at a webcam's pace for a fixed time, once with the server's stale-frame
dropping on (the default) and once with it off (`drop_stale=0`). Latency is client-measured: frame
sent to its answer received. Prints a Markdown table; asserts nothing.

    FACEPORTAL_API_KEY=fp_... .venv/bin/python bench/ws.py --url http://127.0.0.1:8000 \
        --organization acme --user alice --api-key-name laptop

The key may also be given with --key (but then it shows in the process list).
"""

from __future__ import annotations

import argparse
import asyncio
import ipaddress
import json
import os
import socket
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import cv2
import websockets

from bench.common import percentile  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parent.parent
MAX_SECONDS = 60
MAX_FPS = 30
MAX_CLIENTS = 8
DRAIN_SECONDS = 20  # after sending stops, wait at most this long for queued answers


@dataclass
class ClientRun:
    sent: int = 0
    answered_in_window: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    dropped_stale: int = 0
    rejected: int = 0
    unanswered: int = 0
    error: str | None = None


def loopback_only(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https", "ws", "wss") or not parts.hostname:
        sys.exit(f"--url must look like http://127.0.0.1:8000, not {url!r}")
    port = parts.port or (443 if parts.scheme in ("https", "wss") else 80)
    addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)}
    if not addresses or not all(ipaddress.ip_address(address).is_loopback for address in addresses):
        sys.exit(f"bench/ws.py only runs against this machine (loopback); {parts.hostname} is not.")
    return parts.hostname, port


def camera_jpeg(photo: Path, size: tuple[int, int] = (640, 480)) -> bytes:
    """The photo cropped to 4:3 and scaled like a webcam frame, as the page would send it."""
    image = cv2.imread(str(photo))
    if image is None:
        sys.exit(f"Cannot read {photo}")
    height, width = image.shape[:2]
    ratio = size[0] / size[1]
    if width / height > ratio:
        cut = int(height * ratio)
        image = image[:, (width - cut) // 2:(width - cut) // 2 + cut]
    else:
        cut = int(width / ratio)
        image = image[(height - cut) // 2:(height - cut) // 2 + cut]
    image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 80])
    assert ok
    return encoded.tobytes()


async def run_client(*, url: str, origin: str, frame: bytes, fps: float, seconds: float) -> ClientRun:
    run = ClientRun()
    sent_at: dict[int, float] = {}
    try:
        async with websockets.connect(url, origin=origin, max_size=2**22, open_timeout=15,
                                      ping_interval=None) as socket_:
            ready = json.loads(await asyncio.wait_for(socket_.recv(), timeout=15))
            if ready.get("type") != "ready":
                run.error = f"unexpected first message: {ready}"
                return run
            started = time.perf_counter()
            window_end = started + seconds
            sending_done = asyncio.Event()

            async def sender() -> None:
                next_at = started
                while time.perf_counter() < window_end:
                    run.sent += 1
                    sent_at[run.sent] = time.perf_counter()
                    await socket_.send(frame)
                    next_at += 1 / fps
                    await asyncio.sleep(max(0.0, next_at - time.perf_counter()))
                sending_done.set()

            async def receiver() -> None:
                accounted = 0
                while not (sending_done.is_set() and accounted >= run.sent):
                    deadline = (window_end + DRAIN_SECONDS) - time.perf_counter()
                    if deadline <= 0:
                        return
                    try:
                        message = await asyncio.wait_for(socket_.recv(), timeout=deadline)
                    except TimeoutError:
                        return
                    now = time.perf_counter()
                    reply = json.loads(message)
                    counters = reply.get("counters") or {}
                    accounted = counters.get("processed", 0) + counters.get("dropped_stale", 0) + counters.get(
                        "rejected", 0)
                    run.dropped_stale = counters.get("dropped_stale", run.dropped_stale)
                    run.rejected = counters.get("rejected", run.rejected)
                    if reply.get("type") == "result" and reply["seq"] in sent_at:
                        run.latencies_ms.append((now - sent_at.pop(reply["seq"])) * 1000)
                        if now <= window_end:
                            run.answered_in_window += 1

            send_task = asyncio.create_task(sender())
            await receiver()
            send_task.cancel()
            run.unanswered = max(0, run.sent - len(run.latencies_ms) - run.dropped_stale - run.rejected)
    except (OSError, websockets.WebSocketException, TimeoutError) as exc:
        run.error = f"{type(exc).__name__}: {exc}"
    return run


async def scenario(*, base_ws: str, query: dict[str, str], origin: str, frame: bytes, clients: int,
                   drop_stale: bool, fps: float, seconds: float) -> list[object]:
    url = f"{base_ws}?{urlencode({**query, 'drop_stale': '1' if drop_stale else '0'})}"
    runs = await asyncio.gather(*[
        run_client(url=url, origin=origin, frame=frame, fps=fps, seconds=seconds) for _ in range(clients)
    ])
    errors = [run.error for run in runs if run.error]
    if errors:
        sys.exit(f"client failed: {errors[0]}")
    latencies = [value for run in runs for value in run.latencies_ms]
    sent = sum(run.sent for run in runs)
    answered = sum(len(run.latencies_ms) for run in runs)
    in_window = sum(run.answered_in_window for run in runs)
    return [
        clients,
        "on" if drop_stale else "off",
        round(sent / seconds, 1),
        round(in_window / seconds, 2),
        round(in_window / seconds / clients, 2),
        round(statistics.median(latencies)) if latencies else float("nan"),
        round(percentile(latencies, 0.9)) if latencies else float("nan"),
        answered,
        sum(run.dropped_stale for run in runs),
        sum(run.unanswered for run in runs),
    ]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="http://127.0.0.1:8000", help="the server (loopback only)")
    parser.add_argument("--organization", required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("--api-key-name", required=True)
    parser.add_argument("--key", default=os.environ.get("FACEPORTAL_API_KEY"),
                        help="API key (default: $FACEPORTAL_API_KEY)")
    parser.add_argument("--fps", type=float, default=15, help=f"frames a second per client (<= {MAX_FPS})")
    parser.add_argument("--seconds", type=float, default=10, help=f"sending time per scenario (<= {MAX_SECONDS})")
    parser.add_argument("--clients", default="1,4", help=f"client counts to run (each <= {MAX_CLIENTS})")
    parser.add_argument("--photo", type=Path, default=None, help="a face photo (default: one from ../shared/faces)")
    args = parser.parse_args()
    if not args.key:
        sys.exit("Give the API key with $FACEPORTAL_API_KEY or --key.")
    fps = min(max(args.fps, 0.5), MAX_FPS)
    seconds = min(max(args.seconds, 1.0), MAX_SECONDS)
    client_counts = [min(max(int(n), 1), MAX_CLIENTS) for n in args.clients.split(",")]
    host, port = loopback_only(args.url)
    secure = urlsplit(args.url).scheme in ("https", "wss")
    base_ws = f"{'wss' if secure else 'ws'}://{host}:{port}/ws/recognize"
    origin = f"{'https' if secure else 'http'}://{host}:{port}"
    faces = Path(os.environ.get("FACEPORTAL_FACES_DIR") or REPO_ROOT.parent / "shared" / "faces")
    frame = camera_jpeg(args.photo or faces / "Barack_Obama" / "4.jpg")
    query = {"token": args.key, "organization": args.organization, "user": args.user,
             "api_key_name": args.api_key_name}

    # Warm-up: the first frames load the model on every engine thread; not measured.
    await scenario(base_ws=base_ws, query=query, origin=origin, frame=frame, clients=2, drop_stale=True,
                   fps=4, seconds=3)
    rows = []
    for clients in client_counts:
        for drop_stale in (True, False):
            print(f"  .. {clients} client(s), dropping {'on' if drop_stale else 'off'}", file=sys.stderr, flush=True)
            rows.append(await scenario(base_ws=base_ws, query=query, origin=origin, frame=frame, clients=clients,
                                       drop_stale=drop_stale, fps=fps, seconds=seconds))
    header = ["clients", "drop stale", "sent fps", "answered fps (all)", "answered fps (each)",
              "latency median ms", "latency p90 ms", "answered", "dropped stale", "unanswered"]
    print(f"### WebSocket recognition, {fps:g} fps per client for {seconds:g} s, 640x480 JPEG, one face\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join("–" if isinstance(v, float) and v != v else str(v) for v in row) + " |")
    print(f"\n(answered fps counts answers received while sending; with dropping off, answers still queued when "
          f"sending stopped arrive during a drain of up to {DRAIN_SECONDS} s and count in latency, not fps)")


if __name__ == "__main__":
    asyncio.run(main())
