"""FaceEngine: detect once, align once, embed all faces of an image in one batch.

All model work runs in one process-wide thread pool sized to the cores: its threads keep their
models loaded (engine/cache.py), the event loop never runs a model, and CPU work stays bounded.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field

import cv2
import numpy as np
from django.conf import settings

from faces.engine.alignment import EyeAligner, FacenetAligner, FivePointAligner
from faces.engine.base import Aligner, DetectedFace, Detector, EmbeddedFace, Embedder, FaceBox
from faces.engine.cache import detector_cache_key, model_load_seconds
from faces.engine.config import EngineConfig
from faces.engine.detection import DeepFaceDetector
from faces.engine.embedder import DeepFaceEmbedder
from faces.engine.pool import EnginePool
from faces.engine.weights import prepare_deepface_home

logger = logging.getLogger(__name__)

CROP_MAX_SIDE = 200
CROP_CONTEXT = 0.5  # keep half a face of context on each side: enough to detect again later
# Below this standard deviation of pixel values (0-255) an image has no contrast to hold a face
# (every photo of ../shared/faces measures above 20).
BLANK_STD = 1.5

_pool: EnginePool | None = None
_pool_lock = threading.Lock()
_pool_threads: set[int] = set()


def _register_pool_thread() -> None:
    _pool_threads.add(threading.get_ident())


def _engine_pool() -> EnginePool:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = EnginePool(workers=max(1, settings.FACEPORTAL_ENGINE_WORKERS), name="face-engine",
                               initializer=_register_pool_thread)
        return _pool


_in_flight = 0  # tasks submitted to the pool and not finished (queued or running)
_in_flight_lock = threading.Lock()


def _finished(_future: Future) -> None:
    global _in_flight
    with _in_flight_lock:
        _in_flight -= 1


def _submitted(submit, fn, args, kwargs) -> Future:
    global _in_flight
    with _in_flight_lock:
        _in_flight += 1
    try:
        future = submit(fn, *args, **kwargs)
    except BaseException:
        _finished(None)  # type: ignore[arg-type]
        raise
    future.add_done_callback(_finished)
    return future


def run_in_engine_pool(fn, /, *args, **kwargs) -> Future:
    return _submitted(_engine_pool().submit, fn, args, kwargs)


def call_in_engine_pool_ranked(rank: float, fn, /, *args, **kwargs):
    """`call_in_engine_pool`, for a client served `rank` times lately: the less served go first."""
    if on_engine_thread():
        return fn(*args, **kwargs)
    return _submitted(functools.partial(_engine_pool().submit_ranked, rank), fn, args, kwargs).result()


def run_in_engine_background(fn, /, *args, **kwargs) -> Future:
    """`fn` on an engine thread once no frame or request waits for one (never waited for in a frame)."""
    return _submitted(_engine_pool().submit_background, fn, args, kwargs)


def engine_pool_in_flight() -> int:
    """Engine tasks queued or running now: background work waits while the pool is full."""
    return _in_flight


def engine_pool_size() -> int:
    return max(1, settings.FACEPORTAL_ENGINE_WORKERS)


def on_engine_thread() -> bool:
    return threading.get_ident() in _pool_threads


def call_in_engine_pool(fn, /, *args, **kwargs):
    """`fn(*args, **kwargs)` on an engine-pool thread, waited for; inline when already on one."""
    if on_engine_thread():
        return fn(*args, **kwargs)
    return run_in_engine_pool(fn, *args, **kwargs).result()


def map_in_engine_pool(fn, items: list) -> list:
    """`[fn(item) for item in items]` spread over the pool's threads (in order), inline when on one."""
    if len(items) < 2 or on_engine_thread():
        return [fn(item) for item in items]
    futures = [run_in_engine_pool(fn, item) for item in items]
    return [future.result() for future in futures]


def in_engine_pool(method):
    """Run the method on an engine-pool thread and wait, unless already on one."""

    @functools.wraps(method)
    def wrapper(*args, **kwargs):
        if on_engine_thread():
            return method(*args, **kwargs)
        return run_in_engine_pool(method, *args, **kwargs).result()

    return wrapper

def is_blank(image_bgr: np.ndarray) -> bool:
    """Next to no contrast anywhere (one colour, give or take a few stray pixels): no face can be
    in it. Measured on a sparse grid, so it costs about a millisecond even for a large image."""
    height, width = image_bgr.shape[:2]
    step = max(1, max(height, width) // 256)
    # The grid by OpenCV's nearest-neighbour resize, then one pass over it: copying NumPy's strided
    # view costs a video frame several times as much.
    sample = cv2.resize(image_bgr, (max(1, width // step), max(1, height // step)), interpolation=cv2.INTER_NEAREST)
    return float(cv2.meanStdDev(sample.reshape(-1, 1))[1][0, 0]) < BLANK_STD


@dataclass
class EngineResult:
    faces: list[EmbeddedFace]
    image_size: tuple[int, int]  # width, height
    timings_ms: dict[str, float] = field(default_factory=dict)
    faces_dropped: int = 0  # detected beyond FACEPORTAL_MAX_FACES_PER_IMAGE, never embedded
    # The second model's embeddings of some of these faces (by position), computed on demand: the
    # decision asks only for faces the first model cannot decide alone. None: no second model.
    second: Callable[[list[int]], np.ndarray] | None = None


# A tracked face's window for a closer look: its box and half its size again on every side (the box is
# an earlier frame's, and the face may have moved), aligned to the detector's largest stride
# (RetinaFace: 32 px). A box found in this very frame, only imprecisely, needs a quarter.
NEAR_CONTEXT = 0.5
REFINE_CONTEXT = 0.25
ANCHOR_GRID = 32
# A closer look shrinks its window until the face's shorter side is about this many pixels: dlib's
# chip is 150 px, and points found at this size gave embeddings closer to the full-size look's
# (cosine 0.997 on bench/ws.py's frames) than two frames of the same video are to each other (0.9966),
# for 40% of the full-size look's time.
NEAR_FACE_PIXELS = 128


def _shifted(face: DetectedFace, dx: int, dy: int) -> DetectedFace:
    def point(p: tuple[float, float] | None) -> tuple[float, float] | None:
        return None if p is None else (p[0] + dx, p[1] + dy)

    return dataclasses.replace(
        face, box=FaceBox(x=face.box.x + dx, y=face.box.y + dy, w=face.box.w, h=face.box.h),
        left_eye=point(face.left_eye), right_eye=point(face.right_eye),
        landmarks=None if face.landmarks is None else tuple(point(p) for p in face.landmarks),
    )


def prominence(face: DetectedFace, width: int, height: int) -> float:
    """Large and central wins: area, discounted by distance from the image centre."""
    cx = (face.box.x + face.box.w / 2) / width - 0.5
    cy = (face.box.y + face.box.h / 2) / height - 0.5
    offset = min(1.0, (cx * cx + cy * cy) ** 0.5 / 0.7071)
    return face.box.area * (1.0 - 0.5 * offset)


def context_crop_jpeg(image_bgr: np.ndarray, face: DetectedFace) -> bytes:
    height, width = image_bgr.shape[:2]
    box = face.box
    pad_x, pad_y = int(box.w * CROP_CONTEXT), int(box.h * CROP_CONTEXT)
    x0, y0 = max(0, box.x - pad_x), max(0, box.y - pad_y)
    x1, y1 = min(width, box.x + box.w + pad_x), min(height, box.y + box.h + pad_y)
    crop = image_bgr[y0:y1, x0:x1]
    longest = max(crop.shape[:2])
    if longest > CROP_MAX_SIDE:
        scale = CROP_MAX_SIDE / longest
        crop = cv2.resize(crop, (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale))),
                          interpolation=cv2.INTER_AREA)
    ok, encoded = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 85])
    return encoded.tobytes() if ok else b""


class FaceEngine:
    """Detect, align and embed, from one configuration; each role can be given instead (benches,
    tests), as long as it keeps its protocol (faces/engine/base.py)."""

    def __init__(self, config: EngineConfig, *, detector: Detector | None = None, aligner: Aligner | None = None,
                 embedder: Embedder | None = None, detect_min_side: int = 400):
        self.config = config
        self.detector: Detector = detector or DeepFaceDetector(
            config.detector_backend, max_side=config.detect_max_side, min_side=detect_min_side, config=config)
        self.embedder: Embedder = embedder or DeepFaceEmbedder(
            config.embedder_model, dlib_runtime=config.dlib_runtime, weights=config.weights)
        self.min_face_pixels = config.min_face_pixels
        self._aligner: Aligner | None = aligner
        # The second model (faces/engine/facenet_onnx_client.py): its own embedder and aligner roles,
        # loaded on first use, so a frame the first model decides alone never pays for it.
        self.second_embedder: Embedder | None = DeepFaceEmbedder(
            config.second_model, runtime="onnx", weights=config.weights, flip=config.second_flip,
        ) if config.second_model else None
        self.second_aligner: Aligner | None = FacenetAligner() if config.second_model else None
        self.second_faces = 0  # faces the second model has embedded (the bench reports how often it runs)

    @property
    def max_faces(self) -> int:
        """Faces embedded per image; read per call, so a settings change applies at once (0: no cap)."""
        return settings.FACEPORTAL_MAX_FACES_PER_IMAGE

    @property
    def model_name(self) -> str:
        return self.embedder.name

    @property
    def combination(self) -> str:
        """The models that decide together ("Dlib+Facenet512"): the calibration's name."""
        return self.config.combination if self.second_embedder is not None else self.model_name

    @property
    def detector_name(self) -> str:
        return self.detector.name

    @property
    def aligner(self) -> Aligner:
        if self._aligner is None:
            if self.embedder.name == "Dlib":
                self._aligner = FivePointAligner()
            else:
                self._aligner = EyeAligner(size=self.embedder.input_size)
        return self._aligner

    @in_engine_pool
    def warm(self) -> None:
        """Load every model on this pool thread (start-up calls it once per thread)."""
        self.detector.load()
        self.embedder.load()
        self.aligner.load()
        if self.second_embedder is not None:
            self.second_embedder.load()

    @functools.cached_property
    def dimension(self) -> int:
        return run_in_engine_pool(lambda: self.embedder.dimension).result()


    def _detect(self, image_bgr: np.ndarray) -> list[DetectedFace]:
        height, width = image_bgr.shape[:2]
        if is_blank(image_bgr):
            return []  # a covered camera or a bomb's filler decodes to one colour: no detector run
        faces = [
            face for face in self.detector.detect(image_bgr)
            if min(face.box.w, face.box.h) >= self.min_face_pixels
        ]
        return sorted(faces, key=lambda face: prominence(face, width, height), reverse=True)

    @in_engine_pool
    def faces_in(self, image_bgr: np.ndarray, *, most_prominent_only: bool = False,
                 with_crops: bool = False) -> EngineResult:
        """Every face in the image, most prominent first, each with its embedding."""
        timings: dict[str, float] = {}
        started = time.perf_counter()
        faces = self._detect(image_bgr)
        detected = len(faces)
        # Alignment and embedding cost grows with each face: past the cap only the most prominent
        # (largest, then most central) are kept, and the answer says how many were left out.
        faces = faces[:1] if most_prominent_only else faces[:self.max_faces or None]
        timings["detect"] = (time.perf_counter() - started) * 1000
        mark = time.perf_counter()
        chips = self.aligner.align(image_bgr, faces)
        timings["align"] = (time.perf_counter() - mark) * 1000
        mark = time.perf_counter()
        vectors = self.embedder.embed(chips)
        timings["embed"] = (time.perf_counter() - mark) * 1000
        results = [
            EmbeddedFace(
                detection=face,
                embedding=vectors[i],
                crop_jpeg=context_crop_jpeg(image_bgr, face) if with_crops else b"",
            )
            for i, face in enumerate(faces)
        ]
        height, width = image_bgr.shape[:2]
        second = None
        if self.second_embedder is not None and faces:
            def second(positions: list[int]) -> np.ndarray:
                return self.second_embeddings(image_bgr, [faces[i] for i in positions])
        return EngineResult(faces=results, image_size=(width, height), timings_ms=timings,
                            faces_dropped=0 if most_prominent_only else detected - len(faces), second=second)

    @in_engine_pool
    def second_embeddings(self, image_bgr: np.ndarray, faces: list[DetectedFace]) -> np.ndarray:
        """The second model's L2-normalised embeddings of these detected faces, (n, D)."""
        if self.second_embedder is None or self.second_aligner is None:
            raise RuntimeError("this engine has no second model")
        if not faces:
            return np.zeros((0, self.second_embedder.dimension), dtype=np.float32)
        self.second_faces += len(faces)
        return self.second_embedder.embed(self.second_aligner.align(image_bgr, faces))


    # Video frames (recognition/tracking.py): detection and embedding apart, so a face tracked across
    # frames is embedded only when its track needs it, and a frame of large faces is detected smaller.

    @in_engine_pool
    def detect_faces(self, image_bgr: np.ndarray, *, scale: float = 1.0) -> list[DetectedFace]:
        """Faces in the image, most prominent first, not capped (`max_faces` says how many to embed);
        with `scale` below 1, one detector pass on a copy that much smaller (boxes in the image's own
        coordinates)."""
        height, width = image_bgr.shape[:2]
        if is_blank(image_bgr):
            return []
        if scale >= 1.0 or not hasattr(self.detector, "detect_at"):
            faces = self._detect(image_bgr)
        else:
            faces = sorted((face for face in self.detector.detect_at(image_bgr, scale=scale)
                            if min(face.box.w, face.box.h) >= self.min_face_pixels),
                           key=lambda face: prominence(face, width, height), reverse=True)
        return faces

    def detect_faces_near(self, image_bgr: np.ndarray, box: FaceBox, *, context: float = NEAR_CONTEXT,
                          face_pixels: int | None = NEAR_FACE_PIXELS) -> list[DetectedFace]:
        """Faces found in `box` widened by `context` of its size on every side, in the image's own
        coordinates: a tracked face's precise box and points for a fraction of a whole frame's
        detection. The window is detected at the scale that makes the face `face_pixels` on its
        shorter side (never above full size; None: full size)."""
        height, width = image_bgr.shape[:2]
        scale = 1.0 if not face_pixels else min(1.0, face_pixels / max(1, min(box.w, box.h)))
        dx, dy = round(box.w * context), round(box.h * context)
        x0 = max(0, box.x - dx) // ANCHOR_GRID * ANCHOR_GRID
        y0 = max(0, box.y - dy) // ANCHOR_GRID * ANCHOR_GRID
        x1, y1 = min(width, box.x + box.w + dx), min(height, box.y + box.h + dy)
        if x1 - x0 >= width and y1 - y0 >= height or not hasattr(self.detector, "detect_at"):
            return self.detect_faces(image_bgr, scale=scale)
        window = image_bgr[y0:y1, x0:x1]
        if window.size == 0 or is_blank(window):
            return []
        found = [_shifted(face, x0, y0) for face in self.detector.detect_at(window, scale=scale)
                 if min(face.box.w, face.box.h) >= self.min_face_pixels]
        return sorted(found, key=lambda face: prominence(face, width, height), reverse=True)

    @in_engine_pool
    def embed_detected(self, image_bgr: np.ndarray, faces: list[DetectedFace], *,
                       with_crops: bool = False) -> list[EmbeddedFace]:
        """Align and embed these faces of the image, in one batch."""
        if not faces:
            return []
        vectors = self.embedder.embed(self.aligner.align(image_bgr, faces))
        return [EmbeddedFace(detection=face, embedding=vectors[i],
                             crop_jpeg=context_crop_jpeg(image_bgr, face) if with_crops else b"")
                for i, face in enumerate(faces)]

# Pool threads whose warm-up raised, with the error's type: readiness stays false while any did.
_warm_failures: dict[int, str] = {}


def warm_in_background() -> list[Future]:
    """Load the models on every engine-pool thread without holding up start-up."""
    if not settings.FACEPORTAL_WARM_ENGINE:
        return []
    workers = max(1, settings.FACEPORTAL_ENGINE_WORKERS)
    barrier = threading.Barrier(workers)

    def warm_one() -> None:
        try:
            get_engine().warm()
            _warm_failures.pop(threading.get_ident(), None)
        except Exception as exc:  # a future nobody reads would drop it: log it, and stay not ready
            _warm_failures[threading.get_ident()] = type(exc).__name__
            logger.exception("face engine warm-up failed")
        finally:
            try:
                barrier.wait(timeout=120)  # hold this thread so the next task lands on another one
            except threading.BrokenBarrierError:
                pass

    return [run_in_engine_pool(warm_one) for _ in range(workers)]


def engine_warm_failure() -> str | None:
    """The error type of a failed warm-up (None when every warm-up that ran succeeded)."""
    return next(iter(_warm_failures.values()), None)


def engine_loaded() -> bool:
    """Both the detector and the embedder have loaded (on some pool thread), and no warm-up failed."""
    if _engine is None or _warm_failures:
        return False
    loaded = model_load_seconds()
    return detector_cache_key(_engine.detector.name) in loaded and _engine.embedder.cache_key in loaded


_engine: FaceEngine | None = None
_engine_lock = threading.Lock()


def get_engine() -> FaceEngine:
    global _engine
    with _engine_lock:
        if _engine is None:
            config = EngineConfig.from_settings()
            prepare_deepface_home(config.home)
            _engine = FaceEngine(config)
        return _engine
