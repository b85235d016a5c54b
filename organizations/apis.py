from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

from faceportal.fields import (
    DisplayNameField,
    StrictBooleanField,
    StrictCharField,
    StrictFloatField,
    StrictIntegerField,
)
from faceportal.openapi import STAFF_AUTH, error_responses
from faceportal.permissions import IsStaff
from faceportal.serializers import RequestSerializer, validated
from organizations.models import MAX_UNKNOWN_MAX_KEPT, MAX_UNKNOWN_RETENTION_DAYS, Organization
from organizations.selectors import organization_get, organization_list_with_counts
from organizations.services import organization_create, organization_delete, organization_update

SETTINGS_FIELDS = ["false_match_rate", "keep_unknown_faces", "unknown_retention_days", "unknown_max_kept"]


class OrganizationOutputSerializer(serializers.ModelSerializer):
    organization = serializers.CharField(source="slug")

    class Meta:
        model = Organization
        fields = ["organization", "name", "is_active", "created_at"]


class OrganizationDetailOutputSerializer(serializers.ModelSerializer):
    organization = serializers.CharField(source="slug")

    class Meta:
        model = Organization
        fields = ["organization", "name", "is_active", *SETTINGS_FIELDS, "created_at"]


class OrganizationListItemSerializer(OrganizationDetailOutputSerializer):
    people_count = serializers.IntegerField()
    face_count = serializers.IntegerField()
    api_key_count = serializers.IntegerField(help_text="Keys not revoked (expired ones included).")

    class Meta(OrganizationDetailOutputSerializer.Meta):
        fields = [*OrganizationDetailOutputSerializer.Meta.fields, "people_count", "face_count", "api_key_count"]


class OrganizationPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = OrganizationListItemSerializer(many=True)


class OrganizationPagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class OrganizationUpdateInputSerializer(RequestSerializer):
    name = StrictCharField(required=False, max_length=200, allow_blank=False)
    is_active = StrictBooleanField(required=False)
    false_match_rate = StrictFloatField(required=False, min_value=1e-6, max_value=0.5)
    keep_unknown_faces = StrictBooleanField(required=False)
    unknown_retention_days = StrictIntegerField(required=False, min_value=1, max_value=MAX_UNKNOWN_RETENTION_DAYS)
    unknown_max_kept = StrictIntegerField(required=False, min_value=1, max_value=MAX_UNKNOWN_MAX_KEPT)


class OrganizationCreateInputSerializer(RequestSerializer):
    # Length and alphabet are checked by the service, so the message is the same everywhere.
    organization = StrictCharField(trim_whitespace=False, allow_blank=True)
    name = DisplayNameField(required=False, max_length=200)


class OrganizationCreateApi(APIView):
    """GET lists the organisations, POST creates one (both staff)."""

    permission_classes = [IsStaff]
    required_scope = "staff"

    @extend_schema(
        responses={200: OrganizationPageSerializer, **error_responses(400, 401, 403, 404, 429, 503)},
        summary="List organizations with their people, face and key counts (staff only)",
        operation_id="organization_list", tags=["organizations"], auth=STAFF_AUTH,
        parameters=[OpenApiParameter("page", int), OpenApiParameter("page_size", int)],
    )
    def get(self, request):
        paginator = OrganizationPagination()
        page = paginator.paginate_queryset(organization_list_with_counts(), request, view=self)
        return paginator.get_paginated_response(OrganizationListItemSerializer(page, many=True).data)

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


class OrganizationDetailApi(APIView):
    permission_classes = [IsStaff]
    required_scope = "staff"

    @extend_schema(responses={200: OrganizationDetailOutputSerializer, **error_responses(401, 403, 404, 429, 503)},
                   summary="An organization and its settings (staff only)", operation_id="organization_get",
                   tags=["organizations"], auth=STAFF_AUTH)
    def get(self, request, organization: str):
        org = organization_get(slug=organization, active_only=False)
        return Response(OrganizationDetailOutputSerializer(org).data)

    @extend_schema(
        request=OrganizationUpdateInputSerializer,
        responses={200: OrganizationDetailOutputSerializer, **error_responses(400, 401, 403, 404, 415, 429, 503)},
        summary="Change an organization's name, state or settings (staff only)", operation_id="organization_update",
        description="Only the fields sent change. keep_unknown_faces turns on keeping faces decided unknown "
        "(docs/UNKNOWN_FACES.md); unknown_retention_days and unknown_max_kept bound what is kept.",
        tags=["organizations"], auth=STAFF_AUTH,
        examples=[OpenApiExample("Keep unknowns for a week", value={"keep_unknown_faces": True,
                                                                   "unknown_retention_days": 7}, request_only=True)],
    )
    def patch(self, request, organization: str):
        data = validated(OrganizationUpdateInputSerializer, data=request.data)
        org = organization_update(organization=organization_get(slug=organization, active_only=False), **data)
        return Response(OrganizationDetailOutputSerializer(org).data)

    @extend_schema(
        request=None,
        responses={204: None, **error_responses(401, 403, 404, 429, 503)},
        summary="Delete an organization and everything in it (staff only)", operation_id="organization_delete",
        description="Removes every person, face, vector (on the configured vector backend), API key and kept "
        "unknown face of the organization; its keys stop working at once. Not reversible.",
        tags=["organizations"], auth=STAFF_AUTH,
    )
    def delete(self, request, organization: str):
        organization_delete(organization=organization_get(slug=organization, active_only=False))
        return Response(status=status.HTTP_204_NO_CONTENT)
