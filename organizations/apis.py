from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView

from apikeys.authentication import IsStaff
from faceportal.fields import StrictCharField
from organizations.models import Organization
from organizations.services import organization_create


class OrganizationOutputSerializer(serializers.ModelSerializer):
    organization = serializers.CharField(source="slug")

    class Meta:
        model = Organization
        fields = ["organization", "name", "is_active", "created_at"]


class OrganizationCreateInputSerializer(serializers.Serializer):
    # Length and alphabet are checked by the service, so the message is the same everywhere.
    organization = StrictCharField(trim_whitespace=False, allow_blank=True)
    name = StrictCharField(required=False, max_length=200)


class OrganizationCreateApi(APIView):
    permission_classes = [IsStaff]

    @extend_schema(
        request=OrganizationCreateInputSerializer,
        responses={201: OrganizationOutputSerializer},
        summary="Create an organization (staff only)",
    )
    def post(self, request):
        serializer = OrganizationCreateInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        org = organization_create(
            slug=serializer.validated_data["organization"], name=serializer.validated_data.get("name")
        )
        return Response(OrganizationOutputSerializer(org).data, status=status.HTTP_201_CREATED)
