"""Concurrent registrations on the embedded default (SQLite): throughput and errors, 1 client vs N.

    .venv/bin/python bench/concurrent_writes.py [--clients 8] [--per-client 50]

One real daphne on the default configuration (no DATABASE_URL/REDIS_URL/MONGODB_URI, data in a
temporary folder), real HTTP, the real model on real photos scaled to 200 px (one face each). The
baseline is one client registering the same number of people per client, in the same process.
`tests/ship/test_concurrent_writes.py` asserts the 0 errors; this only prints.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import log, people, table  # noqa: E402
from tests.ship.live_server import (  # noqa: E402
    daphne_server,
    default_env,
    manage,
    register_concurrently,
    small_jpeg_b64,
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--per-client", type=int, default=50)
    args = parser.parse_args()

    images = [small_jpeg_b64(photos[0].path) for _, photos in sorted(people().items())[:4]]
    with tempfile.TemporaryDirectory(prefix="fp-bench-writes-") as scratch:
        var_dir = Path(scratch) / "var"
        env = default_env(FACEPORTAL_VAR_DIR=str(var_dir))
        server = daphne_server(var_dir=var_dir, log_path=Path(scratch) / "daphne.log", env=env)
        rows = []
        with server:
            server.wait_ready()
            baseline = None
            for clients in (1, args.clients):
                org = f"writes-{clients}"
                manage("create_org", org, cwd=server.cwd, env=env)
                key = manage("create_api_key", org, "--user", "bench", "--name", "writers", cwd=server.cwd, env=env)
                log(f"{clients} client(s) x {args.per_client} registrations")
                answers, seconds = register_concurrently(server.url, key=key, organization=org, images=images,
                                                         clients=clients, per_client=args.per_client)
                errors = sum(1 for status, _ in answers if status != 201)
                per_second = len(answers) / seconds
                baseline = baseline or per_second
                rows.append([clients, len(answers), errors, seconds, per_second, per_second / baseline])
    table(
        "Concurrent registrations, embedded default (SQLite WAL, IMMEDIATE, busy timeout)",
        ["clients", "registrations", "errors", "seconds", "registrations/s", "vs 1 client"],
        rows,
        note="One image of about 200 px per registration; the model runs for every one. Before WAL and "
             "IMMEDIATE transactions, 2 clients got 153 of 392 registrations answered 503.",
    )


if __name__ == "__main__":
    main()
