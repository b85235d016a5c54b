"""Request id, one structured log line per request, and the HTTP metrics.

The log line carries the request id, route, organisation, key name, status and timings. It never
carries a header value, a query string or a body: secrets (Authorization, X-API-Key, `?token=`)
and images travel in those.
"""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from django.conf import settings
from django.http import JsonResponse

from faceportal import metrics
from faceportal.errors import error_payload
from faceportal.log_context import request_id_var
from faceportal.parsers import NOT_UTF8, query_is_utf8

logger = logging.getLogger("faceportal.request")

REQUEST_ID_HEADER = "X-Request-ID"
# A client's id is echoed only when it is short and plain, so it cannot forge log content.
VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


def route_name(request) -> str:
    """A bounded label for metrics: the URL pattern's name, never the raw path."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        # WhiteNoise answers static files before URL resolution: one label for all of them.
        static_url = "/" + settings.STATIC_URL.lstrip("/")
        return "static" if request.path.startswith(static_url) else "unmatched"
    return match.view_name or match.route or "unnamed"


def request_identity(request) -> dict[str, Any]:
    from apikeys.services import AuthenticatedKey

    match = getattr(request, "resolver_match", None)
    identity: dict[str, Any] = {}
    organization = match.kwargs.get("organization") if match else None
    key = getattr(request, "auth", None)  # DRF copies the authenticated key here
    if isinstance(key, AuthenticatedKey):
        identity.update(organization=key.organization_slug, api_key_name=key.name, api_key_user=key.user)
    elif organization:
        identity["organization"] = organization
    user = getattr(request, "user", None)
    if getattr(user, "is_staff", False):
        identity["staff_user"] = user.get_username()
    return identity


def response_timings(response) -> dict[str, float] | None:
    data = getattr(response, "data", None)  # DRF responses keep their data after rendering
    timings = data.get("timings_ms") if isinstance(data, dict) else None
    return timings if isinstance(timings, dict) else None


class Utf8QueryMiddleware:
    """Django would decode a query string's stray bytes as U+FFFD; they are refused instead."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not query_is_utf8(request.META.get("QUERY_STRING", "")):
            return JsonResponse(error_payload(code="malformed_request", message=NOT_UTF8), status=400)
        return self.get_response(request)


class RequestLogMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get(REQUEST_ID_HEADER, "")
        request_id = incoming if VALID_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        request.request_id = request_id
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        try:
            response = self.get_response(request)
            seconds = time.perf_counter() - started
            response[REQUEST_ID_HEADER] = request_id
            self._record(request, response, seconds)
            return response
        finally:
            request_id_var.reset(token)

    def _record(self, request, response, seconds: float) -> None:
        route = route_name(request)
        metrics.observe_request(route=route, method=request.method, status=response.status_code, seconds=seconds)
        timings = response_timings(response)
        if timings and response.status_code < 400:
            metrics.observe_stage_timings(route=route, timings_ms=timings)
        if route in {"metrics", "healthz"}:
            return  # scraped every few seconds; a log line each would drown the useful ones
        fields: dict[str, Any] = {
            "method": request.method,
            "path": request.path,
            "route": route,
            "status": response.status_code,
            "duration_ms": round(seconds * 1000, 2),
            **request_identity(request),
        }
        if timings:
            fields["timings_ms"] = timings
        level = logging.ERROR if response.status_code >= 500 else logging.INFO
        logger.log(level, "request", extra=fields)
