#!/usr/bin/env bash
# The suite talks to real PostgreSQL (127.0.0.1:5432, trust auth) and Redis (127.0.0.1:6379).
# Start them if this machine has them installed but stopped; fail clearly if they cannot run.
set -uo pipefail
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  if command -v pg_ctlcluster >/dev/null 2>&1; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -1)" main start || true
  fi
fi
if ! (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null; then
  if command -v redis-server >/dev/null 2>&1; then
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no || true
  fi
fi
for i in $(seq 1 20); do
  pg_ok=0; redis_ok=0
  pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null && pg_ok=1
  (exec 3<>/dev/tcp/127.0.0.1/6379) 2>/dev/null && redis_ok=1
  [ $pg_ok = 1 ] && [ $redis_ok = 1 ] && exit 0
  sleep 0.5
done
echo "PostgreSQL on 127.0.0.1:5432 and Redis on 127.0.0.1:6379 are required by the test suite" >&2
exit 1
