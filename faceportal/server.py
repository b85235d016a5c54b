"""daphne, with the request limits it leaves open: `python -m faceportal.server [daphne options] app`.

Daphne (Twisted underneath) reads a whole request body before the application sees any of it, then
queues every chunk of it in memory at once, so a limit in Django or in ASGI middleware comes after
the memory is spent (a 1 GB POST to /healthz grew the process by about 1 GB, never given back).
Twisted's only clock on a connection is an idle timeout that every byte resets, so headers sent a
byte at a time never time out. This entry point runs daphne's own command line with an HTTP
channel that:

- refuses a body over its route's limit (`body_limit`) from its Content-Length, before reading
  any of it, and a chunked body as soon as the bytes received pass the limit: 413 in the error
  shape, then the connection is closed;
- gives a request `FACEPORTAL_HTTP_HEADER_TIMEOUT` seconds from its first byte to its last header
  and `FACEPORTAL_HTTP_BODY_TIMEOUT` seconds for its body: 408 in the error shape, then closed;
- ends a WebSocket that floods messages before daphne queues them (`GuardedWebSocketProtocol`).
"""

from __future__ import annotations

import json
import logging
import sys
from http import HTTPStatus

from daphne import server as daphne_server
from daphne.http_protocol import HTTPFactory
from daphne.ws_protocol import WebSocketFactory, WebSocketProtocol
from twisted.internet import reactor
from twisted.web import http

logger = logging.getLogger(__name__)

# After a refusal the rest of what the client sends is read and dropped for this long (not kept),
# so the client sees our answer rather than a connection reset in the middle of its upload.
LINGER_SECONDS = 2.0


def body_limit(path: bytes) -> int:
    """The largest body `path` takes: image routes take FACEPORTAL_MAX_BODY_BYTES, others much less."""
    from django.conf import settings
    from django.urls import Resolver404, resolve

    try:
        match = resolve(path.split(b"?", 1)[0].decode("ascii"))
    except (Resolver404, UnicodeError, ValueError):
        return settings.FACEPORTAL_MAX_SMALL_BODY_BYTES
    except Exception:  # never a dropped connection: an unreadable path gets the small limit
        logger.exception("body limit: path not resolved")
        return settings.FACEPORTAL_MAX_SMALL_BODY_BYTES
    if match.view_name in settings.FACEPORTAL_IMAGE_ROUTES:
        return settings.DATA_UPLOAD_MAX_MEMORY_SIZE  # FACEPORTAL_MAX_BODY_BYTES
    return settings.FACEPORTAL_MAX_SMALL_BODY_BYTES


def refusal(status: HTTPStatus, *, code: str, message: str, details: dict) -> bytes:
    from faceportal.errors import error_payload

    body = json.dumps(error_payload(code=code, message=message, details=details)).encode()
    head = (f"HTTP/1.1 {status.value} {status.phrase}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n").encode()
    return head + body


class GuardedHTTPChannel(http.HTTPChannel):
    """Body limits per route and deadlines for headers and body (see the module docstring)."""

    _deadline = None
    _awaiting_headers = True
    _limit: int | None = None
    _received = 0
    _refused = False

    def dataReceived(self, data):
        if self._refused:
            return  # lingering after a refusal: read and dropped
        if self._awaiting_headers and self._deadline is None and data.strip(b"\r\n"):
            self._arm(self._header_timeout(), "headers")
        super().dataReceived(data)

    def allHeadersReceived(self):
        self._awaiting_headers = False
        self._cancel()
        request = self.requests[-1]
        self._limit, self._received = body_limit(self._path), 0
        if self.length is not None and self.length > self._limit:
            self._refuse_too_large(declared=self.length)
            return
        self._arm(self._body_timeout(), "body")
        # Chunked bodies: count the bytes as they arrive.
        handle = request.handleContentChunk

        def counted(data, handle=handle):
            if self._refused:
                return
            self._received += len(data)
            if self._received > self._limit:
                self._refuse_too_large(declared=None)
                return
            handle(data)

        request.handleContentChunk = counted
        if self._transferDecoder is not None:
            self._transferDecoder.dataCallback = counted
        super().allHeadersReceived()

    def allContentReceived(self):
        self._cancel()
        if not self._refused:
            super().allContentReceived()

    def requestDone(self, request):
        super().requestDone(request)
        self._awaiting_headers = True  # keep-alive: the next request's headers get their own deadline

    def connectionLost(self, reason):
        self._cancel()
        super().connectionLost(reason)

    def _header_timeout(self) -> float:
        from django.conf import settings

        return settings.FACEPORTAL_HTTP_HEADER_TIMEOUT

    def _body_timeout(self) -> float:
        from django.conf import settings

        return settings.FACEPORTAL_HTTP_BODY_TIMEOUT

    def _arm(self, seconds: float, part: str) -> None:
        self._cancel()
        if seconds:
            self._deadline = reactor.callLater(seconds, self._too_slow, part, seconds)

    def _cancel(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _too_slow(self, part: str, seconds: float) -> None:
        self._deadline = None
        self._refuse(refusal(HTTPStatus.REQUEST_TIMEOUT, code="request_timeout",
                             message=f"The request's {part} did not arrive within {seconds:g} seconds.",
                             details={"timeout_seconds": seconds}))

    def _refuse_too_large(self, *, declared: int | None) -> None:
        details = {"limit": self._limit}
        if declared is not None:
            details["content_length"] = declared
        self._refuse(refusal(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, code="request_too_large",
                             message=f"This route takes request bodies of at most {self._limit} bytes.",
                             details=details))

    def _refuse(self, response: bytes) -> None:
        if self._refused or self.transport is None:
            return
        self._refused = True
        self._cancel()
        self._buffer = b""  # LineReceiver's: nothing more of this request is parsed
        self.setTimeout(None)
        self.transport.write(response)
        try:
            self.transport.loseWriteConnection()  # our answer is complete; what still arrives is dropped
        except AttributeError:  # a transport that cannot half-close
            self.transport.loseConnection()
            return
        reactor.callLater(LINGER_SECONDS, self._abort)

    def _abort(self) -> None:
        if self.transport is not None and getattr(self.transport, "connected", True):
            self.transport.abortConnection()


def _guarded_channel_factory(factory: http.HTTPFactory) -> http._GenericHTTPChannelProtocol:
    return http._GenericHTTPChannelProtocol(GuardedHTTPChannel())


class GuardedHTTPFactory(HTTPFactory):
    protocol = _guarded_channel_factory


class GuardedWebSocketProtocol(WebSocketProtocol):
    """Daphne parses every incoming WebSocket message and queues it for the application without
    limit, so a flood of tiny frames took the reactor (every connection's HTTP and WebSocket I/O)
    and grew memory before the consumer could refuse it. Messages beyond FACEPORTAL_WS_MAX_FPS x
    FACEPORTAL_WS_FLOOD_FACTOR a second (after a burst of one second's worth) end the connection
    here: the final error message and close 4420 are sent, reading stops, nothing more is queued."""

    _bucket = None
    _flooded = False

    def onMessage(self, payload, isBinary):
        if self._flooded:
            return
        if self._bucket is None:
            from django.conf import settings

            from recognition.realtime import FrameRateLimiter

            self._bucket = FrameRateLimiter(rate=settings.FACEPORTAL_WS_MAX_FPS * settings.FACEPORTAL_WS_FLOOD_FACTOR)
        if self._bucket.allow():
            super().onMessage(payload, isBinary)
            return
        self._flooded = True
        from faceportal.errors import error_payload
        from recognition.connections import CLOSE_ERROR_CODES, CLOSE_FLOODING

        reason = "Messages far faster than the frame rate limit; connection closed."
        final = {"type": "error", "seq": None, "close_code": CLOSE_FLOODING,
                 **error_payload(code=CLOSE_ERROR_CODES[CLOSE_FLOODING], message=reason)}
        self.sendMessage(json.dumps(final).encode(), isBinary=False)
        self.sendClose(code=CLOSE_FLOODING)
        self.transport.pauseProducing()  # read no more of the flood
        self.transport.loseConnection()  # after what we wrote is sent


class GuardedWebSocketFactory(WebSocketFactory):
    protocol = GuardedWebSocketProtocol


def main(argv: list[str] | None = None) -> None:
    # What daphne's Server builds its HTTP and WebSocket sides from.
    daphne_server.HTTPFactory = GuardedHTTPFactory
    daphne_server.WebSocketFactory = GuardedWebSocketFactory
    from daphne.cli import CommandLineInterface

    CommandLineInterface().run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    main()
