from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apikeys.authentication import request_key
from apikeys.models import APIKey
from apikeys.services import api_key_issue, api_key_revoke_by_name
from faceportal.fields import StrictCharField
from faceportal.openapi import API_KEY_AUTH, STAFF_AUTH, error_responses
from faceportal.permissions import IsStaff
from faceportal.serializers import ApiAuthSerializer, RequestSerializer, validated
from organizations.selectors import organization_get


class ApiKeyOutputSerializer(serializers.ModelSerializer):
    organization = serializers.CharField(source="organization.slug")
    api_key_name = serializers.CharField(source="name")

    class Meta:
        model = APIKey
        fields = ["organization", "user", "api_key_name", "prefix", "created_at", "last_used_at", "revoked_at"]


class ApiKeyCreateInputSerializer(RequestSerializer):
    user = StrictCharField(max_length=150)
    api_key_name = StrictCharField(max_length=150)


class ApiKeyCreatedSerializer(ApiKeyOutputSerializer):
    api_key = StrictCharField(help_text="The secret. Shown once, now; store it safely.")

    class Meta(ApiKeyOutputSerializer.Meta):
        fields = [*ApiKeyOutputSerializer.Meta.fields, "api_key"]


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
            OpenApiExample(
                "Issued",
                value={"organization": "acme", "user": "alice", "api_key_name": "laptop", "prefix": "3f9a1c0b7d2e",
                       "created_at": "2025-01-31T09:00:00Z", "last_used_at": None, "revoked_at": None,
                       "api_key": "fp_3f9a1c0b7d2e_<secret, shown once>"},
                response_only=True,
                status_codes=["201"],
            ),
        ],
    )
    def post(self, request, organization: str):
        data = validated(ApiKeyCreateInputSerializer, data=request.data)
        org = organization_get(slug=organization)
        issued = api_key_issue(
            organization=org, user=data["user"], name=data["api_key_name"]
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
