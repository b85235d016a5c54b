"""ASGI entry point for daphne: HTTP through Django, WebSocket through Channels."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "faceportal.settings")
# Django must be set up before anything imports models (routing imports the consumers).
django_asgi_app = get_asgi_application()

from channels.layers import get_channel_layer  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.core.cache import caches  # noqa: E402

from faceportal.parsers import disable_twisted_form_parsing  # noqa: E402
from faceportal.routing import websocket_urlpatterns  # noqa: E402
from faceportal.websocket_observe import HandshakeRefusalLog  # noqa: E402
from faces.engine import warm_in_background  # noqa: E402
from faces.enrolment_jobs import start_enrolment_runner  # noqa: E402
from faces.unknowns.sweep import start_sweeper  # noqa: E402
from recognition.webhooks.delivery import start_webhook_runner  # noqa: E402

disable_twisted_form_parsing()  # Django parses bodies, and answers bad ones in the error shape
warm_in_background()
start_sweeper()  # purges expired unknown faces on the schedule kept in the database
start_webhook_runner()  # posts queued webhook deliveries (persisted: a restart resumes them)
start_enrolment_runner()  # enrols uploaded archives, resuming unfinished jobs kept in the database
# Build the cache and channel-layer backends now (no connection is opened): otherwise the first
# concurrent requests import redis-py on several threads at once and fail on its partly
# initialised modules (seen as 500s right after start).
caches["default"]
get_channel_layer()

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": HandshakeRefusalLog(AllowedHostsOriginValidator(URLRouter(websocket_urlpatterns))),
    }
)
