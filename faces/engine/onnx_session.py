"""The one way the engine opens an ONNX Runtime session (RetinaFace and dlib's ResNet alike)."""

from __future__ import annotations

from pathlib import Path


def build_session(path: Path | str, *, threads: int = 1, memory_arena: bool = True):
    """One intra-op thread by default: the engine pool supplies the parallelism, one request per core.

    With more intra-op threads per session, two concurrent requests would each try to use every
    core and contend; with one, N pool threads scale to N cores (ORT releases the GIL in `run`).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    options.enable_cpu_mem_arena = memory_arena
    return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
