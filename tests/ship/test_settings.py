"""Settings fail loudly, and the two secrets cannot drift (docs/SECRETS.md).

Each case starts a fresh Python with only the variables under test (the default install has none),
so nothing of the suite's own configuration leaks in.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.ship.live_server import REPO_ROOT, default_env, manage

SHOW = ("import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps({'debug': s.DEBUG, 'fps': s.FACEPORTAL_WS_MAX_FPS, "
        "'threshold': s.FACEPORTAL_DEFAULT_THRESHOLD, 'secret': s.SECRET_KEY, 'pepper': s.API_KEY_PEPPER, "
        "'db': s.DATABASES['default']['OPTIONS']}))")


def settings_of(tmp_path, **env: str) -> subprocess.CompletedProcess:
    full = default_env(DJANGO_SETTINGS_MODULE="faceportal.settings", FACEPORTAL_VAR_DIR=str(tmp_path / "var"), **env)
    return subprocess.run([sys.executable, "-c", SHOW], cwd=REPO_ROOT, env=full, capture_output=True, text=True,
                          timeout=120)


def loaded(done: subprocess.CompletedProcess) -> dict:
    import json

    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


@pytest.mark.parametrize(("name", "value", "says"), [
    ("DEBUG", "ture", "DEBUG='ture' is not a boolean"),
    ("FACEPORTAL_WARM_ENGINE", "maybe", "FACEPORTAL_WARM_ENGINE='maybe' is not a boolean"),
    ("FACEPORTAL_WS_MAX_FPS", "thirty", "FACEPORTAL_WS_MAX_FPS='thirty' is not a number"),
    ("FACEPORTAL_ENGINE_WORKERS", "2.5", "FACEPORTAL_ENGINE_WORKERS='2.5' is not an integer"),
    ("FACEPORTAL_DEFAULT_THRESHOLD", "1.5", "FACEPORTAL_DEFAULT_THRESHOLD='1.5' is not a number between"),
    ("MONGODB_LAYOUT", "sharded", "MONGODB_LAYOUT='sharded' is not one of per_org, shared"),
    ("FACEPORTAL_THROTTLE_KEY_RATE", "lots", "FACEPORTAL_THROTTLE_KEY_RATE='lots' is not a rate"),
    ("SECRET_KEY", "dev-insecure-faceportal-key-change-me-in-production", "public development key"),
])
def test_a_bad_value_stops_the_start_naming_the_variable(tmp_path, name, value, says):
    done = settings_of(tmp_path, **{name: value})
    assert done.returncode != 0
    assert says in done.stderr.strip().splitlines()[-1]


def test_values_have_their_types_and_sqlite_takes_concurrent_writers(tmp_path):
    values = loaded(settings_of(tmp_path, DEBUG="yes", FACEPORTAL_WS_MAX_FPS="12.5",
                                FACEPORTAL_DEFAULT_THRESHOLD="0.9"))
    assert (values["debug"], values["fps"], values["threshold"]) == (True, 12.5, 0.9)
    assert values["db"]["transaction_mode"] == "IMMEDIATE" and values["db"]["timeout"] >= 20
    assert "journal_mode=WAL" in values["db"]["init_command"]


def test_embedded_secrets_are_generated_once_and_never_follow_each_other(tmp_path):
    first = loaded(settings_of(tmp_path))
    assert len(first["secret"]) >= 32 and len(first["pepper"]) >= 32 and first["secret"] != first["pepper"]
    assert (tmp_path / "var" / "api_key_pepper").stat().st_mode & 0o077 == 0  # owner-only
    again = loaded(settings_of(tmp_path))
    assert (again["secret"], again["pepper"]) == (first["secret"], first["pepper"])
    # Setting a real SECRET_KEY later changes sessions only: the pepper, and so every issued key, stays.
    later = loaded(settings_of(tmp_path, SECRET_KEY="a-real-secret-key-" + "k" * 40))
    assert later["pepper"] == first["pepper"]


def test_a_server_database_needs_both_secrets_from_the_environment(tmp_path):
    done = settings_of(tmp_path, DATABASE_URL="postgres://postgres@127.0.0.1:5432/faceportal")
    assert done.returncode != 0
    assert "SECRET_KEY and FACEPORTAL_API_KEY_PEPPER must be set" in done.stderr.strip().splitlines()[-1]
    ok = settings_of(tmp_path, DATABASE_URL="postgres://postgres@127.0.0.1:5432/faceportal",
                     SECRET_KEY="s" * 50, FACEPORTAL_API_KEY_PEPPER="the-pepper")
    assert loaded(ok)["pepper"] == "the-pepper"


def test_an_embedded_install_that_issued_keys_keeps_them_working(tmp_path):
    """Keys issued before this release were hashed with the legacy fallback; it is frozen into var/."""
    legacy = "dev-insecure-faceportal-key-change-me-in-production"
    before = default_env(DJANGO_SETTINGS_MODULE="faceportal.settings", FACEPORTAL_VAR_DIR=str(tmp_path / "var"),
                         FACEPORTAL_API_KEY_PEPPER=legacy)  # what the old fallback amounted to
    manage("migrate", "--noinput", cwd=REPO_ROOT, env=before)
    manage("create_org", "acme", cwd=REPO_ROOT, env=before)
    key = manage("create_api_key", "acme", "--user", "alice", "--name", "old", cwd=REPO_ROOT, env=before)
    (tmp_path / "var" / "api_key_pepper").unlink(missing_ok=True)
    (tmp_path / "var" / "secret_key").unlink(missing_ok=True)

    after = default_env(DJANGO_SETTINGS_MODULE="faceportal.settings", FACEPORTAL_VAR_DIR=str(tmp_path / "var"))
    verified = manage("shell", "-c", f"from apikeys.services import api_key_verify; "
                      f"print(api_key_verify(raw_key='{key}') is not None)", cwd=REPO_ROOT, env=after)
    assert verified.splitlines()[-1] == "True"
    assert (tmp_path / "var" / "api_key_pepper").read_text() == legacy


def test_make_run_refuses_a_public_bind_without_secret_key(tmp_path):
    env = default_env(FACEPORTAL_VAR_DIR=str(tmp_path / "var"))
    done = subprocess.run([sys.executable, "-m", "faceportal.startup", "--host", "0.0.0.0", "--port", "8000",
                           "--no-migrate"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "refusing to listen on 0.0.0.0 without SECRET_KEY" in done.stderr
    env["SECRET_KEY"] = "r" * 50
    done = subprocess.run([sys.executable, "-m", "faceportal.startup", "--host", "0.0.0.0", "--port", "8000",
                           "--no-migrate"], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "ALLOWED_HOSTS" in done.stdout and "400 Bad Request" in done.stdout
