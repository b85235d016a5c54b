"""The organisation's answer shapes and its create body, shared by the routes that show one
(organizations/apis.py) and the console's listing and create route (console/apis.py)."""

from __future__ import annotations

from rest_framework import serializers

from faceportal.fields import DisplayNameField, StrictCharField
from faceportal.serializers import RequestSerializer
from organizations.models import Organization

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


class OrganizationCreateInputSerializer(RequestSerializer):
    # Length and alphabet are checked by the service, so the message is the same everywhere.
    organization = StrictCharField(trim_whitespace=False, allow_blank=True)
    name = DisplayNameField(required=False, max_length=200)
