"""Real-time recognition over a WebSocket: frame parsing, the per-connection frame queue, limits.

The consumer stays thin; this module decides what a message means, which frames are kept, and
runs one frame through the shared `recognition.services.recognize` path (off the event loop).

Frames arrive faster than a CPU can embed them, so a connection keeps only its newest pending
frame: a frame still waiting when a newer one arrives is dropped ("stale") and counted, which
keeps latency at about one frame's processing time however fast the client sends.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

from django.conf import settings

from apikeys.services import AuthenticatedKey
from apikeys.websocket import websocket_key_still_valid
from faceportal import parsers
from faceportal.errors import FacePortalError, Forbidden, InvalidInput, PayloadTooLarge
from faceportal.serializers import validated
from faces.matching import decision_in_force, uncalibrated_threshold
from faces.models import SOURCE_WEBSOCKET
from organizations.models import Organization
from recognition.serializers import (
    DecisionInForceSerializer,
    FrameInputSerializer,
    RecognitionOptionsSerializer,
    RecognizeOutputSerializer,
)
from recognition.services import DEFAULT_MAX_RESULTS, recognize, recognize_tracked
from recognition.tracking import FaceTracker
from recognition.webhooks.services import EventThrottle


class FrameRateExceeded(FacePortalError):
    status_code = 429
    code = "rate_limited"

    def __init__(self, max_fps: float):
        super().__init__(f"More than {max_fps:g} messages a second on this connection; this one was dropped.",
                         details={"max_fps": max_fps})


class KeyRevoked(Exception):
    """The connection's key stopped being valid after the handshake."""


@dataclass
class FrameCounters:
    received: int = 0  # frame messages received (every one gets a sequence number)
    processed: int = 0  # frames recognised (a result reply)
    dropped_stale: int = 0  # frames replaced by a newer frame before they were processed
    rejected: int = 0  # frames answered with an error (bad input, over a limit, other organisation)

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass
class Frame:
    seq: int
    image: Any  # JPEG bytes, or {"base64": <base64 or data URI>}
    threshold: float | None
    max_results: int | None
    received_at: float = field(default_factory=time.perf_counter)


@dataclass
class FrameSettings:
    """Per-connection defaults for frames that do not say (binary frames never can)."""

    threshold: float | None = None
    max_results: int | None = None


class FrameRateLimiter:
    """Token bucket: `rate` frames a second on average, bursts of up to one second's worth."""

    def __init__(self, *, rate: float):
        self.rate = rate
        self.capacity = max(1.0, rate)
        self.tokens = self.capacity
        self.updated = time.monotonic()

    def allow(self) -> bool:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


KEEP_SETTINGS_FIELDS = ("keep_unknown_faces", "unknown_max_kept", "unknown_retention_days")
KEEP_SETTINGS_TTL = 5.0  # seconds an open socket trusts what it read of the organisation's keeping settings


class KeepThrottle:
    """One connection keeps at most one unknown face per interval: a face that stays in view is kept
    once per FACEPORTAL_UNKNOWN_KEEP_INTERVAL seconds, not once per frame. It also re-reads the
    organisation's keeping settings every few seconds, so staff turning keeping on or off reaches
    sockets that are already open."""

    def __init__(self, *, interval: float):
        self.interval = interval
        self.last_kept: float | None = None
        self.settings_read: float | None = None

    def may_keep(self) -> bool:
        return self.last_kept is None or time.monotonic() - self.last_kept >= self.interval

    def kept(self) -> None:
        self.last_kept = time.monotonic()

    def refresh(self, organization: Organization) -> None:
        now = time.monotonic()
        if self.settings_read is not None and now - self.settings_read < KEEP_SETTINGS_TTL:
            return
        current = Organization.objects.filter(pk=organization.pk).values(*KEEP_SETTINGS_FIELDS).first()
        for name, value in (current or {}).items():
            setattr(organization, name, value)
        self.settings_read = now


class FrameQueue:
    """Latest-frame-wins slot, or a bounded FIFO when the client opted out of dropping."""

    def __init__(self, *, drop_stale: bool, max_queued: int):
        self.drop_stale = drop_stale
        self._frames: deque[Frame] = deque()
        self._limit = 1 if drop_stale else max(1, max_queued)

    def put(self, frame: Frame) -> int:
        """Queue `frame`; return how many older frames were dropped to make room."""
        dropped = 0
        while len(self._frames) >= self._limit:
            self._frames.popleft()
            dropped += 1
        self._frames.append(frame)
        return dropped

    def take(self) -> Frame | None:
        return self._frames.popleft() if self._frames else None

    def __len__(self) -> int:
        return len(self._frames)


def parse_flag(value: str | None, *, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() not in {"0", "false", "no", "off"}


def _check_size(size: int) -> None:
    limit = settings.FACEPORTAL_WS_MAX_FRAME_BYTES
    if size > limit:
        raise PayloadTooLarge(f"Frame is larger than {limit} bytes.", details={"limit": limit},
                              code="frame_too_large")


def _check_organization(message: dict[str, Any], *, organization_slug: str) -> None:
    named = message.get("organization")
    if named is not None and named != organization_slug:
        # Same words whether or not the named organisation exists.
        raise Forbidden(
            "This connection is bound to the organization of its handshake; "
            "open another connection to use another organization.",
            details={"field": "organization"},
        )


def parse_text_message(text: str, *, organization_slug: str) -> dict[str, Any]:
    """Size, JSON and tenant checks for a text message; returns the decoded object."""
    _check_size(len(text))
    try:
        # Bounded nesting: 100,000 `[` would raise RecursionError inside json.loads.
        message = parsers.loads(text)
    except parsers.JSONRefused as exc:
        raise InvalidInput(f"Message refused: {exc}", code="malformed_message") from None
    if not isinstance(message, dict):
        raise InvalidInput("Message must be a JSON object.", code="malformed_message")
    _check_organization(message, organization_slug=organization_slug)
    return message


def frame_settings_update(message: dict[str, Any], *, current: FrameSettings) -> FrameSettings:
    """A `{"type": "settings", "threshold"?, "max_results"?}` message; validated before applied."""
    options = validated(RecognitionOptionsSerializer, data=message)
    return FrameSettings(threshold=options.get("threshold", current.threshold),
                         max_results=options.get("max_results", current.max_results))


def frame_from_message(message: dict[str, Any], *, seq: int, defaults: FrameSettings) -> Frame:
    """A JSON frame `{"image": <data URI or base64>, "threshold"?, "max_results"?}`.

    Validated now, so a bad value is answered even if the frame is later dropped as stale."""
    frame = validated(FrameInputSerializer, data=message)
    return Frame(seq=seq, image={"base64": frame["image"]}, threshold=frame.get("threshold", defaults.threshold),
                 max_results=frame.get("max_results", defaults.max_results))


def frame_from_bytes(data: bytes, *, seq: int, defaults: FrameSettings) -> Frame:
    _check_size(len(data))
    if not data:
        raise InvalidInput("Binary frame is empty.", details={"field": "image"})
    return Frame(seq=seq, image=data, threshold=defaults.threshold, max_results=defaults.max_results)


def decision_for_connection(*, organization: Organization) -> dict[str, Any]:
    """For `ready`: what decides a frame sent without a threshold, as a `POST /recognize` answer
    states it (threshold, threshold_source, false_match_rate, gallery_size), and the fallback
    that would decide only if the model had no calibration. Each result restates it, for the
    gallery as it is then."""
    decision = DecisionInForceSerializer(decision_in_force(organization=organization)).data
    return {**decision, "uncalibrated_threshold": uncalibrated_threshold()}


def recognize_frame(*, organization: Organization, token: str, identity: AuthenticatedKey,
                    frame: Frame, keep: KeepThrottle | None = None,
                    events: EventThrottle | None = None, tracker: FaceTracker | None = None) -> dict[str, Any]:
    """Re-check the key (a cache hit), then the same recognition as `POST /recognize`, in the
    same shape; with a `tracker` (the connection's own), each face also carries its `track` id.

    Runs in a worker thread; the model itself runs on the engine pool.
    """
    if not websocket_key_still_valid(token=token, identity=identity):
        raise KeyRevoked()
    if keep is not None:
        keep.refresh(organization)
    options = {"organization": organization, "image": frame.image, "threshold": frame.threshold,
               "max_results": frame.max_results or DEFAULT_MAX_RESULTS, "seen_by": identity,
               "source": SOURCE_WEBSOCKET, "may_keep": keep is not None and keep.may_keep(),
               "fire_events": events is not None, "event_throttle": events}
    if tracker is None:
        result = recognize(**options)
    else:
        result = recognize_tracked(**options, tracker=tracker)
    if keep is not None and any(face.unknown_face is not None for face in result.faces):
        keep.kept()
    data = RecognizeOutputSerializer(result).data
    if tracker is not None:
        for shaped, face in zip(data["faces"], result.faces, strict=True):
            shaped["track"] = face.track
    return data


def tracker_for_connection(*, option: str | None) -> FaceTracker | None:
    """The connection's own tracker (FACEPORTAL_WS_TRACKING, or the handshake's `track=0|1`), or None."""
    if not parse_flag(option, default=settings.FACEPORTAL_WS_TRACKING):
        return None
    return FaceTracker(reembed_seconds=settings.FACEPORTAL_WS_TRACK_REEMBED_SECONDS)


def result_reply(*, frame: Frame, result: dict[str, Any], started_at: float,
                 counters: FrameCounters) -> dict[str, Any]:
    """`result`: a `RecognizeOutputSerializer` answer, with the socket's own timings and counters."""
    now = time.perf_counter()
    timings = dict(result.get("timings_ms", {}))
    timings["queued"] = round((started_at - frame.received_at) * 1000, 2)
    timings["server"] = round((now - frame.received_at) * 1000, 2)
    return {"type": "result", "seq": frame.seq, **result, "timings_ms": timings, "counters": counters.as_dict()}


def error_reply(*, error: FacePortalError, seq: int | None, counters: FrameCounters) -> dict[str, Any]:
    return {
        "type": "error",
        "seq": seq,
        **error.as_payload(),
        "counters": counters.as_dict(),
    }
