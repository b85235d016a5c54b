"""The faces routes' request and answer shapes: Input serializers validate every body (JSON or
multipart); Output serializers shape the services' results, for REST and the admin alike, and are
what the OpenAPI schema shows."""

from __future__ import annotations

from django.conf import settings
from django.urls import reverse
from rest_framework import serializers

from faceportal.fields import DisplayNameField, ImageSourceField, PlainTextField, StrictBooleanField, TimingsField
from faceportal.serializers import ApiAuthSerializer, BoxSerializer, RequestSerializer
from faces.engine.base import FaceBox
from faces.models import MAX_NAME_LENGTH, Face, Person


class PersonNameField(DisplayNameField):
    def __init__(self, **kwargs):
        super().__init__(max_length=MAX_NAME_LENGTH, **kwargs)


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
    api_auth = ApiAuthSerializer(required=False, help_text="Optional (a JSON string in a multipart form).")

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
    name = PersonNameField()
    api_auth = ApiAuthSerializer(required=False)


class PersonSearchSerializer(RequestSerializer):
    search = PlainTextField(required=False, allow_blank=True, max_length=MAX_NAME_LENGTH,
                            help_text="Case-insensitive name filter")
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
        fields = ["id", "name", "face_count", "created_at", "updated_at"]


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


class PersonPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = PersonListItemSerializer(many=True)
