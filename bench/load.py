"""Load and soak: N REST clients and M WebSocket clients against a running server, for a fixed time.

Loopback only (the URL must resolve to 127.0.0.0/8 or ::1), bounded in time and in request count,
and it stops by itself. REST clients alternate `POST /recognize/{org}` with a real photo and
`GET /orgs/{org}/people`; WebSocket clients send the photo as binary JPEG frames, each after the
previous answer (closed loop, at most --ws-fps). Reports throughput, p50/p99 latency, errors (any
non-2xx answer, error reply or exception; must be 0) and the server's memory (RSS from
/proc/<pid>/status, sampled every few seconds): growth after warm-up and, for a soak, the slope
over the second half, which must be flat.

    FACEPORTAL_API_KEY=fp_... .venv/bin/python bench/load.py --url http://127.0.0.1:8000 \\
        --organization acme --user alice --api-key-name load --server-pid $(pgrep -n daphne) \\
        --rest 4 --ws 2 --duration 60
    # the 10-minute soak:
    ... bench/load.py ... --soak 600

    # legitimate traffic alone, then the same with attacks mixed in (the threat classes of docs/SECURITY.md):
    ... bench/load.py ... --duration 60 --hostile

With --hostile, a clean phase runs first and then a hostile phase of the same length, in which
--hostile-clients threads (and one WebSocket) send attack requests, --hostile-interval apart: JSON nested
100,000 deep, registers of ten 632-byte 6000x6000 JPEG bombs, PNG bombs, decode-work bombs (a
progressive JPEG repeating its last scan, GIF comments, PNG chunks, TIFF strips), formats nobody asked
for, lone surrogates in names, NUL in searches, over-long server paths, multipart without a
boundary, and malformed WebSocket messages. No attack fails authentication (that would spend
the loopback address's failed-auth budget and lock the legitimate clients out). The report
gives legitimate p50/p99 per phase and their ratio; attacks must get 4xx answers (a 5xx or a
dropped connection counts as an attack error).

Exit status 1 when any request failed (or, in a soak, memory grew by more than --max-growth-mb).
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import ipaddress
import json
import os
import socket
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import percentile  # noqa: E402
from tests.image_samples import (  # noqa: E402
    gif_with_comments,
    jpeg_claiming,
    png_with_split_idat,
    progressive_jpeg_repeating_last_scan,
    tiff_with_strips,
)

DEFAULT_PHOTO = Path(os.environ.get("FACEPORTAL_FACES_DIR") or Path(__file__).resolve().parents[2] / "shared" / "faces")
MAX_TOTAL_REQUESTS = 2_000_000
MAX_SECONDS = 3600
RSS_EVERY_S = 5.0
WARMUP_S = 5.0


@dataclass
class Tally:
    latencies_ms: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def ok(self, started: float) -> None:
        with self.lock:
            self.latencies_ms.append((time.perf_counter() - started) * 1000)

    def fail(self, what: str) -> None:
        with self.lock:
            self.errors.append(what)

    def summary(self, seconds: float) -> dict:
        with self.lock:
            values = sorted(self.latencies_ms)
            errors = list(self.errors)
        return {
            "requests": len(values) + len(errors),
            "per_second": round(len(values) / seconds, 2) if seconds else 0.0,
            "p50_ms": round(percentile(values, 0.5), 1) if values else 0.0,
            "p99_ms": round(percentile(values, 0.99), 1) if values else 0.0,
            "errors": len(errors),
            "first_errors": errors[:5],
        }


def require_loopback(host: str, port: int) -> None:
    addresses = {info[4][0] for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)}
    if not addresses or not all(ipaddress.ip_address(a.split("%")[0]).is_loopback for a in addresses):
        sys.exit(f"refusing to load {host}: it resolves to {sorted(addresses)}, not only loopback")


def rss_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


class Budget:
    """Stops every client at the deadline or once the total request bound is spent."""

    def __init__(self, seconds: float, max_requests: int) -> None:
        self.deadline = time.monotonic() + seconds
        self.remaining = max_requests
        self.lock = threading.Lock()

    def take(self) -> bool:
        if time.monotonic() >= self.deadline:
            return False
        with self.lock:
            if self.remaining <= 0:
                return False
            self.remaining -= 1
            return True


def rest_client(args, body: bytes, budget: Budget, tally: Tally, worker: int) -> None:
    parts = urlsplit(args.url)
    headers = {"Authorization": f"Bearer {args.key}", "Content-Type": "application/json"}
    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=60)
    turn = worker
    while budget.take():
        turn += 1
        recognise = turn % 2 == 0
        path = f"/recognize/{args.organization}" if recognise else f"/orgs/{args.organization}/people"
        started = time.perf_counter()
        try:
            connection.request("POST" if recognise else "GET", path, body=body if recognise else None,
                               headers=headers)
            response = connection.getresponse()
            payload = response.read()
            if 200 <= response.status < 300:
                tally.ok(started)
            else:
                tally.fail(f"{path}: HTTP {response.status} {payload[:120]!r}")
        except (OSError, http.client.HTTPException) as exc:
            tally.fail(f"{path}: {exc.__class__.__name__}: {exc}")
            connection.close()
            connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=60)
    connection.close()


def recognition_socket(args):
    """A connection to the server's /ws/recognize with the run's key (use it with `async with`)."""
    import websockets

    parts = urlsplit(args.url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    query = urlencode({"token": args.key, "organization": args.organization, "user": args.user,
                       "api_key_name": args.api_key_name})
    return websockets.connect(f"{scheme}://{parts.netloc}/ws/recognize?{query}",
                              origin=f"{parts.scheme}://{parts.netloc}", max_size=2**22, open_timeout=30)


async def ws_client(args, jpeg: bytes, budget: Budget, tally: Tally) -> None:
    interval = 1.0 / args.ws_fps
    try:
        async with recognition_socket(args) as socket_:
            ready = json.loads(await asyncio.wait_for(socket_.recv(), 60))
            if ready.get("type") != "ready":
                tally.fail(f"ws handshake: {ready}")
                return
            while budget.take():
                started = time.perf_counter()
                await socket_.send(jpeg)
                reply = json.loads(await asyncio.wait_for(socket_.recv(), 60))
                if reply.get("type") == "result":
                    tally.ok(started)
                else:
                    tally.fail(f"ws frame: {reply.get('error', reply)}")
                await asyncio.sleep(max(0.0, interval - (time.perf_counter() - started)))
    except Exception as exc:  # a closed socket or a timeout is a failed client, counted, not a crash
        tally.fail(f"ws: {exc.__class__.__name__}: {exc}")


def run_ws_clients(args, jpeg: bytes, budget: Budget, tally: Tally, hostile: Tally | None = None,
                   hostile_flood: Tally | None = None, hostile_idle: Tally | None = None) -> None:
    async def all_clients() -> None:
        clients = [ws_client(args, jpeg, budget, tally) for _ in range(args.ws)]
        if hostile is not None:
            clients.append(ws_attacker(args, budget, hostile))
        await asyncio.gather(*clients)

    async def socket_attackers() -> None:
        chosen = []
        if "flood" in args.hostile_classes:
            chosen.append(ws_flood_attacker(args, budget, hostile_flood))
        if "idle" in args.hostile_classes:
            chosen.append(ws_idle_attacker(args, budget, hostile_idle))
        await asyncio.gather(*chosen)

    attackers = None
    if hostile is not None:  # their own thread and event loop: a flood must not slow the measuring client
        attackers = threading.Thread(target=asyncio.run, args=(socket_attackers(),), daemon=True)
        attackers.start()
    asyncio.run(all_clients())
    if attackers is not None:
        attackers.join(timeout=120)


# --- attacks (--hostile) ------------------------------------------------------------------------------

def attack_requests(organization: str) -> list[tuple[str, str, bytes, str]]:
    """(label, method and path, body, content type): each must be answered with a 4xx."""
    import base64
    import io

    from PIL import Image

    def b64(data: bytes) -> str:
        return base64.b64encode(data).decode()

    png = io.BytesIO()
    Image.new("L", (4000, 4000), 90).save(png, "PNG")
    other = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 40, 40)).save(other, "QOI")
    bombs = [b64(jpeg_claiming(6000, 6000)) for _ in range(10)]  # 632 bytes each
    # Decode-work bombs: each is refused from its structure (422 image_too_complex) before Pillow.
    work_bombs = {
        "jpeg scan bomb": progressive_jpeg_repeating_last_scan((2048, 2048), 1000),
        "gif comment bomb": gif_with_comments(400_000),
        "png chunk bomb": png_with_split_idat(200_000),
        "tiff strip bomb": tiff_with_strips(200_000),
    }
    recognize, register = f"POST /recognize/{organization}", f"POST /register/{organization}"
    as_json = "application/json"
    return [
        ("nested json", recognize, b"[" * 100_000, as_json),
        ("nested register", register, b'{"images":' + b"[" * 100_000, as_json),
        ("10 jpeg bombs", register, json.dumps({"name": "bombs", "images": bombs}).encode(), as_json),
        # Within the limits (16 M pixels): decoded under the budget and answered, 200 or 4xx.
        ("png bomb (accepted)", recognize, json.dumps({"image": b64(png.getvalue())}).encode(), as_json),
        ("qoi", recognize, json.dumps({"image": b64(other.getvalue())}).encode(), as_json),
        ("surrogate name", register, b'{"name": "a\\ud800b", "images": ["x"]}', as_json),
        ("nul search", f"GET /orgs/{organization}/people?search=a%00b", b"", as_json),
        ("long path", recognize, json.dumps({"image": {"path": "a" * 5000 + ".jpg"}}).encode(), as_json),
        ("no boundary", recognize, b"--x\r\nnot a form\r\n", "multipart/form-data"),
        *[(label, recognize, json.dumps({"image": b64(data)}).encode(), as_json) for label, data in work_bombs.items()],
    ]


def rest_attacker(args, attacks, budget: Budget, tally: Tally, worker: int) -> None:
    parts = urlsplit(args.url)
    headers = {"Authorization": f"Bearer {args.key}"}
    connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=120)
    turn = worker
    while budget.take():
        label, target, body, content_type = attacks[turn % len(attacks)]
        turn += 1
        method, path = target.split(" ", 1)
        started = time.perf_counter()
        try:
            connection.request(method, path, body=body or None, headers={**headers, "Content-Type": content_type})
            response = connection.getresponse()
            payload = response.read()
            refused = 400 <= response.status < 500 and payload.startswith(b'{"error"')
            if refused or ("(accepted)" in label and response.status == 200):
                tally.ok(started)
            else:
                tally.fail(f"{label}: HTTP {response.status} {payload[:120]!r}")
        except (OSError, http.client.HTTPException) as exc:
            tally.fail(f"{label}: {exc.__class__.__name__}: {exc}")
        if response_closed(connection):
            connection.close()
            connection = http.client.HTTPConnection(parts.hostname, parts.port or 80, timeout=120)
        time.sleep(args.hostile_interval)
    connection.close()


def response_closed(connection: http.client.HTTPConnection) -> bool:
    return connection.sock is None


async def ws_attacker(args, budget: Budget, tally: Tally) -> None:
    """Malformed messages on an authenticated socket: each gets an error reply, the socket stays."""
    messages = ["[" * 100_000, '{"image": "\\ud800"}', "not json", "[1, 2]", '{"type": "nope"}']
    try:
        async with recognition_socket(args) as socket_:
            json.loads(await asyncio.wait_for(socket_.recv(), 60))
            turn = 0
            while budget.take():
                started = time.perf_counter()
                await socket_.send(messages[turn % len(messages)])
                turn += 1
                reply = json.loads(await asyncio.wait_for(socket_.recv(), 60))
                if reply.get("type") == "error" and "close_code" not in reply:
                    tally.ok(started)
                else:
                    tally.fail(f"ws attack: {reply}")
                await asyncio.sleep(0.05)
    except Exception as exc:  # the socket died: exactly what the attack must not achieve
        tally.fail(f"ws attack: {exc.__class__.__name__}: {exc}")


def attacker_credentials(args) -> dict:
    """The key the newer attack classes use: --attacker-key (another tenant) when given, else the run's."""
    if args.attacker_key:
        return {"key": args.attacker_key, "organization": args.attacker_organization, "user": args.attacker_user,
                "api_key_name": args.attacker_api_key_name}
    return {"key": args.key, "organization": args.organization, "user": args.user, "api_key_name": args.api_key_name}


def crowd_jpeg(photo: Path, *, faces: int = 144) -> bytes:
    """One JPEG holding `faces` copies of the photo in a grid (the many-faces attack)."""
    import io
    import math

    from PIL import Image

    side = math.ceil(math.sqrt(faces))
    cell = 2048 // side
    tile = Image.open(photo).convert("RGB").resize((cell, cell))
    canvas = Image.new("RGB", (side * cell, side * cell), (128, 128, 128))
    for index in range(faces):
        canvas.paste(tile, ((index % side) * cell, (index // side) * cell))
    out = io.BytesIO()
    canvas.save(out, "JPEG", quality=85)
    return out.getvalue()


def raw_exchange(host: str, port: int, head: bytes, *, body_bytes: int = 0, drip: bool = False,
                 timeout: float = 60.0) -> int:
    """Send `head`, then up to `body_bytes` of body (or the header dripped a byte a second); the status."""
    sock = socket.create_connection((host, port), timeout=timeout)
    try:
        if drip:
            sock.sendall(head)
            sock.settimeout(1.0)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                try:
                    sock.sendall(b"x")
                    if sock.recv(1, socket.MSG_PEEK):
                        break
                except TimeoutError:
                    continue
                except OSError:
                    break
            sock.settimeout(timeout)
        else:
            sock.sendall(head)
            block = b"a" * 65536
            try:
                for _ in range(body_bytes // len(block)):
                    sock.sendall(block)
            except OSError:
                pass
        first = sock.recv(64)
        return int(first.split(b" ", 2)[1]) if first.startswith(b"HTTP/") else 0
    except (OSError, ValueError, IndexError):
        return 0
    finally:
        sock.close()


def new_class_attacker(args, photo: Path, budget: Budget, tally: Tally, worker: int) -> None:
    """Oversized bodies (declared and chunked), a schema flood and the many-faces image, in turn."""
    parts = urlsplit(args.url)
    host, port = parts.hostname, parts.port or 80
    creds = attacker_credentials(args)
    import base64

    crowd = json.dumps({"image": base64.b64encode(crowd_jpeg(photo)).decode()}).encode()
    gig = 1 << 30

    def post_head(path: str, framing: str) -> bytes:
        return f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n{framing}\r\n\r\n".encode()

    kinds = [kind for kind, group in (("1 GB to /healthz", "bodies"), ("1 GB to register", "bodies"),
                                      ("chunked to /healthz", "bodies"), ("schema", "schema"),
                                      ("many faces", "faces")) if group in args.hostile_classes]
    if not kinds:
        return
    turn = worker
    while budget.take():
        kind = kinds[turn % len(kinds)]
        turn += 1
        started = time.perf_counter()
        if kind == "1 GB to /healthz":
            status = raw_exchange(host, port, post_head("/healthz", f"Content-Length: {gig}"), body_bytes=8 << 20)
            good = status == 413
        elif kind == "1 GB to register":
            status = raw_exchange(host, port, post_head(f"/register/{creds['organization']}",
                                                        f"Content-Length: {gig}"), body_bytes=8 << 20)
            good = status == 413
        elif kind == "chunked to /healthz":
            status = raw_exchange(host, port, post_head("/healthz", "Transfer-Encoding: chunked")
                                  + b"800000\r\n", body_bytes=8 << 20)
            good = status == 413
        elif kind == "schema":
            for _ in range(10):  # a burst of anonymous schema requests
                connection = http.client.HTTPConnection(host, port, timeout=60)
                connection.request("GET", "/api/schema/")
                response = connection.getresponse()
                response.read()
                connection.close()
            status = response.status
            good = status == 200
        else:
            connection = http.client.HTTPConnection(host, port, timeout=120)
            connection.request("POST", f"/recognize/{creds['organization']}", body=crowd,
                               headers={"Authorization": f"Bearer {creds['key']}", "Content-Type": "application/json"})
            response = connection.getresponse()
            payload = json.loads(response.read() or b"{}")
            connection.close()
            status = response.status
            good = status == 200 and payload.get("faces_dropped", 0) > 0
        if good:
            tally.ok(started)
        else:
            tally.fail(f"{kind}: HTTP {status}")
        time.sleep(args.hostile_interval)


def slow_header_attacker(args, budget: Budget, tally: Tally) -> None:
    """Headers sent a byte a second, over and over: each must end in 408, not hold a connection."""
    parts = urlsplit(args.url)
    while budget.take():
        started = time.perf_counter()
        status = raw_exchange(parts.hostname, parts.port or 80,
                              f"GET /healthz HTTP/1.1\r\nHost: {parts.hostname}\r\nX-Slow: ".encode(), drip=True,
                              timeout=120)
        if status == 408:
            tally.ok(started)
        else:
            tally.fail(f"slow headers: HTTP {status}")


def attacker_socket(args):
    import websockets

    creds = attacker_credentials(args)
    parts = urlsplit(args.url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    query = urlencode({"token": creds["key"], "organization": creds["organization"], "user": creds["user"],
                       "api_key_name": creds["api_key_name"]})
    return websockets.connect(f"{scheme}://{parts.netloc}/ws/recognize?{query}",
                              origin=f"{parts.scheme}://{parts.netloc}", max_size=2**22, open_timeout=30)


async def ws_flood_attacker(args, budget: Budget, tally: Tally) -> None:
    """Tiny binary frames as fast as the socket takes them; the server must close the flood (4420)."""
    import websockets

    while budget.take():
        started = time.perf_counter()
        try:
            async with attacker_socket(args) as socket_:
                await asyncio.wait_for(socket_.recv(), 60)

                async def drain() -> None:  # read the replies, so the close frame is seen
                    async for _ in socket_:
                        pass

                reader = asyncio.create_task(drain())
                try:
                    while not reader.done():
                        await socket_.send(b"\xff")
                        await asyncio.sleep(0)
                except websockets.ConnectionClosed:
                    pass
                await asyncio.wait([reader], timeout=30)
                code = socket_.close_code
            # 4420 when the client read the server's close; 1006 when the server stopped reading
            # and closed under a client still writing (its unread frames reset the connection).
            if code in (4420, 1006):
                tally.ok(started)
            else:
                tally.fail(f"ws flood closed with {code}")
        except Exception as exc:
            tally.fail(f"ws flood: {exc.__class__.__name__}: {exc}")
        await asyncio.sleep(args.hostile_interval)


async def ws_idle_attacker(args, budget: Budget, tally: Tally, sockets: int = 8) -> None:
    """One tenant opens `sockets` sockets and sends nothing: refusals past its share (4429, 4431) and
    idle closes (4408) are the expected answers; it reopens what it loses until the phase ends.
    Eight by default, so the flood attacker's socket still fits under the key's cap of 10."""
    import websockets

    async def hold() -> None:
        while budget.take():
            started = time.perf_counter()
            try:
                async with attacker_socket(args) as socket_:
                    async for _ in socket_:
                        pass
            except websockets.ConnectionClosed:
                pass
            except Exception as exc:
                tally.fail(f"ws idle: {exc.__class__.__name__}: {exc}")
                await asyncio.sleep(1)
                continue
            code = socket_.close_code
            if code in (4408, 4429, 4431):
                tally.ok(started)
            else:
                tally.fail(f"ws idle closed with {code}")
            await asyncio.sleep(5.0 if code != 4408 else 0.0)

    await asyncio.gather(*(hold() for _ in range(sockets)))


def memory_report(samples: list[tuple[float, float]], seconds: float) -> dict:
    if not samples:
        return {"rss_mb": None}
    settled = [s for s in samples if s[0] >= WARMUP_S] or samples
    report = {
        "rss_start_mb": round(settled[0][1], 1),
        "rss_end_mb": round(settled[-1][1], 1),
        "rss_max_mb": round(max(s[1] for s in settled), 1),
        "rss_growth_mb": round(settled[-1][1] - settled[0][1], 1),
    }
    second_half = [s for s in settled if s[0] >= seconds / 2]
    if len(second_half) >= 3:
        times, values = [s[0] for s in second_half], [s[1] for s in second_half]
        slope = statistics.linear_regression(times, values).slope if len(set(times)) > 1 else 0.0
        report["rss_slope_second_half_mb_per_min"] = round(slope * 60, 2)
    return report


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--organization", required=True)
    parser.add_argument("--key", default=os.environ.get("FACEPORTAL_API_KEY"),
                        help="the API key (or FACEPORTAL_API_KEY, which keeps it out of the process list)")
    parser.add_argument("--user", default="", help="the key's user (for the WebSocket handshake)")
    parser.add_argument("--api-key-name", default="", help="the key's name (for the WebSocket handshake)")
    parser.add_argument("--rest", type=int, default=4, help="concurrent REST clients")
    parser.add_argument("--ws", type=int, default=2, help="concurrent WebSocket clients")
    parser.add_argument("--ws-fps", type=float, default=5.0, help="frames per second per socket, at most")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds")
    parser.add_argument("--soak", type=float, default=None, help="soak for this many seconds (e.g. 600)")
    parser.add_argument("--max-requests", type=int, default=200_000, help="stop after this many in total")
    parser.add_argument("--server-pid", type=int, default=None, help="daphne's pid, to sample its RSS")
    parser.add_argument("--photo", type=Path, default=DEFAULT_PHOTO / "Barack_Obama" / "1.jpg")
    parser.add_argument("--max-growth-mb", type=float, default=50.0, help="soak: allowed RSS growth")
    parser.add_argument("--hostile", action="store_true",
                        help="a clean phase, then the same with attacks mixed in; compare legitimate p99")
    parser.add_argument("--hostile-clients", type=int, default=1, help="--hostile: concurrent attacking clients")
    parser.add_argument("--hostile-interval", type=float, default=0.5,
                        help="--hostile: seconds each attacking client waits between attacks")
    parser.add_argument("--hostile-classes", type=lambda text: set(text.split(",")),
                        default={"bodies", "slow", "schema", "faces", "flood", "idle"},
                        help="--hostile: the newer attack classes to mix in (comma-separated; default all)")
    parser.add_argument("--attacker-key", default=os.environ.get("FACEPORTAL_ATTACKER_API_KEY"),
                        help="--hostile: another tenant's key for the newer attacks (or FACEPORTAL_ATTACKER_API_KEY)")
    parser.add_argument("--attacker-organization", default="")
    parser.add_argument("--attacker-user", default="")
    parser.add_argument("--attacker-api-key-name", default="")
    args = parser.parse_args()
    if not args.key:
        sys.exit("give the API key with FACEPORTAL_API_KEY or --key")
    if (args.ws or args.hostile) and not (args.user and args.api_key_name):
        sys.exit("WebSocket clients need --user and --api-key-name")
    seconds = min(args.soak if args.soak else args.duration, MAX_SECONDS)
    parts = urlsplit(args.url)
    require_loopback(parts.hostname or "", parts.port or 80)

    import base64

    jpeg = args.photo.read_bytes()
    body = json.dumps({"image": base64.b64encode(jpeg).decode()}).encode()
    if not args.hostile:
        report = run_phase(args, body, jpeg, seconds, attacks=None)
        print(json.dumps(report, indent=2))
        return 1 if failed(args, report) else 0
    attacks = attack_requests(args.organization)
    clean = run_phase(args, body, jpeg, seconds, attacks=None)
    hostile = run_phase(args, body, jpeg, seconds, attacks=attacks)
    legit_p99 = {phase: max(report["rest"]["p99_ms"], report["ws"]["p99_ms"]) for phase, report in
                 (("clean", clean), ("hostile", hostile))}
    report = {
        "mode": "hostile",
        "clean": clean,
        "hostile": hostile,
        "legitimate_p99_ms": legit_p99,
        "legitimate_p99_ratio": round(legit_p99["hostile"] / legit_p99["clean"], 2) if legit_p99["clean"] else None,
        "rest_p99_ratio": ratio(hostile["rest"]["p99_ms"], clean["rest"]["p99_ms"]),
        "ws_p99_ratio": ratio(hostile["ws"]["p99_ms"], clean["ws"]["p99_ms"]),
    }
    print(json.dumps(report, indent=2))
    attack_errors = sum(summary["errors"] for name, summary in hostile["attacks"].items() if name != "clients")
    return 1 if failed(args, clean) or failed(args, hostile) or attack_errors else 0


def ratio(value: float, baseline: float) -> float | None:
    return round(value / baseline, 2) if baseline else None


def failed(args, report: dict) -> bool:
    errors = report["rest"]["errors"] + report["ws"]["errors"]
    grew = report["memory"].get("rss_growth_mb") or 0.0
    return bool(errors or (args.soak and grew > args.max_growth_mb))


def run_phase(args, body: bytes, jpeg: bytes, seconds: float, *, attacks) -> dict:
    budget = Budget(seconds, min(args.max_requests, MAX_TOTAL_REQUESTS))
    rest_tally, ws_tally = Tally(), Tally()
    attack_rest, attack_ws = Tally(), Tally()
    attack_new, attack_slow, attack_flood, attack_idle = Tally(), Tally(), Tally(), Tally()
    samples: list[tuple[float, float]] = []
    started = time.monotonic()

    threads = [threading.Thread(target=rest_client, args=(args, body, budget, rest_tally, n), daemon=True)
               for n in range(args.rest)]
    if args.ws or attacks:
        threads.append(threading.Thread(target=run_ws_clients,
                                        args=(args, jpeg, budget, ws_tally, attack_ws if attacks else None,
                                              attack_flood, attack_idle),
                                        daemon=True))
    if attacks:
        threads += [threading.Thread(target=rest_attacker, args=(args, attacks, budget, attack_rest, n), daemon=True)
                    for n in range(args.hostile_clients)]
        threads += [threading.Thread(target=new_class_attacker, args=(args, args.photo, budget, attack_new, n),
                                     daemon=True) for n in range(args.hostile_clients)]
        if "slow" in args.hostile_classes:
            threads += [threading.Thread(target=slow_header_attacker, args=(args, budget, attack_slow), daemon=True)
                        for _ in range(2)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        if args.server_pid and (value := rss_mb(args.server_pid)) is not None:
            samples.append((time.monotonic() - started, value))
            if args.soak:
                print(f"  t={samples[-1][0]:6.0f}s rss={value:7.1f} MB", file=sys.stderr, flush=True)
        for thread in threads:
            thread.join(timeout=RSS_EVERY_S / max(1, len(threads)))
        if time.monotonic() - started > seconds + 120:
            break  # a hung server: report what we have rather than wait for ever
    elapsed = time.monotonic() - started
    if args.server_pid and (value := rss_mb(args.server_pid)) is not None:
        samples.append((elapsed, value))

    report = {
        "mode": "soak" if args.soak else "load",
        "seconds": round(elapsed, 1),
        "rest_clients": args.rest,
        "ws_clients": args.ws,
        "rest": rest_tally.summary(elapsed),
        "ws": ws_tally.summary(elapsed),
        "memory": memory_report(samples, elapsed),
    }
    if attacks:
        report["attacks"] = {"clients": args.hostile_clients, "rest": attack_rest.summary(elapsed),
                             "ws": attack_ws.summary(elapsed),
                             "bodies_schema_faces": attack_new.summary(elapsed),
                             "slow_headers": attack_slow.summary(elapsed),
                             "ws_tiny_frame_flood": attack_flood.summary(elapsed),
                             "ws_idle_sockets": attack_idle.summary(elapsed)}
    return report


if __name__ == "__main__":
    sys.exit(main())
