from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import status
from rest_framework.response import Response
from rest_framework.views import APIView

from faceportal.fields import (
    StrictBooleanField,
    StrictCharField,
    StrictFloatField,
    StrictIntegerField,
)
from faceportal.openapi import STAFF_AUTH, error_responses
from faceportal.permissions import IsStaff
from faceportal.serializers import RequestSerializer, validated
from organizations.models import MAX_UNKNOWN_MAX_KEPT, MAX_UNKNOWN_RETENTION_DAYS
from organizations.selectors import organization_get
from organizations.serializers import OrganizationDetailOutputSerializer
from organizations.services import organization_delete, organization_update


class OrganizationUpdateInputSerializer(RequestSerializer):
    name = StrictCharField(required=False, max_length=200, allow_blank=False)
    is_active = StrictBooleanField(required=False)
    false_match_rate = StrictFloatField(required=False, min_value=1e-6, max_value=0.5)
    keep_unknown_faces = StrictBooleanField(required=False)
    unknown_retention_days = StrictIntegerField(required=False, min_value=1, max_value=MAX_UNKNOWN_RETENTION_DAYS)
    unknown_max_kept = StrictIntegerField(required=False, min_value=1, max_value=MAX_UNKNOWN_MAX_KEPT)


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
