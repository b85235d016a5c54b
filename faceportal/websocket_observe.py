"""What operators see of a WebSocket connection: its metrics, and one JSON log line per connect,
refusal (with its close code) and close.

The lines go to the HTTP request logger with the same fields as an HTTP request line (method, path,
route, status, duration_ms, organisation, key name and user, request_id); `status` is 101 for an
accepted connection and the close code for a refusal or a close. Never the query string: the
token travels there.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from faceportal import metrics

logger = logging.getLogger("faceportal.request")
ROUTE = "ws_recognize"


class ConnectionObserver:
    def __init__(self, scope: dict) -> None:
        self.started = time.perf_counter()
        self.request_id = uuid.uuid4().hex
        self.path = scope.get("path", "")
        self.identity: dict[str, Any] = {}
        self.is_open = False
        self.close_code: int | None = None  # the server's own close code, when it closed first

    def _log(self, message: str, *, status: int, level: int = logging.INFO, **fields: Any) -> None:
        logger.log(level, message, extra={
            "method": "WEBSOCKET", "path": self.path, "route": ROUTE, "status": status,
            "duration_ms": round((time.perf_counter() - self.started) * 1000, 2),
            **self.identity, "request_id": self.request_id, **fields,
        })

    def connected(self, *, organization: str, api_key_name: str, api_key_user: str) -> None:
        self.identity = {"organization": organization, "api_key_name": api_key_name, "api_key_user": api_key_user}
        self.is_open = True
        metrics.websocket_connected()
        self._log("websocket connect", status=101)

    def refused(self, *, code: int, reason: str) -> None:
        self._log("websocket refused", status=code, level=logging.WARNING, close_code=code, reason=reason)

    def closed(self, *, code: int | None, counters: Any) -> None:
        if not self.is_open:
            return
        self.is_open = False
        metrics.websocket_disconnected()
        code = self.close_code or code or 1005  # 1005: closed without a code
        self._log("websocket close", status=code, close_code=code, frames_received=counters.received,
                  frames_processed=counters.processed, frames_rejected=counters.rejected,
                  frames_dropped=counters.dropped_stale)

    @staticmethod
    def frames(outcome: str, count: int = 1) -> None:
        if count > 0:
            metrics.websocket_frame(outcome=outcome, count=count)


class HandshakeRefusalLog:
    """ASGI wrapper: logs a WebSocket closed before it was accepted (daphne answers it with HTTP 403).

    The consumer accepts every connection before checking it, so such a close comes from the
    Origin check in front of it (channels' AllowedHostsOriginValidator), which logs nothing itself.
    """

    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send):
        accepted = False

        async def observed_send(message):
            nonlocal accepted
            if message["type"] == "websocket.accept":
                accepted = True
            elif message["type"] == "websocket.close" and not accepted:
                ConnectionObserver(scope).refused(code=403, reason="Origin not allowed (ALLOWED_HOSTS).")
            await send(message)

        return await self.application(scope, receive, observed_send)
