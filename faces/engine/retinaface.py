"""RetinaFace-MobileNet0.25 on ONNX Runtime: our own priors, decoding and NMS, and a DeepFace client.

The graph (biubug6's Pytorch_Retinaface, trained on WIDER FACE; see retinaface_weights.py) takes a
BGR image minus the per-channel mean, NCHW, any size, and returns for every prior a box offset, a
(background, face) softmax and five landmark offsets. Priors are biubug6's `PriorBox`: strides 8,
16 and 32 with square anchors of 16/32, 64/128 and 256/512 pixels, decoded with variances 0.1/0.2.

`RetinaFaceOnnxClient` implements DeepFace's `Detector`, registered as `retinaface-onnx`, so it is
chosen like any DeepFace detector (`DEEPFACE_DETECTOR_BACKEND`). TensorFlow is never imported here.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from deepface.models.Detector import Detector, FacialAreaRegion

from faces.engine.config import EngineConfig, current_config
from faces.engine.onnx_session import build_session

BACKEND_NAME = "retinaface-onnx"

MEAN_BGR = np.array([104.0, 117.0, 123.0], dtype=np.float32)
STEPS = (8, 16, 32)
ANCHORS = ((16, 32), (64, 128), (256, 512))
VARIANCE_CENTER, VARIANCE_SIZE = 0.1, 0.2

# Chosen on ../shared/faces (docs/DETECTOR.md): every face photo and group face found, no box on a
# no-face photo. One pass: the lowest real face scored 0.858, the highest false box 0.825.
DEFAULT_SCORE_THRESHOLD = 0.85
# Faces only the 2x pass adds: a face cut off by the frame scored 0.615, the best doubtful box 0.486.
DEFAULT_UPSCALED_THRESHOLD = 0.55
# Images whose longest side is below this also get the 2x pass (the smallest anchor is 16 px and
# cut-off faces score low); 640x480 frames and larger photos pay for one pass.
DEFAULT_UPSCALE_BELOW = 640
DEFAULT_NMS_IOU = 0.4
PRE_NMS_TOP_K = 1000


@dataclass(frozen=True)
class Detections:
    """Faces in image pixels: boxes (N, 4) as x0, y0, x1, y1; scores (N,); landmarks (N, 5, 2).

    Landmarks in the network's order, as seen in the image: eye on the left, eye on the right, nose
    tip, mouth corner on the left, mouth corner on the right.
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray

    def __len__(self) -> int:
        return len(self.scores)

    @classmethod
    def empty(cls) -> Detections:
        return cls(np.zeros((0, 4), np.float32), np.zeros((0,), np.float32), np.zeros((0, 5, 2), np.float32))

    def scaled(self, factor: float) -> Detections:
        return Detections(self.boxes * factor, self.scores, self.landmarks * factor)


@functools.lru_cache(maxsize=16)
def priors(height: int, width: int) -> np.ndarray:
    """(P, 4) anchors in pixels as cx, cy, size, size, in the order the graph emits them."""
    rows = []
    for step, sizes in zip(STEPS, ANCHORS, strict=True):
        fh, fw = -(-height // step), -(-width // step)  # ceil: each stride-2 conv pads by one
        ys, xs = np.meshgrid(np.arange(fh), np.arange(fw), indexing="ij")
        centres = np.stack([(xs.ravel() + 0.5) * step, (ys.ravel() + 0.5) * step], axis=1)
        for_sizes = np.repeat(centres, len(sizes), axis=0)
        anchor = np.tile(np.asarray(sizes, dtype=np.float64), fh * fw)[:, None]
        rows.append(np.hstack([for_sizes, anchor, anchor]))
    table = np.vstack(rows).astype(np.float32)
    table.flags.writeable = False
    return table


def decode(loc: np.ndarray, landmarks: np.ndarray, anchors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Offsets to boxes (x0, y0, x1, y1) and landmarks (5, 2), in pixels."""
    centres, sizes = anchors[:, :2], anchors[:, 2:]
    box_centres = centres + loc[:, :2] * VARIANCE_CENTER * sizes
    box_sizes = sizes * np.exp(loc[:, 2:] * VARIANCE_SIZE)
    boxes = np.hstack([box_centres - box_sizes / 2, box_centres + box_sizes / 2])
    points = centres[:, None, :] + landmarks.reshape(-1, 5, 2) * VARIANCE_CENTER * sizes[:, None, :]
    return boxes, points


def nms(boxes: np.ndarray, scores: np.ndarray, *, iou_threshold: float) -> np.ndarray:
    """Greedy non-maximum suppression; indices kept, best score first."""
    order = np.argsort(-scores, kind="stable")
    x0, y0, x1, y1 = boxes[:, 0], boxes[:, 1], boxes[:, 2], boxes[:, 3]
    areas = np.maximum(0, x1 - x0) * np.maximum(0, y1 - y0)
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(best)
        w = np.maximum(0, np.minimum(x1[best], x1[rest]) - np.maximum(x0[best], x0[rest]))
        h = np.maximum(0, np.minimum(y1[best], y1[rest]) - np.maximum(y0[best], y0[rest]))
        inter = w * h
        iou = inter / np.maximum(areas[best] + areas[rest] - inter, 1e-9)
        order = rest[iou <= iou_threshold]
    return np.asarray(keep, dtype=np.int64)


class RetinaFaceOnnx:
    """One ONNX Runtime session (not shared between threads: the engine builds one per thread)."""

    def __init__(self, model_path: str, *, score_threshold: float = DEFAULT_SCORE_THRESHOLD,
                 upscaled_threshold: float = DEFAULT_UPSCALED_THRESHOLD, nms_iou: float = DEFAULT_NMS_IOU,
                 upscale_below: int = DEFAULT_UPSCALE_BELOW, threads: int = 1):
        self.session = build_session(model_path, threads=threads)
        self.input_name = self.session.get_inputs()[0].name
        self.score_threshold = score_threshold
        self.upscaled_threshold = upscaled_threshold
        self.nms_iou = nms_iou
        self.upscale_below = upscale_below

    def run(self, image_bgr: np.ndarray, *, score_threshold: float | None = None) -> Detections:
        """One pass at the image's own size."""
        threshold = self.score_threshold if score_threshold is None else score_threshold
        height, width = image_bgr.shape[:2]
        blob = np.subtract(image_bgr, MEAN_BGR, dtype=np.float32).transpose(2, 0, 1)[None]
        loc, conf, landmarks = self.session.run(None, {self.input_name: np.ascontiguousarray(blob)})
        scores = conf[0, :, 1]
        candidates = np.flatnonzero(scores > threshold)
        if candidates.size == 0:
            return Detections.empty()
        if candidates.size > PRE_NMS_TOP_K:
            candidates = candidates[np.argsort(-scores[candidates])[:PRE_NMS_TOP_K]]
        boxes, points = decode(loc[0, candidates], landmarks[0, candidates], priors(height, width)[candidates])
        kept = nms(boxes, scores[candidates], iou_threshold=self.nms_iou)
        return Detections(boxes[kept], scores[candidates][kept], points[kept])

    def detect(self, image_bgr: np.ndarray) -> Detections:
        """A pass at the image's own size and, for a small image only, one more at twice the size.

        The smallest anchor is 16 px and faces cut by the frame score low, so a small image gets a
        second look; faces it adds must not sit on one already found. Large images and 640x480
        frames pay for one pass.
        """
        found = self.run(image_bgr)
        height, width = image_bgr.shape[:2]
        if max(height, width) < self.upscale_below:
            import cv2

            larger = cv2.resize(image_bgr, (width * 2, height * 2), interpolation=cv2.INTER_LINEAR)
            extra = self.run(larger, score_threshold=self.upscaled_threshold).scaled(0.5)
            found = merge(found, extra)
        return drop_straddling(found)


def _centres_inside(centres: np.ndarray, box: np.ndarray) -> np.ndarray:
    return ((centres[:, 0] > box[0]) & (centres[:, 0] < box[2])
            & (centres[:, 1] > box[1]) & (centres[:, 1] < box[3]))


def drop_straddling(found: Detections) -> Detections:
    """Drop a box whose centre lies inside a better-scoring box.

    Two faces side by side can yield a box between them, centred on one face's cheek; its IoU with
    either face is too low for NMS, but a real face is never centred inside another face's box.
    """
    if len(found) < 2:
        return found
    order = np.argsort(-found.scores, kind="stable")
    boxes = found.boxes[order]
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    keep = np.ones(len(order), dtype=bool)
    for i in range(len(order)):
        if keep[i]:
            later = _centres_inside(centres[i + 1:], boxes[i])
            keep[i + 1:] &= ~later
    kept = order[keep]
    return Detections(found.boxes[kept], found.scores[kept], found.landmarks[kept])


def merge(first: Detections, second: Detections) -> Detections:
    """Both passes' faces; one of the second pass is added only where the first found nothing."""
    if not len(second):
        return first
    if not len(first):
        return second
    centres = (second.boxes[:, :2] + second.boxes[:, 2:]) / 2
    first_centres = (first.boxes[:, :2] + first.boxes[:, 2:]) / 2
    new = np.ones(len(second), dtype=bool)
    for box in first.boxes:
        new &= ~_centres_inside(centres, box)
    for j, box in enumerate(second.boxes):
        if _centres_inside(first_centres, box).any():
            new[j] = False
    return Detections(
        np.vstack([first.boxes, second.boxes[new]]),
        np.concatenate([first.scores, second.scores[new]]),
        np.vstack([first.landmarks, second.landmarks[new]]),
    )


def _point(xy: np.ndarray) -> tuple[float, float]:
    return float(xy[0]), float(xy[1])


class RetinaFaceOnnxClient(Detector):
    """DeepFace detector client. Eyes and mouth corners are named from the person's side, as DeepFace's
    own `retinaface` client does: `left_eye` is the person's left eye, on the right of the image."""

    def __init__(self, config: EngineConfig | None = None) -> None:
        # Imported here so `python -m faces.engine.retinaface_weights` finds it not yet imported.
        from faces.engine.retinaface_weights import require_onnx

        # DeepFace builds detectors with no arguments; the engine passes its own configuration.
        config = config or current_config()
        tuned = {"score_threshold": config.retinaface_score, "upscale_below": config.retinaface_upscale_below,
                 "upscaled_threshold": config.retinaface_upscaled_score}
        self.model = RetinaFaceOnnx(str(require_onnx(config.home)),
                                    **{name: value for name, value in tuned.items() if value is not None})

    def detect_faces(self, img: np.ndarray) -> list[FacialAreaRegion]:
        found = self.model.detect(img)
        height, width = img.shape[:2]
        regions = []
        for box, score, points in zip(found.boxes, found.scores, found.landmarks, strict=True):
            x0, y0 = max(0, int(round(box[0]))), max(0, int(round(box[1])))
            x1, y1 = min(width, int(round(box[2]))), min(height, int(round(box[3])))
            if x1 <= x0 or y1 <= y0:
                continue
            regions.append(FacialAreaRegion(
                x=x0, y=y0, w=x1 - x0, h=y1 - y0,
                left_eye=_point(points[1]), right_eye=_point(points[0]), nose=_point(points[2]),
                mouth_left=_point(points[4]), mouth_right=_point(points[3]),
                confidence=float(score),
            ))
        return regions


def register_with_deepface() -> None:
    """Make `retinaface-onnx` a DeepFace face detector (idempotent); DeepFace's own stay as they are."""
    from deepface.modules import modeling

    modeling.AVAILABLE_MODELS["face_detector"].setdefault(
        BACKEND_NAME, {modeling.ANY: f"{__name__}.RetinaFaceOnnxClient"}
    )
