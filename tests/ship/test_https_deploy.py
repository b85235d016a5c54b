"""Served over https (behind a proxy that says so, or directly): `manage.py check --deploy` finds
HSTS and secure session and CSRF cookies in place, and a request the proxy marks https gets them.

Each case is a fresh process with only the variables under test (embedded database in a
temporary folder), as `make run` or the Compose stack would start.
"""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.ship.live_server import REPO_ROOT, default_env

# What check --deploy says when these are missing: HSTS, session cookie, CSRF cookie.
HTTPS_CHECKS = ("security.W004", "security.W012", "security.W016")

REQUEST = ("import django; django.setup(); from django.test import Client; "
           "r = Client().get('/admin/login/', HTTP_HOST='portal.example', **EXTRA); "
           "print(r.status_code, r.headers.get('Strict-Transport-Security'), r.cookies['csrftoken']['secure'] or '-')")


def run(tmp_path, code_or_args: list[str], **env: str) -> str:
    full = default_env(DJANGO_SETTINGS_MODULE="faceportal.settings", FACEPORTAL_VAR_DIR=str(tmp_path / "var"),
                       ALLOWED_HOSTS="portal.example", **env)
    done = subprocess.run([sys.executable, *code_or_args], cwd=REPO_ROOT, env=full, capture_output=True, text=True,
                          timeout=120)
    return done.stdout + done.stderr


@pytest.mark.parametrize(("env", "request_header"), [
    ({"FACEPORTAL_SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto"}, ("HTTP_X_FORWARDED_PROTO", "https")),
    ({"FACEPORTAL_SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto=https"}, ("HTTP_X_FORWARDED_PROTO", "https")),
    ({"FACEPORTAL_SECURE_PROXY_SSL_HEADER": "X-Forwarded-Ssl=on"}, ("HTTP_X_FORWARDED_SSL", "on")),
    ({"FACEPORTAL_HTTPS": "true"}, ("secure", True)),
])
def test_https_deployments_pass_the_deploy_check_and_send_hsts_and_secure_cookies(tmp_path, env, request_header):
    report = run(tmp_path, ["manage.py", "check", "--deploy"], **env)
    assert "System check identified" in report or "no issues" in report, report
    for check in HTTPS_CHECKS:
        assert check not in report, report
    header, value = request_header
    answered = run(tmp_path, ["-c", f"EXTRA = {{{header!r}: {value!r}}}; " + REQUEST], **env).split()
    assert answered[:1] == ["200"], answered
    assert answered[1].startswith("max-age=") and int(answered[1].split("=")[1]) >= 15_552_000, answered
    assert answered[2] == "True", answered  # the CSRF cookie is Secure


def test_plain_http_is_still_what_the_deploy_check_warns_about(tmp_path):
    # Without https configured the checks still fire: this is what the cases above must not show.
    report = run(tmp_path, ["manage.py", "check", "--deploy"])
    for check in HTTPS_CHECKS:
        assert check in report, report


@pytest.mark.parametrize("value", ["X Forwarded", "X-Forwarded-Proto:https", "Ünïcode"])
def test_a_malformed_proxy_header_setting_stops_the_start(tmp_path, value):
    report = run(tmp_path, ["manage.py", "check"], FACEPORTAL_SECURE_PROXY_SSL_HEADER=value)
    assert "FACEPORTAL_SECURE_PROXY_SSL_HEADER" in report, report
