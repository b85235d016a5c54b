"""The embedded default (SQLite) takes concurrent writers: 8 clients registering 20 people each, 0 failures.

A real daphne on the default configuration (no DATABASE_URL, REDIS_URL or MONGODB_URI), real HTTP,
the real model on real photos (scaled down so 160 registrations stay cheap). Before WAL, the busy
timeout and IMMEDIATE transactions, 2 clients already got 153 of 392 registrations answered 503.
Throughput: `bench/concurrent_writes.py`.
"""

from __future__ import annotations

import sqlite3

from tests.ship.live_server import daphne_server, default_env, manage, register_concurrently, small_jpeg_b64

CLIENTS = 8
PEOPLE_PER_CLIENT = 20


def test_eight_clients_register_twenty_people_each_without_a_failure(tmp_path, manifest):
    var_dir = tmp_path / "var"
    env = default_env(FACEPORTAL_VAR_DIR=str(var_dir))
    server = daphne_server(var_dir=var_dir, log_path=tmp_path / "daphne.log", env=env)
    manage("create_org", "load", cwd=server.cwd, env=env)
    key = manage("create_api_key", "load", "--user", "bench", "--name", "writers", cwd=server.cwd, env=env)
    people = [photos[0] for name, photos in sorted(manifest.items()) if not name.startswith("_")][:4]
    images = [small_jpeg_b64(photo.path) for photo in people]
    with server:
        server.wait_ready()
        answers, _ = register_concurrently(server.url, key=key, organization="load", images=images,
                                           clients=CLIENTS, per_client=PEOPLE_PER_CLIENT)
    failures = [(status, body) for status, body in answers if status != 201]
    assert len(answers) == CLIENTS * PEOPLE_PER_CLIENT
    assert failures == [], f"{len(failures)} failed, first: {failures[:3]}"
    with sqlite3.connect(var_dir / "db.sqlite3") as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT COUNT(*) FROM faces_person").fetchone()[0] == CLIENTS * PEOPLE_PER_CLIENT
        assert db.execute("SELECT COUNT(*) FROM faces_face").fetchone()[0] == CLIENTS * PEOPLE_PER_CLIENT
