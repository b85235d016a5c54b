"""One error shape for every client-caused failure: {"error": {"code", "message", "details"}}.

Services raise the `FacePortalError` subclasses below; the DRF exception handler (REST) and the
WebSocket consumer both turn them into the same JSON through `error_payload`.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig, SuspiciousOperation, TooManyFieldsSent
from django.db import InterfaceError as DatabaseInterfaceError
from django.db import OperationalError as DatabaseOperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf_exceptions
from rest_framework.response import Response

logger = logging.getLogger(__name__)


class FacePortalError(Exception):
    status_code = 400
    code = "invalid_request"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None, code: str | None = None):
        super().__init__(message)
        self.message = message
        self.details = details or {}
        if code:
            self.code = code

    def as_payload(self) -> dict[str, Any]:
        """This error in the one error shape (REST, WebSocket and the admin's JSON views)."""
        return error_payload(code=self.code, message=self.message, details=self.details)


class InvalidInput(FacePortalError):
    status_code = 400
    code = "invalid_input"


def _first_error(errors: Any, path: str = "") -> tuple[str, str]:
    """The path ("boxes[1].w") and message of the first error in a serializer's error tree."""
    if isinstance(errors, dict):
        for key, value in errors.items():
            if key == "non_field_errors":
                return _first_error(value, path)
            step = f"[{key}]" if isinstance(key, int) else (f".{key}" if path else str(key))
            return _first_error(value, path + step)
    if isinstance(errors, list):
        for value in errors:
            if value:  # a list field's errors hold {} for its valid entries
                return _first_error(value, path)
    return path, str(errors)


def invalid_input(errors: Any) -> InvalidInput:
    """A serializer's errors as our 400: the message names the first field at fault,
    `details.field` its top-level name, `details.fields` every error."""
    path, message = _first_error(errors)
    details: dict[str, Any] = {"fields": errors}
    if path:
        details["field"] = re.split(r"[.\[]", path, maxsplit=1)[0]
        message = f"'{path}': {message}"
    return InvalidInput(message, details=details)


class InvalidImage(FacePortalError):
    status_code = 400
    code = "invalid_image"


class NotFound(FacePortalError):
    status_code = 404
    code = "not_found"


class Forbidden(FacePortalError):
    status_code = 403
    code = "forbidden"


class Conflict(FacePortalError):
    status_code = 409
    code = "conflict"


class Unprocessable(FacePortalError):
    status_code = 422
    code = "unprocessable"


class PayloadTooLarge(FacePortalError):
    status_code = 413
    code = "payload_too_large"


class ServiceUnavailable(FacePortalError):
    status_code = 503
    code = "service_unavailable"


def error_payload(*, code: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


_DRF_CODES = {
    drf_exceptions.NotAuthenticated: "not_authenticated",
    drf_exceptions.AuthenticationFailed: "authentication_failed",
    drf_exceptions.PermissionDenied: "forbidden",
    drf_exceptions.NotFound: "not_found",
    drf_exceptions.MethodNotAllowed: "method_not_allowed",
    drf_exceptions.UnsupportedMediaType: "unsupported_media_type",
    drf_exceptions.ParseError: "malformed_request",
    drf_exceptions.Throttled: "throttled",
    drf_exceptions.NotAcceptable: "not_acceptable",
}


def _drf_code(exc: drf_exceptions.APIException) -> str:
    for exc_type, code in _DRF_CODES.items():
        if isinstance(exc, exc_type):
            return code
    return "invalid_input" if isinstance(exc, drf_exceptions.ValidationError) else "error"


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    headers: dict[str, str] = {}
    if isinstance(exc, FacePortalError):
        return Response(exc.as_payload(), status=exc.status_code)
    if isinstance(exc, (RequestDataTooBig, TooManyFieldsSent)):
        return Response(
            error_payload(code="payload_too_large", message="Request body is too large."),
            status=413,
        )
    if isinstance(exc, (DatabaseOperationalError, DatabaseInterfaceError)):
        # The database is unreachable, was cut off mid-request or timed out on a lock: the
        # transaction rolled back, so nothing was written; the client may retry.
        logger.warning("database unavailable: %s", exc.__class__.__name__)
        return Response(
            error_payload(code="database_unavailable", message="The database is unavailable. Try again shortly."),
            status=503,
            headers={"Retry-After": "5"},
        )
    if isinstance(exc, SuspiciousOperation):
        return Response(error_payload(code="malformed_request", message="Malformed request."), status=400)
    if isinstance(exc, Http404):
        exc = drf_exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = drf_exceptions.PermissionDenied()
    if isinstance(exc, drf_exceptions.APIException):
        if getattr(exc, "auth_header", None):
            headers["WWW-Authenticate"] = exc.auth_header
        if getattr(exc, "wait", None):
            headers["Retry-After"] = str(int(exc.wait))
        if isinstance(exc, drf_exceptions.Throttled):
            return Response(
                error_payload(code="throttled", message=str(exc.detail), details={"retry_after": exc.wait}),
                status=exc.status_code,
                headers=headers,
            )
        if isinstance(exc, drf_exceptions.ValidationError):
            return Response(invalid_input(exc.detail).as_payload(), status=400, headers=headers)
        message = str(exc.detail)
        details: dict[str, Any] = {}
        return Response(
            error_payload(code=_drf_code(exc), message=message, details=details),
            status=exc.status_code,
            headers=headers,
        )
    # Anything else is our bug: log it with the traceback, tell the client nothing internal.
    if isinstance(exc, OSError):
        # Its file name may be the client's (an image path): the log keeps the error, not the name.
        exc.filename = exc.filename2 = None
    logger.exception("Unhandled error in %s", context.get("view").__class__.__name__)
    return Response(error_payload(code="internal_error", message="Internal server error."), status=500)


def json_404(request, exception=None):  # noqa: ARG001 - Django handler signature
    return JsonResponse(error_payload(code="not_found", message="Not found."), status=404)


def json_400(request, exception=None):  # noqa: ARG001
    return JsonResponse(error_payload(code="malformed_request", message="Bad request."), status=400)


def json_403(request, exception=None):  # noqa: ARG001
    return JsonResponse(error_payload(code="forbidden", message="Forbidden."), status=403)


def json_500(request):  # noqa: ARG001
    return JsonResponse(error_payload(code="internal_error", message="Internal server error."), status=500)
