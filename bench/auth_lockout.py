"""Brute force from many addresses against the failed-auth budgets, at the shipped rates, in one window.

Guessers rotate through --addresses addresses of 127/8 (as on a shared host), each sending
--guesses bad API keys (half for the idle key's real prefix, half for unknown ones), then staff
passwords for one username from --staff-addresses addresses. Before that, in a fresh window, one
address guesses while legitimate requests from many addresses fill the cache. Afterwards it tries what a legitimate
client would: a key that was never used (not cached) from an address that did not guess; the
attacked staff member from a network they signed in from before; another staff member.

Runs in-process (Django's test client through the whole stack) on the `make run` defaults: an
embedded SQLite database in a temporary folder and the in-memory cache, or Redis with --redis-url.
Prints counts; asserts nothing. Run it on two checkouts to compare:

    .venv/bin/python bench/auth_lockout.py --addresses 100 --guesses 40
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--addresses", type=int, default=100)
    parser.add_argument("--guesses", type=int, default=40, help="bad keys per address")
    parser.add_argument("--staff-addresses", type=int, default=40)
    parser.add_argument("--staff-guesses", type=int, default=2, help="wrong passwords per address")
    parser.add_argument("--lone-guesses", type=int, default=35, help="guesses of the one address amid other traffic")
    parser.add_argument("--evictors", type=int, default=220,
                        help="legitimate requests (a valid key, fresh addresses) between two guesses of one address")
    parser.add_argument("--redis-url", default="")
    args = parser.parse_args()

    var = tempfile.mkdtemp(prefix="auth-lockout-")
    os.environ.update(FACEPORTAL_VAR_DIR=var, DJANGO_SETTINGS_MODULE="faceportal.settings",
                      FACEPORTAL_WARM_ENGINE="0", LOG_LEVEL="ERROR")
    os.environ.pop("DATABASE_URL", None)
    if args.redis_url:
        os.environ["REDIS_URL"] = args.redis_url
    else:
        os.environ.pop("REDIS_URL", None)
    import django

    django.setup()
    import logging

    logging.getLogger("axes").setLevel(logging.ERROR)
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.core.cache import caches
    from django.core.management import call_command
    from rest_framework.test import APIClient

    from apikeys.services import api_key_issue
    from organizations.services import organization_create

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # counts, not hash cost
    call_command("migrate", verbosity=0)
    for alias in settings.CACHES:
        caches[alias].clear()
    org = organization_create(slug="acme")
    idle = api_key_issue(organization=org, user="alice", name="idle")
    busy = api_key_issue(organization=org, user="bob", name="busy")
    users = get_user_model().objects
    users.create_user("victim", password="victim-pass-123", is_staff=True)
    users.create_user("other", password="other-pass-456", is_staff=True)
    client = APIClient()

    def basic(user: str, password: str) -> str:
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def post_org(authorization: str, address: str, slug: str) -> int:
        return client.post("/orgs", {"organization": slug}, format="json", HTTP_AUTHORIZATION=authorization,
                           REMOTE_ADDR=address).status_code

    # The attacked staff member signed in from home before the attack.
    before = post_org(basic("victim", "victim-pass-123"), "192.0.2.50", "before")

    # First, in a fresh window: one address guessing while legitimate traffic from many addresses
    # fills the cache (each address's request count is an entry).
    lone_codes: dict[int, int] = {}
    for n in range(args.lone_guesses):
        code = client.get("/orgs/acme/people", HTTP_AUTHORIZATION=f"Bearer fp_{0xabc000000000 + n:012x}_x",
                          REMOTE_ADDR="203.0.113.99").status_code
        lone_codes[code] = lone_codes.get(code, 0) + 1
        for m in range(args.evictors):
            client.get("/orgs/acme/people", HTTP_AUTHORIZATION=f"Bearer {busy.plaintext}",
                       REMOTE_ADDR=f"10.{n}.{m // 256}.{m % 256}")
    started = time.monotonic()
    key_codes: dict[int, int] = {}
    for n in range(args.addresses):
        address = f"127.{(n + 1) // 256}.{(n + 1) % 256}.9"
        for attempt in range(args.guesses):
            prefix = idle.api_key.prefix if attempt % 2 else f"{n * args.guesses + attempt:012x}"
            code = client.get("/orgs/acme/people", HTTP_AUTHORIZATION=f"Bearer fp_{prefix}_guess{attempt}",
                              REMOTE_ADDR=address).status_code
            key_codes[code] = key_codes.get(code, 0) + 1
    password_codes: dict[int, int] = {}
    for n in range(args.staff_addresses):
        for attempt in range(args.staff_guesses):
            code = post_org(basic("victim", f"guess{n}-{attempt}"), f"127.9.{n // 256}.{n % 256}", f"x{n}")
            password_codes[code] = password_codes.get(code, 0) + 1
    elapsed = time.monotonic() - started

    from apikeys.services import _cache_key
    caches["default"].delete(_cache_key(idle.api_key.prefix))  # as after the key cache's TTL
    idle_status = APIClient().get("/orgs/acme/people", HTTP_AUTHORIZATION=f"Bearer {idle.plaintext}",
                                  REMOTE_ADDR="198.51.100.10").status_code
    victim_status = post_org(basic("victim", "victim-pass-123"), "192.0.2.50", "during")
    other_status = post_org(basic("other", "other-pass-456"), "198.51.100.11", "other")

    print(f"cache: {'redis' if args.redis_url else 'in-memory (make run)'}; {elapsed:.1f} s for the attack, "
          "within one 60 s window")
    print(f"key guesses: {args.addresses} addresses x {args.guesses}: checked (401) {key_codes.get(401, 0)}, "
          f"refused (429) {key_codes.get(429, 0)}")
    print(f"staff passwords: {args.staff_addresses} addresses x {args.staff_guesses}: checked (401) "
          f"{password_codes.get(401, 0)}, refused (429) {password_codes.get(429, 0)}")
    print(f"one address, {args.lone_guesses} guesses amid {args.evictors} legitimate requests each: checked (401) "
          f"{lone_codes.get(401, 0)}, refused (429) {lone_codes.get(429, 0)} (budget 30)")
    print(f"idle key, never used, from a fresh address: {idle_status}")
    print(f"attacked staff member from their usual network: {victim_status} (before the attack: {before})")
    print(f"another staff member from a fresh address: {other_status}")


if __name__ == "__main__":
    main()
