from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apikeys.authentication import request_key
from apikeys.models import MAX_ROTATION_GRACE_SECONDS, SCOPES, APIKey
from apikeys.services import api_key_issue, api_key_revoke_by_name, api_key_rotate
from faceportal.errors import NotFound
from faceportal.fields import StrictCharField, StrictIntegerField
from faceportal.openapi import API_KEY_AUTH, STAFF_AUTH, error_responses
from faceportal.pagination import LargePagePagination, page_of
from faceportal.permissions import IsStaff
from faceportal.serializers import ApiAuthSerializer, RequestSerializer, validated
from organizations.selectors import organization_get


class ApiKeyOutputSerializer(serializers.ModelSerializer):
    organization = serializers.CharField(source="organization.slug")
    api_key_name = serializers.CharField(source="name")

    class Meta:
        model = APIKey
        fields = ["id", "organization", "user", "api_key_name", "prefix", "scopes", "created_at", "last_used_at",
                  "expires_at", "revoked_at"]

    scopes = serializers.ListField(child=serializers.ChoiceField(choices=SCOPES))


class ApiKeyListItemSerializer(ApiKeyOutputSerializer):
    is_expired = serializers.BooleanField()
    rotated_at = serializers.DateTimeField(allow_null=True)
    previous_valid_until = serializers.DateTimeField(
        allow_null=True, help_text="Until then the secret replaced by the last rotation still works."
    )

    class Meta(ApiKeyOutputSerializer.Meta):
        fields = [*ApiKeyOutputSerializer.Meta.fields, "is_expired", "rotated_at", "previous_valid_until"]


ApiKeyPageSerializer = page_of(ApiKeyListItemSerializer, name="ApiKeyPageSerializer")


ApiKeyPagination = LargePagePagination


SCOPES_HELP = (
    "What the key may do: 'recognize' (recognise, verify, the WebSocket), 'enrol' (register people, add faces), "
    "'manage' (read and edit people and faces, the unknown-face inbox). Default: all three."
)


class ApiKeyCreateInputSerializer(RequestSerializer):
    user = StrictCharField(max_length=150)
    api_key_name = StrictCharField(max_length=150)
    scopes = serializers.ListField(child=serializers.ChoiceField(choices=SCOPES), required=False, allow_empty=False,
                                   max_length=len(SCOPES), help_text=SCOPES_HELP)
    expires_at = serializers.DateTimeField(required=False, allow_null=True,
                                           help_text="When the key stops working (ISO 8601, future); null: never.")


class ApiKeyRotateInputSerializer(RequestSerializer):
    grace_seconds = StrictIntegerField(
        required=False, min_value=0, max_value=MAX_ROTATION_GRACE_SECONDS,
        help_text="How long the old secret keeps working (0, the default: it stops at once; at most 24 h).",
    )


class ApiKeyCreatedSerializer(ApiKeyOutputSerializer):
    api_key = StrictCharField(help_text="The secret. Shown once, now; store it safely.")

    class Meta(ApiKeyOutputSerializer.Meta):
        fields = [*ApiKeyOutputSerializer.Meta.fields, "api_key"]


class ApiKeyRotatedSerializer(ApiKeyCreatedSerializer):
    previous_valid_until = serializers.DateTimeField(
        allow_null=True, help_text="Until then the old secret still works; null: it stopped at once."
    )

    class Meta(ApiKeyCreatedSerializer.Meta):
        fields = [*ApiKeyCreatedSerializer.Meta.fields, "previous_valid_until"]


class ApiKeyRevokeInputSerializer(RequestSerializer):
    api_auth = ApiAuthSerializer()


class ApiKeyApi(APIView):
    """POST issues a key (staff); DELETE revokes one (staff, or the very key being revoked)."""

    def get_permissions(self):
        if self.request.method == "POST":
            return [IsStaff()]
        return super().get_permissions()

    @extend_schema(
        request=ApiKeyCreateInputSerializer,
        responses={201: ApiKeyCreatedSerializer, **error_responses(400, 401, 403, 404, 409, 415, 429, 503)},
        summary="Issue an API key (staff only); the secret is returned once", operation_id="api_key_issue",
        tags=["organizations"],
        auth=STAFF_AUTH,
        examples=[
            OpenApiExample("Key for a laptop", value={"user": "alice", "api_key_name": "laptop"}, request_only=True),
            OpenApiExample("Kiosk key: recognise only, for a year",
                           value={"user": "lobby", "api_key_name": "kiosk", "scopes": ["recognize"],
                                  "expires_at": "2026-01-31T00:00:00Z"}, request_only=True),
            OpenApiExample(
                "Issued",
                value={"id": 7, "organization": "acme", "user": "alice", "api_key_name": "laptop",
                       "prefix": "3f9a1c0b7d2e", "scopes": ["recognize", "enrol", "manage"],
                       "created_at": "2025-01-31T09:00:00Z", "last_used_at": None, "expires_at": None,
                       "revoked_at": None, "api_key": "fp_3f9a1c0b7d2e_<secret, shown once>"},
                response_only=True,
                status_codes=["201"],
            ),
        ],
    )
    def post(self, request, organization: str):
        data = validated(ApiKeyCreateInputSerializer, data=request.data)
        org = organization_get(slug=organization)
        issued = api_key_issue(
            organization=org, user=data["user"], name=data["api_key_name"], scopes=data.get("scopes"),
            expires_at=data.get("expires_at"),
        )
        data = ApiKeyOutputSerializer(issued.api_key).data | {"api_key": issued.plaintext}
        return Response(data, status=status.HTTP_201_CREATED)

    @extend_schema(
        request=ApiKeyRevokeInputSerializer,
        responses={200: ApiKeyOutputSerializer, **error_responses(400, 401, 403, 404, 415, 429, 503)},
        summary="Revoke an API key (staff, or the key itself)", operation_id="api_key_revoke",
        tags=["organizations"],
        auth=[*API_KEY_AUTH, *STAFF_AUTH],
        examples=[
            OpenApiExample(
                "Revoke by name", value={"api_auth": {"user": "alice", "api_key_name": "laptop"}}, request_only=True
            ),
        ],
    )
    def delete(self, request, organization: str):
        api_auth = validated(ApiKeyRevokeInputSerializer, data=request.data)["api_auth"]
        key = request_key(request)
        if not request.user.is_staff:
            is_self = (
                key is not None
                and key.organization_slug == organization
                and key.user == api_auth["user"]
                and key.name == api_auth["api_key_name"]
            )
            if not is_self:
                raise exceptions.PermissionDenied("Only staff or the key itself may revoke this key.")
        org = organization_get(slug=organization, active_only=False)
        api_key = api_key_revoke_by_name(organization=org, user=api_auth["user"], name=api_auth["api_key_name"])
        return Response(ApiKeyOutputSerializer(api_key).data)


def _key_of(*, organization: str, key_id: int) -> APIKey:
    """`key_id` among `organization`'s keys; another organisation's key is as missing as none."""
    org = organization_get(slug=organization, active_only=False)
    api_key = APIKey.objects.select_related("organization").filter(organization=org, pk=key_id).first()
    if api_key is None:
        raise NotFound(f"No such API key in '{org.slug}'.", code="api_key_not_found")
    return api_key


class ApiKeyListApi(APIView):
    permission_classes = [IsStaff]
    required_scope = "staff"

    @extend_schema(
        responses={200: ApiKeyPageSerializer, **error_responses(400, 401, 403, 404, 429, 503)},
        summary="List an organization's API keys, without secrets (staff only)", operation_id="api_key_list",
        description="Revoked keys are listed too (with revoked_at), newest first.",
        tags=["organizations"], auth=STAFF_AUTH,
        parameters=[OpenApiParameter("page", int), OpenApiParameter("page_size", int)],
    )
    def get(self, request, organization: str):
        org = organization_get(slug=organization, active_only=False)
        paginator = ApiKeyPagination()
        keys = APIKey.objects.filter(organization=org).select_related("organization").order_by("-created_at", "-id")
        page = paginator.paginate_queryset(keys, request, view=self)
        return paginator.get_paginated_response(ApiKeyListItemSerializer(page, many=True).data)


class ApiKeyRotateApi(APIView):
    permission_classes = [IsStaff]
    required_scope = "staff"

    @extend_schema(
        request=ApiKeyRotateInputSerializer,
        responses={200: ApiKeyRotatedSerializer, **error_responses(400, 401, 403, 404, 409, 415, 429, 503)},
        summary="Rotate an API key: a new secret, returned once (staff only)", operation_id="api_key_rotate",
        description="The key keeps its id, name and scopes and gets a new prefix and secret. The old secret stops "
        "at once, or after grace_seconds (at most 86400). A revoked or expired key answers 409.",
        tags=["organizations"], auth=STAFF_AUTH,
        examples=[OpenApiExample("An hour to roll out the new secret", value={"grace_seconds": 3600},
                                 request_only=True)],
    )
    def post(self, request, organization: str, key_id: int):
        data = validated(ApiKeyRotateInputSerializer, data=request.data)
        rotated = api_key_rotate(api_key=_key_of(organization=organization, key_id=key_id),
                                 grace_seconds=data.get("grace_seconds", 0))
        body = ApiKeyOutputSerializer(rotated.api_key).data | {
            "api_key": rotated.plaintext,
            "previous_valid_until": serializers.DateTimeField().to_representation(rotated.api_key.previous_valid_until)
            if rotated.api_key.previous_valid_until else None,
        }
        response = Response(body)
        response["Cache-Control"] = "no-store"
        return response
