from __future__ import annotations

import json
from typing import Any

from django.db.models import OuterRef, Subquery
from django.http import HttpResponse
from django.urls import reverse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.response import Response
from rest_framework.views import APIView

# One api_auth shape in the schema, shared with the key routes (re-exported for recognition.apis).
from apikeys.apis import ApiAuthSerializer
from apikeys.authentication import HasOrganizationKey, check_api_auth_body, request_key
from apikeys.services import AuthenticatedKey
from faceportal.errors import InvalidInput, NotFound
from faceportal.openapi import API_KEY_AUTH, DATA_ROUTE_ERRORS, error_responses
from faces.models import Face, Person
from faces.selectors import face_get, person_get, person_list
from faces.services import MAX_NAME_LENGTH, face_delete, person_delete, person_register, person_rename
from organizations.models import Organization
from organizations.selectors import organization_get
from recognition.usage import request_count_increment


class OrganizationScopedApi(APIView):
    """Base for data routes: the key's organisation must be the URL's, and `api_auth` must match."""

    permission_classes = [HasOrganizationKey]

    def finalize_response(self, request, response, *args, **kwargs):
        # `_auth` is set only once authentication ran: reading `request.auth` here could run it
        # again, after it (or the database) already failed.
        key = getattr(request, "_auth", None)
        if isinstance(key, AuthenticatedKey) and key.organization_slug == self.kwargs.get("organization"):
            # Requests per day for the staff overview: authenticated calls to the key's own tenant.
            request_count_increment(organization_id=key.organization_id)
        return super().finalize_response(request, response, *args, **kwargs)

    def organization(self) -> Organization:
        return organization_get(slug=self.kwargs["organization"])

    def body(self) -> dict[str, Any]:
        data = self.request.data
        if not hasattr(data, "get"):
            raise InvalidInput("Request body must be a JSON object.")
        api_auth = data.get("api_auth")
        if isinstance(api_auth, str):  # multipart forms carry it as a JSON string
            try:
                api_auth = json.loads(api_auth)
            except ValueError:
                raise InvalidInput("'api_auth' must be a JSON object.", details={"field": "api_auth"}) from None
        check_api_auth_body(key=request_key(self.request), api_auth=api_auth)
        return data


def images_from_request(request, data) -> list[Any]:
    uploads = request.FILES.getlist("images") or request.FILES.getlist("image")
    if uploads:
        return list(uploads)
    images = data.get("images")
    if images is None:
        raise InvalidInput("'images' is required.", details={"field": "images"})
    if isinstance(images, str) and hasattr(data, "getlist"):  # form field repeated
        images = data.getlist("images")
    return images


def json_field(data, field: str) -> Any:
    """A JSON value; multipart forms carry it as text."""
    value = data.get(field)
    if isinstance(value, str) and hasattr(data, "getlist"):
        try:
            return json.loads(value)
        except ValueError:
            raise InvalidInput(f"'{field}' must be JSON.", details={"field": field}) from None
    return value


def flag_field(data, field: str) -> Any:
    """A boolean; multipart forms send 'true' or 'false'. Anything else is left for the service to refuse."""
    value = data.get(field, False)
    if isinstance(value, str) and hasattr(data, "getlist"):
        return {"true": True, "false": False, "1": True, "0": False}.get(value.strip().lower(), value)
    return value


class RegisterInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    images = serializers.ListField(
        child=serializers.JSONField(),
        help_text="Each: base64 string, data URI, http(s) URL, server path, or {base64|url|path: ...}. "
        "Multipart uploads use repeated 'images' file fields.",
    )
    boxes = serializers.ListField(
        child=serializers.DictField(allow_null=True), required=False,
        help_text="One entry per image, null or {x, y, w, h}: the face to register when a photo shows several.")
    allow_duplicate = serializers.BooleanField(
        required=False, default=False,
        help_text="Register even when a face already matches a different person (otherwise 409).")
    api_auth = ApiAuthSerializer(required=False)


class RegisterMultipartSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    images = serializers.ListField(child=serializers.FileField(), help_text="One or more photos (repeat the field).")
    boxes = serializers.CharField(required=False, help_text="Optional JSON list: null or {x, y, w, h} per image")
    allow_duplicate = serializers.BooleanField(required=False, default=False)
    api_auth = serializers.CharField(required=False, help_text='Optional JSON: {"user": ..., "api_key_name": ...}')


class ApiAuthBodySerializer(serializers.Serializer):
    api_auth = ApiAuthSerializer(required=False, help_text="Optional; when given it must name the key used.")


class BoxSerializer(serializers.Serializer):
    x = serializers.IntegerField()
    y = serializers.IntegerField()
    w = serializers.IntegerField()
    h = serializers.IntegerField()


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
    person = PersonOutputSerializer()
    created = serializers.BooleanField()
    faces_added = serializers.IntegerField()
    images = ImageOutcomeSerializer(many=True)
    timings_ms = serializers.DictField(child=serializers.FloatField())


class PersonPageSerializer(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = PersonListItemSerializer(many=True)


FACE_BOX = {"x": 84, "y": 61, "w": 112, "h": 112}
REGISTER_RESPONSE_EXAMPLE = {
    "person": {"id": 7, "name": "Ada Lovelace", "face_count": 2,
               "created_at": "2025-01-31T09:00:00Z", "updated_at": "2025-01-31T09:00:00Z"},
    "created": True,
    "faces_added": 2,
    "images": [
        {"index": 0, "accepted": True, "reason": None, "face_id": 31, "box": FACE_BOX,
         "detection_confidence": 0.99, "faces_detected": 1, "code": None,
         "quality": {"size": 112, "sharpness": 84.2, "yaw": 0.06}},
        {"index": 1, "accepted": True, "reason": None, "face_id": 32, "box": FACE_BOX,
         "detection_confidence": 0.97, "faces_detected": 2, "code": None,
         "quality": {"size": 104, "sharpness": 61.0, "yaw": 0.11}},
        {"index": 2, "accepted": False, "reason": "no face detected", "face_id": None, "box": None,
         "detection_confidence": None, "faces_detected": 0, "code": "no_face", "quality": None},
        {"index": 3, "accepted": False, "reason": "not valid base64", "face_id": None, "box": None,
         "detection_confidence": None, "faces_detected": 0, "code": "invalid_image", "quality": None},
    ],
    "timings_ms": {"detect": 212.4, "align": 9.8, "embed": 41.0},
}


class RegisterApi(OrganizationScopedApi):
    @extend_schema(
        request={"application/json": RegisterInputSerializer, "multipart/form-data": RegisterMultipartSerializer},
        responses={201: RegisterOutputSerializer, **error_responses(*DATA_ROUTE_ERRORS, 409, 422)},
        summary="Register a person from one or more photos", operation_id="person_register",
        description="Each photo adds one face: the one in 'boxes' when given, else the most prominent (refused "
        "as ambiguous when two are about equally prominent). Registering an existing name adds faces to that "
        "person. Every photo's outcome is reported in `images`, in order (`accepted`, `reason`, `code`): a photo "
        "that cannot be read, has no face, a face too small, blurred or turned away, or that the person already "
        "has, does not stop the others. When no photo yields a usable face nothing is stored (422; a single "
        "unreadable photo answers its own 4xx). A face that already matches a different person is refused with "
        "409 face_matches_existing_person unless allow_duplicate.",
        tags=["faces"],
        auth=API_KEY_AUTH,
        examples=[
            OpenApiExample(
                "Two photos as base64 and a URL",
                value={"name": "Ada Lovelace", "images": ["<base64 JPEG>", "https://example.org/ada.jpg"]},
                request_only=True,
            ),
            OpenApiExample("Registered", value=REGISTER_RESPONSE_EXAMPLE, response_only=True, status_codes=["201"]),
        ],
    )
    def post(self, request, organization: str):
        data = self.body()
        org = self.organization()
        result = person_register(
            organization=org, name=data.get("name"), images=images_from_request(request, data),
            boxes=json_field(data, "boxes"), allow_duplicate=flag_field(data, "allow_duplicate"),
        )
        person = person_get(organization=org, person_id=result.person.pk)
        payload = {
            "person": PersonOutputSerializer(person).data,
            "created": result.created,
            "faces_added": result.accepted_count,
            "images": [outcome.__dict__ for outcome in result.outcomes],
            "timings_ms": {k: round(v, 2) for k, v in result.timings_ms.items()},
        }
        return Response(payload, status=status.HTTP_201_CREATED)


class PeoplePagination(PageNumberPagination):
    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 500


class PersonListApi(OrganizationScopedApi):
    @extend_schema(
        parameters=[OpenApiParameter("search", str, description="Case-insensitive name filter"),
                    OpenApiParameter("page", int), OpenApiParameter("page_size", int)],
        responses={200: PersonPageSerializer, **error_responses(400, 401, 403, 404, 429, 503)},
        summary="List people (paginated, searchable)", operation_id="person_list",
        tags=["faces"],
        auth=API_KEY_AUTH,
    )
    def get(self, request, organization: str):
        search = request.query_params.get("search")
        if search is not None and (len(search) > MAX_NAME_LENGTH or any(ord(char) < 32 for char in search)):
            raise InvalidInput(f"'search' must be at most {MAX_NAME_LENGTH} characters, with no control characters.",
                               details={"field": "search"})
        queryset = person_list(organization=self.organization(), search=search)
        first_face = Face.objects.filter(person=OuterRef("pk")).exclude(crop=b"").order_by("id").values("id")[:1]
        queryset = queryset.annotate(thumbnail_face_id=Subquery(first_face))
        paginator = PeoplePagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        data = PersonListItemSerializer(page, many=True, context={"organization_slug": organization}).data
        return paginator.get_paginated_response(data)


class PersonRenameInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200)
    api_auth = ApiAuthSerializer(required=False)


class PersonDetailApi(OrganizationScopedApi):
    @extend_schema(responses={200: PersonDetailOutputSerializer, **error_responses(401, 403, 404, 429, 503)},
                   summary="A person with their faces", operation_id="person_get", tags=["faces"], auth=API_KEY_AUTH)
    def get(self, request, organization: str, person_id: int):
        person = person_get(organization=self.organization(), person_id=person_id)
        return Response(PersonDetailOutputSerializer(person, context={"organization_slug": organization}).data)

    @extend_schema(request=PersonRenameInputSerializer,
                   responses={200: PersonDetailOutputSerializer,
                              **error_responses(400, 401, 403, 404, 409, 415, 429, 503)},
                   summary="Rename a person", operation_id="person_rename", tags=["faces"], auth=API_KEY_AUTH,
                   examples=[OpenApiExample("New name", value={"name": "Ada King"}, request_only=True)])
    def patch(self, request, organization: str, person_id: int):
        data = self.body()
        org = self.organization()
        person = person_rename(person=person_get(organization=org, person_id=person_id), name=data.get("name"))
        person = person_get(organization=org, person_id=person.pk)
        return Response(PersonDetailOutputSerializer(person, context={"organization_slug": organization}).data)

    @extend_schema(request=ApiAuthBodySerializer,
                   responses={204: None, **error_responses(400, 401, 403, 404, 429, 503)},
                   summary="Delete a person, their faces and vectors", operation_id="person_delete",
                   tags=["faces"], auth=API_KEY_AUTH)
    def delete(self, request, organization: str, person_id: int):
        self.body()
        person_delete(person=person_get(organization=self.organization(), person_id=person_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class FaceDetailApi(OrganizationScopedApi):
    @extend_schema(request=ApiAuthBodySerializer,
                   responses={204: None, **error_responses(400, 401, 403, 404, 429, 503)},
                   summary="Delete one face of a person", operation_id="face_delete", tags=["faces"], auth=API_KEY_AUTH)
    def delete(self, request, organization: str, person_id: int, face_id: int):
        self.body()
        face_delete(face=face_get(organization=self.organization(), person_id=person_id, face_id=face_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class FaceThumbnailApi(OrganizationScopedApi):
    @extend_schema(responses={(200, "image/jpeg"): OpenApiTypes.BINARY, **error_responses(401, 403, 404, 429, 503)},
                   summary="The stored crop of one face (JPEG)", operation_id="face_thumbnail", tags=["faces"],
                   auth=API_KEY_AUTH)
    def get(self, request, organization: str, person_id: int, face_id: int):
        face = face_get(organization=self.organization(), person_id=person_id, face_id=face_id)
        crop = bytes(face.crop or b"")
        if not crop:
            raise NotFound("This face has no stored crop.", code="thumbnail_not_found")
        response = HttpResponse(crop, content_type="image/jpeg")
        # A face's crop never changes; private: it is one tenant's data, fetched with its key.
        response["Cache-Control"] = "private, max-age=300"
        return response
