"""`make run`'s step before daphne: refuse an unsafe bind, migrate, and print the banner.

    python -m faceportal.startup --host 127.0.0.1 --port 8000

One process for the checks and the migration keeps `make run` quick to answer. Exits non-zero with
one line on stderr when the server must not start.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys

LOOPBACK_NAMES = {"localhost", "ip6-localhost"}


def is_loopback(host: str) -> bool:
    if host.strip("[]") in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _describe_database(settings) -> str:
    db = settings.DATABASES["default"]
    if settings.EMBEDDED_DATABASE:
        return f"SQLite {db['NAME']} (WAL)"
    return f"{db['ENGINE'].rsplit('.', 1)[-1]} {db.get('HOST') or 'localhost'}:{db.get('PORT') or ''}/{db['NAME']}"


def banner(*, host: str, port: int) -> str:
    from django.conf import settings

    shown = "localhost" if is_loopback(host) else host
    base = f"http://{shown}:{port}"
    if settings.FACEPORTAL_VECTOR_STORE == "embedded":
        store = f"embedded index ({settings.VAR_DIR / 'index'})"
    else:
        store = f"MongoDB Atlas ({settings.MONGODB_DATABASE}, layout {settings.MONGODB_LAYOUT})"
    cache = "Redis" if settings.REDIS_URL else "local memory (REDIS_URL unset; one process)"
    secrets = "environment" if settings.SECRET_KEY_FROM_ENV else f"{settings.VAR_DIR}/secret_key, api_key_pepper"
    if is_loopback(host):
        expose = (f"bound to {host} only. To serve your network: SECRET_KEY=<random> "
                  "ALLOWED_HOSTS=<this machine's name or address> make run HOST=0.0.0.0")
    else:
        expose = (f"listening on {host}; clients must use a name in ALLOWED_HOSTS "
                  f"({', '.join(settings.ALLOWED_HOSTS)}), others get 400 Bad Request")
    lines = [
        "",
        f"FacePortal on {base}/   webcam page {base}/demo/",
        f"  admin     {base}/admin/   API docs {base}/api/docs/",
        f"  engine    {settings.DEEPFACE_EMBEDDER_MODEL} embeddings, {settings.DEEPFACE_DETECTOR_BACKEND} detector",
        f"  data      {_describe_database(settings)}; vectors: {store}",
        f"  cache     {cache}; secrets: {secrets}",
        f"  expose    {expose}",
        "  first use .venv/bin/python manage.py createsuperuser",
        "            .venv/bin/python manage.py create_org acme && "
        ".venv/bin/python manage.py create_api_key acme --user alice --name laptop",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--no-migrate", action="store_true")
    args = parser.parse_args(argv)

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "faceportal.settings")
    import django
    from django.core.exceptions import ImproperlyConfigured

    try:
        django.setup()
    except ImproperlyConfigured as exc:
        print(f"faceportal: configuration error: {exc}", file=sys.stderr)
        return 2
    from django.conf import settings

    if not is_loopback(args.host) and not settings.SECRET_KEY_FROM_ENV:
        print(f"faceportal: refusing to listen on {args.host} without SECRET_KEY in the environment; "
              "set SECRET_KEY (and ALLOWED_HOSTS), or leave HOST at 127.0.0.1 (docs/SECRETS.md).", file=sys.stderr)
        return 2
    if not args.no_migrate:
        from django.core.management import call_command

        call_command("migrate", interactive=False, verbosity=0)
    print(banner(host=args.host, port=args.port), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
