"""`/orgs` (staff): the listing counts what faces and apikeys hold of each organisation, so the
route lives here, above them; creating goes through organizations' service."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from console.selectors import organization_list_with_counts
from faceportal.openapi import STAFF_AUTH, error_responses
from faceportal.pagination import PageSizePagination, page_of
from faceportal.permissions import IsStaff
from faceportal.serializers import validated
from organizations.serializers import (
    OrganizationCreateInputSerializer,
    OrganizationDetailOutputSerializer,
    OrganizationOutputSerializer,
)
from organizations.services import organization_create


class OrganizationListItemSerializer(OrganizationDetailOutputSerializer):
    people_count = serializers.IntegerField()
    face_count = serializers.IntegerField()
    api_key_count = serializers.IntegerField(help_text="Keys not revoked (expired ones included).")

    class Meta(OrganizationDetailOutputSerializer.Meta):
        fields = [*OrganizationDetailOutputSerializer.Meta.fields, "people_count", "face_count", "api_key_count"]


OrganizationPageSerializer = page_of(OrganizationListItemSerializer, name="OrganizationPageSerializer")


OrganizationPagination = PageSizePagination


class OrganizationListCreateApi(APIView):
    """GET lists the organisations with their counts, POST creates one (both staff)."""

    permission_classes = [IsStaff]
    required_scope = "staff"

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
