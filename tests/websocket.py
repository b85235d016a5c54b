"""The WebSocket route in-process (channels' communicator) and the query a key connects with."""

from __future__ import annotations

from urllib.parse import urlencode

from channels.routing import URLRouter
from channels.security.websocket import AllowedHostsOriginValidator
from channels.testing import WebsocketCommunicator

from apikeys.services import IssuedKey
from faceportal.routing import websocket_urlpatterns

# The WebSocket half of faceportal.asgi.application, without its HTTP half and model warm-up.
application = AllowedHostsOriginValidator(URLRouter(websocket_urlpatterns))
ORIGIN = (b"origin", b"http://testserver")


def socket_path(issued: IssuedKey | None = None, **params) -> str:
    """/ws/recognize with `issued`'s credentials; `params` override them, and a None leaves one out."""
    query = {}
    if issued is not None:
        query = {
            "token": issued.plaintext,
            "organization": issued.api_key.organization.slug,
            "user": issued.api_key.user,
            "api_key_name": issued.api_key.name,
        }
    query.update(params)
    return "/ws/recognize?" + urlencode({k: v for k, v in query.items() if v is not None})


async def close_of(path: str) -> dict:
    """The close message, with everything the server sent before it (its final error message)."""
    communicator = WebsocketCommunicator(application, path, headers=[ORIGIN])
    connected, _ = await communicator.connect(timeout=30)
    assert connected
    before = []
    while (message := await communicator.receive_output(timeout=30))["type"] != "websocket.close":
        before.append(message)
    await communicator.wait()
    return {**message, "sent_before": before}
