"""The house's import rules (docs/ARCHITECTURE.md, "Cross-app calls"), read from the source itself.

Every import counts, inside functions too: a function-local import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# The chain, from the base out: each app may import only itself and the apps before it.
APPS = ("organizations", "apikeys", "faces", "recognition", "console")
# The project's wiring in faceportal/ sits above every app: it may import any of them, and no app
# imports it. Every other module of faceportal/ is the kernel, which imports no app.
WIRING = {"urls", "asgi", "wsgi", "routing", "settings", "startup", "server", "health", "middleware", "views"}


def imported_modules(path: Path) -> set[str]:
    """Every module `path` imports; `from a import b` counts as both `a` and `a.b`."""
    modules = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            modules.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules.add(node.module)
            modules.update(f"{node.module}.{alias.name}" for alias in node.names)
    return modules


def sources(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


def test_each_app_imports_only_the_apps_before_it():
    found = set()
    for position, app in enumerate(APPS):
        later = APPS[position + 1:]
        for path in sources(app):
            found.update((str(path.relative_to(REPO)), module.split(".")[0])
                         for module in imported_modules(path) if module.split(".")[0] in later)
    assert found == set(), "an app imports one that builds on it: send a signal instead"


def test_the_kernel_imports_no_app_and_no_app_imports_the_wiring():
    wiring = {f"faceportal.{name}" for name in WIRING}
    for path in sources("faceportal"):
        if path.stem in WIRING:
            continue
        apps = {module.split(".")[0] for module in imported_modules(path)} & set(APPS)
        assert not apps, f"{path.relative_to(REPO)} is kernel but imports {apps}"
    for app in APPS:
        for path in sources(app):
            borrowed = {module for module in imported_modules(path) if module in wiring}
            assert not borrowed, f"{path.relative_to(REPO)} imports the project's wiring {borrowed}"


def test_the_engine_and_the_vector_store_never_import_each_other():
    for folder, other in (("faces/engine", "faces.index"), ("faces/index", "faces.engine")):
        for path in sources(folder):
            crossing = {module for module in imported_modules(path)
                        if module == other or module.startswith(other + ".")}
            assert not crossing, f"{path.relative_to(REPO)} imports {crossing}"


def test_no_app_borrows_another_apps_api_module():
    # Shared API plumbing lives in the kernel (serializers, fields, permissions) and the tenant base
    # view in apikeys/tenant_api.py, not in one app's apis.py that the others import.
    for app in APPS:
        for path in sources(app):
            borrowed = {module for module in imported_modules(path)
                        if module.endswith(".apis") and module.split(".")[0] != app}
            assert not borrowed, f"{path.relative_to(REPO)} imports {borrowed}"


# What turns a false-match rate, a calibration or a model into a similarity to reach.
THRESHOLD_MAKERS = {"effective_threshold", "for_offset", "threshold_for", "tail_threshold", "offsets",
                    "uncalibrated_threshold_for", "UNCALIBRATED_THRESHOLDS"}


def test_only_the_decision_module_computes_a_threshold():
    # faces/decision.py holds the rules and faces/matching.py applies them; faces/calibration/ and
    # the calibration commands under faces/management build the tables the rules read.
    home = {"faces/decision.py", "faces/matching.py"}
    for package in (*APPS, "faceportal"):
        for path in sources(package):
            relative = str(path.relative_to(REPO))
            if relative in home or relative.startswith(("faces/calibration/", "faces/management/")):
                continue
            tree = ast.parse(path.read_text(), filename=relative)
            # Methods called on a calibration or threshold, and names imported from the decision module.
            used = {node.attr for node in ast.walk(tree) if isinstance(node, ast.Attribute)}
            used |= {alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) for alias in node.names}
            assert not used & THRESHOLD_MAKERS, f"{relative} computes a threshold: {used & THRESHOLD_MAKERS}"
