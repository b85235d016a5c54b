"""`ws://host/ws/recognize`: real-time recognition for one organisation per connection.

Protocol (messages, replies, close codes): docs/WEBSOCKET.md. The consumer only
authenticates, hands frames to `recognition.realtime`, and sends replies; the model runs in the
engine pool, never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import time

from asgiref.sync import sync_to_async
from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings

from apikeys.throttling import websocket_handshake_reserve
from apikeys.websocket import WebSocketAuthError, handshake_credentials, websocket_authenticate
from faceportal.errors import FacePortalError, error_payload
from faceportal.websocket_observe import ConnectionObserver
from faces.engine import get_engine
from recognition.connections import (
    CLOSE_AUTH_THROTTLED,
    CLOSE_BUSY,
    CLOSE_ERROR_CODES,
    CLOSE_FLOODING,
    CLOSE_IDLE,
    CLOSE_INTERNAL_ERROR,
    CLOSE_KEY_REVOKED,
    CLOSE_TOO_MANY_FOR_KEY,
    CLOSE_TOO_MANY_FOR_ORGANIZATION,
    CLOSE_UNAUTHORIZED,
    organization_slots,
    process_connections,
    websocket_slots,
)
from recognition.realtime import (
    Frame,
    FrameCounters,
    FrameQueue,
    FrameRateExceeded,
    FrameRateLimiter,
    FrameSettings,
    KeepThrottle,
    KeyRevoked,
    decision_for_connection,
    error_reply,
    frame_from_bytes,
    frame_from_message,
    frame_settings_update,
    parse_flag,
    parse_text_message,
    recognize_frame,
    result_reply,
    tracker_for_connection,
)
from recognition.webhooks.services import EventThrottle

logger = logging.getLogger(__name__)


class RecognizeConsumer(AsyncJsonWebsocketConsumer):
    """Slots (this process's connection cap, the key's and the organisation's caps) are released on every exit path:
    a refusal, a close, a disconnect, and an exception or cancellation that skips `disconnect`
    (`__call__`'s finally)."""

    worker: asyncio.Task | None = None
    counted = False
    closing = False
    key_slot: int | None = None
    organization_slot: int | None = None
    idle_watch: asyncio.Task | None = None
    last_message_at = 0.0
    observer: ConnectionObserver | None = None
    counters: FrameCounters | None = None

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:
            self._release()
            if self.observer is not None:  # disconnect() may never have run
                self.observer.closed(code=None, counters=self.counters)

    def _release(self) -> None:
        if self.counted:
            self.counted = False
            process_connections.release()
        if self.key_slot is not None:
            websocket_slots.release(self.key_slot)
            self.key_slot = None
        if self.organization_slot is not None:
            organization_slots.release(self.organization_slot)
            self.organization_slot = None
        for task in (self.worker, self.idle_watch):
            if task is not None and not task.done() and task is not asyncio.current_task():
                task.cancel()

    async def connect(self):
        self.observer = ConnectionObserver(self.scope)  # metrics and the connect/refusal/close log lines
        # Accept first: a close code and reason only reach the client on an accepted socket.
        await self.accept()
        # Checked and taken in one step, before any await: concurrent handshakes cannot overshoot.
        if not process_connections.try_take(limit=settings.FACEPORTAL_WS_MAX_CONNECTIONS):
            await self._close(CLOSE_BUSY, "Server busy: too many live connections; try again shortly.")
            return
        self.counted = True
        # The handshake's place in its address's failed-auth budget, taken before the key is
        # looked at (concurrent bad handshakes get no more checks than the budget); kept only
        # when the key is refused.
        budget = await sync_to_async(websocket_handshake_reserve)(self.scope)
        if budget is None:
            await self._close(CLOSE_AUTH_THROTTLED, "Too many failed authentication attempts; try again later.")
            return
        try:
            credentials = handshake_credentials(query_string=self.scope.get("query_string", b""))
            self.identity, self.organization = await database_sync_to_async(websocket_authenticate)(
                credentials=credentials
            )
        except WebSocketAuthError as exc:
            if exc.close_code != CLOSE_UNAUTHORIZED:  # a malformed URL or a wrong organisation: no guess
                await sync_to_async(budget.release)()
            await self._close(exc.close_code, exc.reason)
            return
        except BaseException:
            await sync_to_async(budget.release)()  # no failed guess (the database is down, say)
            raise
        await sync_to_async(budget.release)()
        if not websocket_slots.acquire(self.identity.key_id, limit=settings.FACEPORTAL_WS_MAX_CONNECTIONS_PER_KEY):
            await self._close(CLOSE_TOO_MANY_FOR_KEY, "Too many live connections for this API key; close one first.")
            return
        self.key_slot = self.identity.key_id
        if not organization_slots.acquire(self.organization.pk,
                                          limit=settings.FACEPORTAL_WS_MAX_CONNECTIONS_PER_ORGANIZATION):
            await self._close(CLOSE_TOO_MANY_FOR_ORGANIZATION,
                              "Too many live connections for this organization; close one first.")
            return
        self.organization_slot = self.organization.pk
        self.observer.connected(organization=self.organization.slug, api_key_name=self.identity.name,
                                api_key_user=self.identity.user)
        self.token = credentials.token  # kept in memory to re-check revocation per frame; never logged
        self.counters = FrameCounters()
        self.frame_settings = FrameSettings()
        self.queue = FrameQueue(
            drop_stale=parse_flag(credentials.options.get("drop_stale"), default=True),
            max_queued=settings.FACEPORTAL_WS_MAX_QUEUED_FRAMES,
        )
        self.limiter = FrameRateLimiter(rate=settings.FACEPORTAL_WS_MAX_FPS)
        # This connection's tracks: created here, dropped with the connection, never shared.
        self.tracker = tracker_for_connection(option=credentials.options.get("track"))
        self.keep = KeepThrottle(interval=settings.FACEPORTAL_UNKNOWN_KEEP_INTERVAL)
        self.events = EventThrottle(interval=settings.FACEPORTAL_WEBHOOK_WS_INTERVAL)
        # Every message draws on this one, refused ones too: a flood of tiny messages ends the
        # connection instead of taking the event loop from every other connection.
        self.flood = FrameRateLimiter(rate=settings.FACEPORTAL_WS_MAX_FPS * settings.FACEPORTAL_WS_FLOOD_FACTOR)
        self.last_message_at = time.monotonic()
        if settings.FACEPORTAL_WS_IDLE_TIMEOUT:
            self.idle_watch = asyncio.create_task(self._watch_idle(settings.FACEPORTAL_WS_IDLE_TIMEOUT))
        self.wakeup = asyncio.Event()
        self.worker = asyncio.create_task(self._work())
        engine = await sync_to_async(get_engine, thread_sensitive=False)()
        decision = await database_sync_to_async(decision_for_connection, thread_sensitive=False)(
            organization=self.organization
        )
        await self.send_json({
            "type": "ready",
            "organization": self.organization.slug,
            "user": self.identity.user,
            "api_key_name": self.identity.name,
            "drop_stale": self.queue.drop_stale,
            "tracking": self.tracker is not None,
            "model": engine.model_name,
            "detector": engine.detector_name,
            **decision,
            "keep_unknown_faces": self.organization.keep_unknown_faces,
            "limits": {
                "max_frame_bytes": settings.FACEPORTAL_WS_MAX_FRAME_BYTES,
                "max_fps": settings.FACEPORTAL_WS_MAX_FPS,
                "idle_timeout_seconds": settings.FACEPORTAL_WS_IDLE_TIMEOUT,
            },
        })

    async def disconnect(self, code):
        self._release()
        if self.observer is not None:
            self.observer.closed(code=code, counters=self.counters)

    async def receive(self, text_data=None, bytes_data=None):
        if self.worker is None or self.closing:
            return
        self.last_message_at = time.monotonic()
        if not self.flood.allow():
            await self._close(CLOSE_FLOODING, "Messages far faster than the frame rate limit; connection closed.")
            return
        try:
            await self._receive(text_data, bytes_data)
        except Exception:
            # Our bug, not the client's: answer it, keep the socket, log no message content.
            logger.exception("websocket message failed", extra={"organization": self.organization.slug})
            self.counters.rejected += 1
            error = FacePortalError("Internal server error.", code="internal_error")
            await self.send_json(error_reply(error=error, seq=self.counters.received, counters=self.counters))

    async def _receive(self, text_data, bytes_data) -> None:
        self.counters.received += 1
        seq = self.counters.received
        try:
            if not self.limiter.allow():
                raise FrameRateExceeded(settings.FACEPORTAL_WS_MAX_FPS)
            if bytes_data is not None:
                frame = frame_from_bytes(bytes_data, seq=seq, defaults=self.frame_settings)
            else:
                message = parse_text_message(text_data or "", organization_slug=self.organization.slug)
                kind = message.get("type", "frame")
                if kind == "settings":
                    self.frame_settings = frame_settings_update(message, current=self.frame_settings)
                    await self.send_json({"type": "settings", "seq": seq, **self.frame_settings.__dict__})
                    return
                if kind != "frame":
                    raise FacePortalError("'type' must be 'frame' or 'settings'.", details={"field": "type"},
                                          code="invalid_input")
                frame = frame_from_message(message, seq=seq, defaults=self.frame_settings)
        except FacePortalError as exc:
            self.counters.rejected += 1
            ConnectionObserver.frames("error")
            await self.send_json(error_reply(error=exc, seq=seq, counters=self.counters))
            return
        dropped = self.queue.put(frame)
        self.counters.dropped_stale += dropped
        ConnectionObserver.frames("dropped", dropped)
        self.wakeup.set()

    async def _work(self) -> None:
        try:
            while not self.closing:
                await self.wakeup.wait()
                self.wakeup.clear()
                while not self.closing and (frame := self.queue.take()) is not None:
                    await self._process(frame)
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("websocket worker stopped", extra={"organization": self.organization.slug})
            await self._close(CLOSE_INTERNAL_ERROR, "Internal error.")

    async def _watch_idle(self, timeout: float) -> None:
        """Close a socket that has sent nothing for `timeout` seconds: idle sockets hold slots."""
        while not self.closing:
            remaining = self.last_message_at + timeout - time.monotonic()
            if remaining <= 0:
                await self._close(CLOSE_IDLE, f"No message for {timeout:g} seconds; connection closed.")
                return
            await asyncio.sleep(remaining)

    async def _process(self, frame: Frame) -> None:
        started = time.perf_counter()
        try:
            # Not thread-sensitive: connections must not queue behind each other on one thread.
            result = await database_sync_to_async(recognize_frame, thread_sensitive=False)(
                organization=self.organization, token=self.token, identity=self.identity, frame=frame,
                keep=self.keep, events=self.events, tracker=self.tracker,
            )
        except KeyRevoked:
            self.counters.rejected += 1
            ConnectionObserver.frames("error")
            error = FacePortalError("The API key was revoked or has expired.", code="api_key_revoked")
            await self.send_json(error_reply(error=error, seq=frame.seq, counters=self.counters))
            await self._close(CLOSE_KEY_REVOKED, "API key revoked or expired.")
            return
        except FacePortalError as exc:
            self.counters.rejected += 1
            ConnectionObserver.frames("error")
            await self.send_json(error_reply(error=exc, seq=frame.seq, counters=self.counters))
            return
        except Exception:
            logger.exception("websocket frame failed", extra={"organization": self.organization.slug})
            self.counters.rejected += 1
            ConnectionObserver.frames("error")
            error = FacePortalError("Internal server error.", code="internal_error")
            await self.send_json(error_reply(error=error, seq=frame.seq, counters=self.counters))
            return
        self.counters.processed += 1
        ConnectionObserver.frames("ok")
        await self.send_json(result_reply(frame=frame, result=result, started_at=started, counters=self.counters))

    async def _close(self, code: int, reason: str) -> None:
        """Free the slots now, say why in a final error message (daphne drops close reasons), close."""
        self.closing = True
        if self.observer is not None:
            if self.observer.is_open:
                self.observer.close_code = code
            else:
                self.observer.refused(code=code, reason=reason)
        self._release()
        await self.send_json({
            "type": "error",
            "seq": None,
            **error_payload(code=CLOSE_ERROR_CODES.get(code, "closed"), message=reason),
            "close_code": code,
        })
        await self.close(code=code, reason=reason)
