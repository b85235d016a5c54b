"""ONNX graphs converted from packaged weights once per source file, by the converters in
dlib_onnx.py and facenet_onnx.py."""

from __future__ import annotations

import os
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

_convert_lock = threading.Lock()  # engine threads warming at once convert once, not once each


def converted_once(*, source: Path, target: Path, build: Callable[[Path], Any]) -> Path:
    """`target`, built from `source` by `build` (an ONNX ModelProto) when it does not exist yet.

    Written to a temporary file and renamed, so concurrent workers never read half a graph."""
    if target.exists():
        return target
    with _convert_lock:
        if not target.exists():
            _write(build(source), target)
    return target


def _write(model: Any, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(model.SerializeToString())
        os.chmod(temporary, 0o644)  # mkstemp makes it private; a non-root service user reads it
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
