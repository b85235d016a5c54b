"""The unknown-faces routes' request and answer shapes."""

from __future__ import annotations

from django.urls import reverse
from rest_framework import serializers

from faceportal.fields import StrictBooleanField, StrictIntegerField
from faceportal.pagination import page_of
from faceportal.serializers import ApiAuthSerializer, BoxSerializer, RequestSerializer
from faces.models import UnknownFace
from faces.serializers import PersonNameField, PersonOutputSerializer


def thumbnail_url(slug: str, unknown_id: int) -> str:
    return reverse("unknown-face-thumbnail", kwargs={"organization": slug, "unknown_id": unknown_id})


class UnknownFaceListQuerySerializer(RequestSerializer):
    cluster = StrictIntegerField(required=False, min_value=1, help_text="Only this cluster's faces")
    page = serializers.IntegerField(required=False, min_value=1)
    page_size = serializers.IntegerField(required=False, min_value=1)


class PageQuerySerializer(RequestSerializer):
    page = serializers.IntegerField(required=False, min_value=1)
    page_size = serializers.IntegerField(required=False, min_value=1)


class UnknownFaceOutputSerializer(serializers.ModelSerializer):
    box = BoxSerializer()
    thumbnail_url = serializers.SerializerMethodField(help_text="The kept crop (JPEG); same API key.")

    class Meta:
        model = UnknownFace
        fields = ["id", "seen_at", "box", "detection_confidence", "quality", "api_key_name", "source",
                  "model_name", "thumbnail_url"]

    def get_thumbnail_url(self, unknown: UnknownFace) -> str:
        return thumbnail_url(self.context["organization_slug"], unknown.pk)


UnknownFacePageSerializer = page_of(UnknownFaceOutputSerializer, name="UnknownFacePageSerializer")


class SampleFaceSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    thumbnail_url = serializers.CharField()


class UnknownClusterOutputSerializer(serializers.Serializer):
    """A `unknowns.clustering.Cluster`."""

    id = serializers.IntegerField(help_text="Stable while its oldest face is kept")
    size = serializers.IntegerField()
    sample_faces = serializers.SerializerMethodField()
    first_seen = serializers.DateTimeField()
    last_seen = serializers.DateTimeField()
    faces_url = serializers.SerializerMethodField(help_text="Every face of the cluster")

    def get_sample_faces(self, cluster) -> list[dict]:
        slug = self.context["organization_slug"]
        return SampleFaceSerializer([{"id": face_id, "thumbnail_url": thumbnail_url(slug, face_id)}
                                     for face_id in cluster.sample_face_ids], many=True).data

    def get_faces_url(self, cluster) -> str:
        return reverse("unknown-face-list", kwargs={"organization": self.context["organization_slug"]}) + \
            f"?cluster={cluster.id}"


UnknownClusterPageSerializer = page_of(UnknownClusterOutputSerializer, name="UnknownClusterPageSerializer")


class ClusterAssignInputSerializer(RequestSerializer):
    name = PersonNameField(required=False, help_text="A new person of this name (or the existing one of it)")
    person = StrictIntegerField(required=False, min_value=1, help_text="An existing person's id")
    allow_duplicate = StrictBooleanField(
        required=False, default=False,
        help_text="Assign even when a face already matches a different person (otherwise 409).")
    api_auth = ApiAuthSerializer(required=False)

    def validate(self, attrs: dict) -> dict:
        if ("name" in attrs) == ("person" in attrs):
            raise serializers.ValidationError({"name": ["Give exactly one of 'name' or 'person'."]})
        return attrs


class AssignedFaceSerializer(serializers.Serializer):
    unknown_face = serializers.IntegerField()
    accepted = serializers.BooleanField()
    face_id = serializers.IntegerField(allow_null=True)
    code = serializers.CharField(allow_null=True, help_text="duplicate_image when the person has it already")
    reason = serializers.CharField(allow_null=True)


class ClusterAssignOutputSerializer(serializers.Serializer):
    person = PersonOutputSerializer()
    created = serializers.BooleanField()
    faces_added = serializers.IntegerField()
    faces = AssignedFaceSerializer(many=True)


class ClusterDismissOutputSerializer(serializers.Serializer):
    cluster = serializers.IntegerField()
    faces_removed = serializers.IntegerField()


class UnknownDeleteAllOutputSerializer(serializers.Serializer):
    faces_removed = serializers.IntegerField()
