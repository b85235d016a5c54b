"""docs/CONFIGURATION.md's table is the list of what an operator can set: every environment variable
the service reads is a row there, and every row is a variable something reads."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The service's own code: the apps, the kernel and the wiring (benches and tests read their own).
PACKAGES = ("faceportal", "organizations", "apikeys", "faces", "recognition", "console")
# Read by a library the service configures through the environment, not by our code.
READ_BY_LIBRARIES = {"DEEPFACE_BACKEND_ENGINE"}
# The readers of faceportal/environment.py, and the standard library's.
READERS = {"env_str", "env_bool", "env_int", "env_float", "env_list", "env_choice", "env_rate", "raw", "get", "getenv"}


def variables_read() -> set[str]:
    names = set()
    for package in PACKAGES:
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
                if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)):
                    continue
                function = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
                reads_environment = function in READERS and (
                    function != "get" or ast.unparse(node.func.value) in {"os.environ", "environ"})
                value = node.args[0].value
                if reads_environment and isinstance(value, str) and re.fullmatch(r"[A-Z][A-Z0-9_]+", value):
                    names.add(value)
    return names - {"DJANGO_SETTINGS_MODULE"}


def documented() -> set[str]:
    table = (REPO / "docs" / "CONFIGURATION.md").read_text()
    return set(re.findall(r"^\|\s*`([A-Z][A-Z0-9_]+)`\s*\|", table, flags=re.MULTILINE))


def test_every_variable_the_service_reads_has_a_row_and_every_row_is_read():
    read = variables_read()
    assert {"DATABASE_URL", "REDIS_URL", "DEEPFACE_HOME", "FACEPORTAL_MAX_BODY_BYTES"} <= read  # the scan works
    assert sorted(read - documented()) == [], "undocumented: add a row to docs/CONFIGURATION.md"
    assert sorted(documented() - read - READ_BY_LIBRARIES) == [], "documented but read by nothing"
