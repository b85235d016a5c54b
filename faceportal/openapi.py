"""OpenAPI pieces shared by every API module: the API-key security schemes, the one error shape,
and ready-made error responses with examples. Imported by `faceportal.urls` so the extension is
registered before any schema is generated."""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, inline_serializer
from rest_framework import serializers

API_KEY_BEARER = "apiKeyBearer"
API_KEY_HEADER = "apiKeyHeader"
# Security requirements, alternatives (OR): an organisation's key in either header; staff
# credentials by HTTP Basic or the admin's session cookie.
API_KEY_AUTH = [{API_KEY_BEARER: []}, {API_KEY_HEADER: []}]
STAFF_AUTH = [{"basicAuth": []}, {"cookieAuth": []}]


SECURITY_SCHEMES = {
    API_KEY_BEARER: {
        "type": "http",
        "scheme": "bearer",
        "description": "An organisation's API key: `Authorization: Bearer <key>`.",
    },
    API_KEY_HEADER: {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "The same API key in the `X-API-Key` header.",
    },
    "basicAuth": {"type": "http", "scheme": "basic", "description": "Staff username and password."},
    "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "sessionid", "description": "Staff admin session."},
}


class APIKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "apikeys.authentication.APIKeyAuthentication"
    name = [API_KEY_BEARER, API_KEY_HEADER]

    def get_security_definition(self, auto_schema):
        return [SECURITY_SCHEMES[API_KEY_BEARER], SECURITY_SCHEMES[API_KEY_HEADER]]

    def get_security_requirement(self, auto_schema):
        return API_KEY_AUTH


def add_security_schemes(result, generator, request, public):
    """Postprocessing hook: operations name their schemes explicitly (`auth=`), so declare them all."""
    schemes = result.setdefault("components", {}).setdefault("securitySchemes", {})
    for name, definition in SECURITY_SCHEMES.items():
        schemes.setdefault(name, definition)
    return result


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. `invalid_input`, `no_face`.")
    message = serializers.CharField(help_text="Human-readable explanation.")
    details = serializers.DictField(help_text="Context: the offending field, image index, limits ...")


class ErrorSerializer(serializers.Serializer):
    error = ErrorBodySerializer()


ERROR_EXAMPLES: dict[int, tuple[str, str, str, dict]] = {
    400: ("Invalid input", "invalid_input", "'threshold' must be between 0 and 1.", {"field": "threshold"}),
    401: ("Missing or bad credentials", "authentication_failed", "Invalid, revoked or unknown API key.", {}),
    403: ("Wrong organisation", "forbidden", "This API key may not access that organization.", {}),
    404: ("Unknown resource", "not_found", "Not found.", {}),
    409: ("Already exists", "organization_exists", "Organization 'acme' already exists.", {}),
    413: ("Too large", "payload_too_large", "Request body is too large.", {}),
    415: ("Wrong content type", "unsupported_media_type", 'Unsupported media type "text/plain" in request.', {}),
    422: ("No face", "no_face", "No usable face was found in any image; nothing was stored.",
          {"images": [{"index": 0, "reason": "no face detected"}]}),
    429: ("Throttled", "throttled", "Request was throttled.", {}),
    503: ("Dependency down", "vector_store_unavailable", "The vector store is unavailable; try again.", {}),
}
ERROR_DESCRIPTIONS = {
    400: "Invalid input (field, image or parameter); `details` names what.",
    401: "No credentials, or an invalid, revoked or unknown key.",
    403: "Authenticated, but not allowed here.",
    404: "Organisation, person or face not found.",
    409: "Conflicts with an existing resource.",
    413: "Body or image over the configured limits.",
    415: "Body is neither JSON nor multipart.",
    422: "The images were readable but held no usable face.",
    429: "Too many requests.",
    503: "A dependency (vector store, database) is unavailable.",
}


def error_responses(*statuses: int) -> dict[int, OpenApiResponse]:
    """`{status: response}` for `extend_schema(responses=...)`, each with the error shape and an example."""
    responses = {}
    for status in statuses:
        summary, code, message, details = ERROR_EXAMPLES[status]
        responses[status] = OpenApiResponse(
            response=ErrorSerializer,
            description=ERROR_DESCRIPTIONS[status],
            examples=[
                OpenApiExample(
                    summary,
                    value={"error": {"code": code, "message": message, "details": details}},
                    response_only=True,
                    status_codes=[str(status)],
                )
            ],
        )
    return responses


# Errors every organisation-scoped data route can answer.
DATA_ROUTE_ERRORS = (400, 401, 403, 404, 413, 415, 429, 503)

HealthSerializer = inline_serializer("Health", {"status": serializers.CharField()})


class CheckSerializer(serializers.Serializer):
    ready = serializers.BooleanField()
    detail = serializers.CharField()


class ReadinessSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["ready"])
    checks = serializers.DictField(child=CheckSerializer(), help_text="database, cache, vector_store, model")


NOT_READY_EXAMPLE = {
    "error": {
        "code": "not_ready",
        "message": "Not ready: cache.",
        "details": {
            "not_ready": ["cache"],
            "checks": {
                "database": {"ready": True, "detail": "postgresql"},
                "cache": {"ready": False, "detail": "ConnectionError while checking cache"},
                "vector_store": {"ready": True, "detail": "embedded: ok"},
                "model": {"ready": True, "detail": "Dlib / dlib"},
            },
        },
    }
}
