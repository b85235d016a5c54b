"""OpenAPI pieces shared by every API module: the API-key security schemes, the one error shape,
and ready-made error responses with examples. Imported by `faceportal.urls` so the extension is
registered before any schema is generated."""

from __future__ import annotations

import copy

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, inline_serializer
from rest_framework import serializers

from faceportal.fields import ImageSourceField

API_KEY_BEARER = "apiKeyBearer"
API_KEY_HEADER = "apiKeyHeader"
# Security requirements, alternatives (OR): an organisation's key in either header; staff
# credentials by HTTP Basic. (The admin's session cookie also works for staff routes, but it is
# not something to type into Swagger's Authorize dialog, so it is not offered there.)
API_KEY_AUTH = [{API_KEY_BEARER: []}, {API_KEY_HEADER: []}]
STAFF_AUTH = [{"basicAuth": []}]


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
}


class APIKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "apikeys.authentication.APIKeyAuthentication"
    name = [API_KEY_BEARER, API_KEY_HEADER]

    def get_security_definition(self, auto_schema):
        return [SECURITY_SCHEMES[API_KEY_BEARER], SECURITY_SCHEMES[API_KEY_HEADER]]

    def get_security_requirement(self, auto_schema):
        return API_KEY_AUTH


def add_security_schemes(result, generator, request, public):
    """Postprocessing hook: operations name their schemes explicitly (`auth=`), so declare them all,
    and only them (no session cookie in the Authorize dialog)."""
    schemes = result.setdefault("components", {}).setdefault("securitySchemes", {})
    schemes.pop("cookieAuth", None)
    for name, definition in SECURITY_SCHEMES.items():
        schemes.setdefault(name, definition)
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if isinstance(operation, dict) and "security" in operation:
                operation["security"] = [item for item in operation["security"] if "cookieAuth" not in item]
    return result


class FacePortalAutoSchema(AutoSchema):
    """drf-spectacular's schema, plus: a DELETE that declares a body (`extend_schema(request=...)`,
    e.g. key revocation's `api_auth`) shows it, and file uploads list multipart first, so Swagger
    UI offers the file picker by default."""

    def get_operation(self, *args, **kwargs):
        """Each operation names the API-key scope it needs (`x-required-scope`, and a line of its
        description), from the view's `required_scope`; staff routes say `staff`."""
        operation = super().get_operation(*args, **kwargs)
        scope = getattr(self.view, "required_scope", None)
        if operation is not None and scope:
            operation["x-required-scope"] = scope
            line = ("Staff only (session or HTTP Basic)." if scope == "staff"
                    else f"Needs an API key with the `{scope}` scope.")
            operation["description"] = f"{operation.get('description', '')}\n\n{line}".strip()
        return operation

    def _get_request_body(self, direction="request"):
        if self.method == "DELETE" and self._declares_request():
            self.method = "POST"  # the parent documents bodies of POST/PUT/PATCH only
            try:
                body = super()._get_request_body(direction)
            finally:
                self.method = "DELETE"
        else:
            body = super()._get_request_body(direction)
        return self._multipart_first(body)

    def _declares_request(self) -> bool:
        # `extend_schema(request=...)` overrides get_request_serializer; plain APIViews have none.
        try:
            return self.get_request_serializer() is not None
        except Exception:  # a view whose serializer cannot be built has no body to document
            return False

    @staticmethod
    def _multipart_first(body):
        if not body or "content" not in body:
            return body
        content = body["content"]
        # Only where the upload form differs from the JSON body (a file field), not for every body.
        if ("multipart/form-data" in content and "application/json" in content
                and content["multipart/form-data"].get("schema") != content["application/json"].get("schema")):
            body["content"] = {"multipart/form-data": content["multipart/form-data"],
                               **{kind: schema for kind, schema in content.items() if kind != "multipart/form-data"}}
        return body


def _upload_field(field: serializers.Field) -> serializers.Field:
    """How a form shows one field of an Input serializer (for the docs; the rules stay there)."""
    options = {"required": field.required, "help_text": field.help_text}
    if isinstance(field, ImageSourceField):
        return serializers.FileField(**options)
    if isinstance(field, serializers.ListField) and isinstance(field.child, ImageSourceField):
        return serializers.ListField(child=serializers.FileField(), **options)
    if isinstance(field, (serializers.BaseSerializer, serializers.ListField, serializers.DictField)):
        return serializers.CharField(**{**options, "help_text": f"JSON. {field.help_text or ''}".strip()})
    return copy.deepcopy(field)


def json_or_upload(serializer_class: type[serializers.Serializer]) -> dict[str, type[serializers.Serializer]]:
    """A route's request bodies: the Input serializer as JSON, and the same fields as a multipart
    form with file pickers for its images. The form is generated from the serializer, which
    validates both (`faceportal.serializers.RequestSerializer`)."""
    name = serializer_class.__name__.removesuffix("InputSerializer") + "Upload"
    fields = {key: _upload_field(field) for key, field in serializer_class._declared_fields.items()}
    upload = type(name, (serializers.Serializer,), {**fields, "__doc__": serializer_class.__doc__})
    return {"application/json": serializer_class, "multipart/form-data": upload}


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. `invalid_input`, `no_face`.")
    message = serializers.CharField(help_text="Human-readable explanation.")
    details = serializers.DictField(help_text="Context: the offending field, image index, limits ...")


class ErrorSerializer(serializers.Serializer):
    error = ErrorBodySerializer()


ERROR_EXAMPLES: dict[int, tuple[str, str, str, dict]] = {
    400: ("Invalid input", "invalid_input", "'threshold' must be between 0 and 1.", {"field": "threshold"}),
    401: ("Missing or bad credentials", "authentication_failed", "Invalid, expired, revoked or unknown API key.", {}),
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
