from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from faceportal.fields import DisplayNameField, StrictCharField
from faceportal.openapi import STAFF_AUTH, error_responses
from faceportal.permissions import IsStaff
from faceportal.serializers import RequestSerializer, validated
from organizations.models import Organization
from organizations.services import organization_create


class OrganizationOutputSerializer(serializers.ModelSerializer):
    organization = serializers.CharField(source="slug")

    class Meta:
        model = Organization
        fields = ["organization", "name", "is_active", "created_at"]


class OrganizationCreateInputSerializer(RequestSerializer):
    # Length and alphabet are checked by the service, so the message is the same everywhere.
    organization = StrictCharField(trim_whitespace=False, allow_blank=True)
    name = DisplayNameField(required=False, max_length=200)


class OrganizationCreateApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(
        request=OrganizationCreateInputSerializer,
        responses={201: OrganizationOutputSerializer, **error_responses(400, 401, 403, 409, 415, 429, 503)},
        summary="Create an organization (staff only)", operation_id="organization_create",
        tags=["organizations"],
        auth=STAFF_AUTH,
        examples=[
            OpenApiExample("New tenant", value={"organization": "acme", "name": "Acme Corp"}, request_only=True),
            OpenApiExample(
                "Created",
                value={"organization": "acme", "name": "Acme Corp", "is_active": True,
                       "created_at": "2025-01-31T09:00:00Z"},
                response_only=True,
                status_codes=["201"],
            ),
        ],
    )
    def post(self, request):
        data = validated(OrganizationCreateInputSerializer, data=request.data)
        org = organization_create(
            slug=data["organization"], name=data.get("name")
        )
        return Response(OrganizationOutputSerializer(org).data, status=status.HTTP_201_CREATED)
