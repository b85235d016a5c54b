"""The faces routes' request and answer shapes: Input serializers validate every body (JSON or
multipart); Output serializers shape the services' results, for REST and the admin alike, and are
what the OpenAPI schema shows."""

from __future__ import annotations

import json

from django.conf import settings
from django.urls import reverse
from rest_framework import serializers

from faceportal.fields import (
    DisplayNameField,
    ImageSourceField,
    PlainTextField,
    StrictBooleanField,
    StrictIntegerField,
    TimingsField,
)
from faceportal.pagination import page_of
from faceportal.serializers import ApiAuthSerializer, BoxSerializer, RequestSerializer
from faces.engine.base import FaceBox
from faces.models import MAX_EXTERNAL_ID_LENGTH, MAX_METADATA_BYTES, MAX_NAME_LENGTH, Face, Person


class PersonNameField(DisplayNameField):
    def __init__(self, **kwargs):
        super().__init__(max_length=MAX_NAME_LENGTH, **kwargs)


class ExternalIdField(PlainTextField):
    def __init__(self, **kwargs):
        super().__init__(max_length=MAX_EXTERNAL_ID_LENGTH, **kwargs)


class MetadataField(serializers.JSONField):
    """A JSON object of at most MAX_METADATA_BYTES as compact JSON."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if not isinstance(value, dict):
            raise serializers.ValidationError("Must be a JSON object.")
        try:
            size = len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode())
        except (TypeError, ValueError, UnicodeEncodeError):  # a lone surrogate cannot be stored
            raise serializers.ValidationError("Must be valid JSON text.") from None
        if size > MAX_METADATA_BYTES:
            raise serializers.ValidationError(f"At most {MAX_METADATA_BYTES} bytes as JSON ({size} given).")
        if "\\u0000" in json.dumps(value):  # PostgreSQL's jsonb cannot hold a NUL
            raise serializers.ValidationError("Must not contain NUL characters.")
        return value


def person_name_validate(name: str) -> str:
    """A name from outside a request (a folder name in bulk enrolment), by the same rules."""
    return PersonNameField().run_validation(name)


class RegisterInputSerializer(RequestSerializer):
    name = PersonNameField()
    images = serializers.ListField(
        child=ImageSourceField(), min_length=1,
        help_text="Each: base64 string, data URI, http(s) URL, server path, or {base64|url|path: ...}; "
        "in a multipart form, repeated 'images' fields (files or text).",
    )
    boxes = serializers.ListField(
        child=BoxSerializer(allow_null=True), required=False, allow_null=True,
        help_text="One entry per image, null or {x, y, w, h}: the face to register when a photo shows several "
        "(a JSON string in a multipart form).")
    allow_duplicate = StrictBooleanField(
        required=False, default=False,
        help_text="Register even when a face already matches a different person (otherwise 409).")
    external_id = ExternalIdField(required=False, allow_null=True,
                                  help_text="Your own id for this person (unique in the organisation)")
    metadata = MetadataField(required=False, help_text=f"A JSON object (at most {MAX_METADATA_BYTES} bytes)")
    keep_best = StrictIntegerField(
        required=False, allow_null=True, min_value=1,
        help_text="Store at most this many faces: the sharpest of the images that pass the gates (a burst of "
        "camera frames). The others are reported with code 'not_among_best'. Absent: every usable image.")
    api_auth = ApiAuthSerializer(required=False, help_text="Optional (a JSON string in a multipart form).")

    def validate_keep_best(self, keep_best: int | None) -> int | None:
        limit = settings.FACEPORTAL_MAX_IMAGES_PER_REQUEST
        if keep_best is not None and keep_best > limit:
            raise serializers.ValidationError(f"At most {limit}: no request has more images.")
        return keep_best

    def validate_images(self, images: list) -> list:
        limit = settings.FACEPORTAL_MAX_IMAGES_PER_REQUEST  # a setting: not fixed when the class is made
        if len(images) > limit:
            raise serializers.ValidationError(f"At most {limit} images per request.")
        return images

    def validate(self, attrs: dict) -> dict:
        boxes = attrs.get("boxes")
        if boxes is None:
            attrs["boxes"] = None
            return attrs
        if len(boxes) != len(attrs["images"]):
            raise serializers.ValidationError(
                {"boxes": [f"One entry (or null) per image: {len(attrs['images'])}, not {len(boxes)}."]})
        attrs["boxes"] = [None if box is None else FaceBox(**box) for box in boxes]
        return attrs


class PersonRenameInputSerializer(RequestSerializer):
    """PATCH a person: any of name, external_id (null clears it) and metadata (replaced whole)."""

    name = PersonNameField(required=False)
    external_id = ExternalIdField(required=False, allow_null=True)
    metadata = MetadataField(required=False)
    api_auth = ApiAuthSerializer(required=False)

    def validate(self, attrs: dict) -> dict:
        if not {"name", "external_id", "metadata"} & set(attrs):
            raise serializers.ValidationError({"name": ["Give at least one of 'name', 'external_id', 'metadata'."]})
        return attrs


class PersonMergeInputSerializer(RequestSerializer):
    api_auth = ApiAuthSerializer(required=False)

    def get_fields(self):
        # "from" is a Python keyword: the field is declared here rather than as a class attribute.
        return {"from": StrictIntegerField(min_value=1, help_text="The person whose faces move here; deleted"),
                **super().get_fields()}


class FaceMoveInputSerializer(RequestSerializer):
    to = StrictIntegerField(min_value=1, help_text="The person the face moves to")
    api_auth = ApiAuthSerializer(required=False)


class PersonSearchSerializer(RequestSerializer):
    search = PlainTextField(required=False, allow_blank=True, max_length=MAX_NAME_LENGTH,
                            help_text="Case-insensitive name filter")
    external_id = ExternalIdField(required=False, help_text="Only the person with this external_id")
    page = serializers.IntegerField(required=False, min_value=1)
    page_size = serializers.IntegerField(required=False, min_value=1)


class ImageOutcomeSerializer(serializers.Serializer):
    index = serializers.IntegerField()
    accepted = serializers.BooleanField()
    reason = serializers.CharField(allow_null=True)
    face_id = serializers.IntegerField(allow_null=True)
    box = BoxSerializer(allow_null=True)
    detection_confidence = serializers.FloatField(allow_null=True)
    faces_detected = serializers.IntegerField()
    code = serializers.CharField(
        allow_null=True,
        help_text="Why the image added no face: no_face, invalid_image, image_too_large, image_url_forbidden, "
        "no_face_at_box, ambiguous_faces, face_too_small, face_too_blurred, face_not_frontal, duplicate_image, ...; "
        "null when accepted.")
    quality = serializers.DictField(child=serializers.FloatField(), allow_null=True,
                                    help_text="size (px), sharpness, yaw of the face used")


class FaceOutputSerializer(serializers.ModelSerializer):
    box = BoxSerializer()
    thumbnail_url = serializers.SerializerMethodField(
        help_text="The stored face crop (JPEG); fetch it with the same API key."
    )

    class Meta:
        model = Face
        fields = ["id", "box", "detection_confidence", "model_name", "created_at", "thumbnail_url"]

    def get_thumbnail_url(self, face: Face) -> str | None:
        if not face.crop:
            return None
        slug = self.context.get("organization_slug") or face.organization.slug
        return reverse("face-thumbnail", kwargs={"organization": slug, "person_id": face.person_id, "face_id": face.pk})


class PersonOutputSerializer(serializers.ModelSerializer):
    face_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Person
        fields = ["id", "name", "external_id", "metadata", "face_count", "created_at", "updated_at"]


class PersonListItemSerializer(PersonOutputSerializer):
    thumbnail_url = serializers.SerializerMethodField(help_text="A crop of the person's first face (same API key).")

    class Meta(PersonOutputSerializer.Meta):
        fields = [*PersonOutputSerializer.Meta.fields, "thumbnail_url"]

    def get_thumbnail_url(self, person: Person) -> str | None:
        face_id = getattr(person, "thumbnail_face_id", None)
        if face_id is None:
            return None
        return reverse("face-thumbnail", kwargs={"organization": self.context["organization_slug"],
                                                 "person_id": person.pk, "face_id": face_id})


class PersonDetailOutputSerializer(PersonOutputSerializer):
    faces = FaceOutputSerializer(many=True, read_only=True)

    class Meta(PersonOutputSerializer.Meta):
        fields = [*PersonOutputSerializer.Meta.fields, "faces"]


class RegisterOutputSerializer(serializers.Serializer):
    """A `faces.services.RegistrationResult`."""

    person = PersonOutputSerializer()
    created = serializers.BooleanField()
    faces_added = serializers.IntegerField(source="accepted_count")
    images = ImageOutcomeSerializer(many=True, source="outcomes")
    timings_ms = TimingsField()


PersonPageSerializer = page_of(PersonListItemSerializer, name="PersonPageSerializer")
