from __future__ import annotations

from django.db.models import OuterRef, Subquery
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import status
from rest_framework.response import Response

from apikeys.models import SCOPE_ENROL, SCOPE_MANAGE
from apikeys.tenant_api import OrganizationScopedApi
from faceportal.errors import NotFound
from faceportal.openapi import API_KEY_AUTH, DATA_ROUTE_ERRORS, error_responses, json_or_upload
from faceportal.pagination import PageSizePagination
from faceportal.serializers import ApiAuthBodySerializer
from faces.models import Face
from faces.selectors import face_get, person_get, person_list
from faces.serializers import (
    FaceMoveInputSerializer,
    PersonDetailOutputSerializer,
    PersonListItemSerializer,
    PersonMergeInputSerializer,
    PersonPageSerializer,
    PersonRenameInputSerializer,
    PersonSearchSerializer,
    RegisterInputSerializer,
    RegisterOutputSerializer,
)
from faces.services import face_delete, face_move, person_delete, person_merge, person_register, person_update

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
    required_scope = SCOPE_ENROL

    @extend_schema(
        request=json_or_upload(RegisterInputSerializer),
        responses={201: RegisterOutputSerializer, **error_responses(*DATA_ROUTE_ERRORS, 409, 422)},
        summary="Register a person from one or more photos", operation_id="person_register",
        description="Each photo adds one face: the one in 'boxes' when given, else the most prominent (refused "
        "as ambiguous when two are about equally prominent). Registering an existing name adds faces to that "
        "person. Every photo's outcome is reported in `images`, in order (`accepted`, `reason`, `code`): a photo "
        "that cannot be read, has no face, a face too small, blurred or turned away, or that the person already "
        "has, does not stop the others. With 'keep_best' (a burst of camera frames), only that many of the "
        "usable faces are stored, the sharpest; the others answer code not_among_best. When no photo yields a "
        "usable face nothing is stored (422; a single unreadable photo answers its own 4xx). A face that "
        "already matches a different person is refused with 409 face_matches_existing_person unless "
        "allow_duplicate.",
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
        data = self.validated_body(RegisterInputSerializer)
        result = person_register(
            organization=self.organization(), name=data["name"], images=data["images"], boxes=data["boxes"],
            allow_duplicate=data["allow_duplicate"], external_id=data.get("external_id"),
            metadata=data.get("metadata"), keep_best=data.get("keep_best"),
        )
        return Response(RegisterOutputSerializer(result).data, status=status.HTTP_201_CREATED)


PeoplePagination = PageSizePagination


class PersonListApi(OrganizationScopedApi):
    required_scope = SCOPE_MANAGE

    @extend_schema(
        parameters=[PersonSearchSerializer],
        responses={200: PersonPageSerializer, **error_responses(400, 401, 403, 404, 429, 503)},
        summary="List people (paginated, searchable)", operation_id="person_list",
        tags=["faces"],
        auth=API_KEY_AUTH,
    )
    def get(self, request, organization: str):
        query = self.validated_query(PersonSearchSerializer)
        queryset = person_list(organization=self.organization(), search=query.get("search"),
                               external_id=query.get("external_id"))
        first_face = Face.objects.filter(person=OuterRef("pk")).exclude(crop=b"").order_by("id").values("id")[:1]
        queryset = queryset.annotate(thumbnail_face_id=Subquery(first_face))
        paginator = PeoplePagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        data = PersonListItemSerializer(page, many=True, context={"organization_slug": organization}).data
        return paginator.get_paginated_response(data)


class PersonDetailApi(OrganizationScopedApi):
    required_scope = SCOPE_MANAGE

    @extend_schema(responses={200: PersonDetailOutputSerializer, **error_responses(401, 403, 404, 429, 503)},
                   summary="A person with their faces", operation_id="person_get", tags=["faces"], auth=API_KEY_AUTH)
    def get(self, request, organization: str, person_id: int):
        person = person_get(organization=self.organization(), person_id=person_id)
        return Response(PersonDetailOutputSerializer(person, context={"organization_slug": organization}).data)

    @extend_schema(request=PersonRenameInputSerializer,
                   responses={200: PersonDetailOutputSerializer,
                              **error_responses(400, 401, 403, 404, 409, 415, 429, 503)},
                   summary="Rename a person, or set their external_id and metadata", operation_id="person_rename",
                   tags=["faces"], auth=API_KEY_AUTH,
                   examples=[OpenApiExample("New name", value={"name": "Ada King"}, request_only=True),
                             OpenApiExample("Your own id and data", value={"external_id": "emp-1042",
                                            "metadata": {"team": "analytics"}}, request_only=True)])
    def patch(self, request, organization: str, person_id: int):
        data = self.validated_body(PersonRenameInputSerializer)
        org = self.organization()
        changes = {name: data[name] for name in ("name", "external_id", "metadata") if name in data}
        person = person_update(person=person_get(organization=org, person_id=person_id), **changes)
        person = person_get(organization=org, person_id=person.pk)
        return Response(PersonDetailOutputSerializer(person, context={"organization_slug": organization}).data)

    @extend_schema(request=ApiAuthBodySerializer,
                   responses={204: None, **error_responses(400, 401, 403, 404, 429, 503)},
                   summary="Delete a person, their faces and vectors", operation_id="person_delete",
                   tags=["faces"], auth=API_KEY_AUTH)
    def delete(self, request, organization: str, person_id: int):
        self.validated_body()
        person_delete(person=person_get(organization=self.organization(), person_id=person_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class FaceDetailApi(OrganizationScopedApi):
    required_scope = SCOPE_MANAGE

    @extend_schema(request=ApiAuthBodySerializer,
                   responses={204: None, **error_responses(400, 401, 403, 404, 429, 503)},
                   summary="Delete one face of a person", operation_id="face_delete", tags=["faces"], auth=API_KEY_AUTH)
    def delete(self, request, organization: str, person_id: int, face_id: int):
        self.validated_body()
        face_delete(face=face_get(organization=self.organization(), person_id=person_id, face_id=face_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class FaceThumbnailApi(OrganizationScopedApi):
    required_scope = SCOPE_MANAGE

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


class PersonMergeApi(OrganizationScopedApi):
    required_scope = SCOPE_MANAGE

    @extend_schema(request=PersonMergeInputSerializer,
                   responses={200: PersonDetailOutputSerializer, **error_responses(400, 401, 403, 404, 415, 429, 503)},
                   summary="Merge another person into this one", operation_id="person_merge",
                   description="Every face of 'from' moves to this person, with its vector; 'from' is deleted. This "
                   "person keeps its name (and its external_id, or takes the other's when it has none).",
                   tags=["faces"], auth=API_KEY_AUTH,
                   examples=[OpenApiExample("Merge 12 into this person", value={"from": 12}, request_only=True)])
    def post(self, request, organization: str, person_id: int):
        data = self.validated_body(PersonMergeInputSerializer)
        org = self.organization()
        person = person_get(organization=org, person_id=person_id)
        other = person_get(organization=org, person_id=data["from"])
        merged = person_merge(person=person, other=other)
        return Response(PersonDetailOutputSerializer(merged, context={"organization_slug": organization}).data)


class FaceMoveApi(OrganizationScopedApi):
    required_scope = SCOPE_MANAGE

    @extend_schema(request=FaceMoveInputSerializer,
                   responses={200: PersonDetailOutputSerializer, **error_responses(400, 401, 403, 404, 415, 429, 503)},
                   summary="Move one face to another person", operation_id="face_move",
                   description="The face (and its vector) becomes the other person's; the answer is that person.",
                   tags=["faces"], auth=API_KEY_AUTH,
                   examples=[OpenApiExample("To person 9", value={"to": 9}, request_only=True)])
    def post(self, request, organization: str, person_id: int, face_id: int):
        data = self.validated_body(FaceMoveInputSerializer)
        org = self.organization()
        face = face_get(organization=org, person_id=person_id, face_id=face_id)
        target = person_get(organization=org, person_id=data["to"])
        face_move(face=face, to=target)
        target = person_get(organization=org, person_id=target.pk)
        return Response(PersonDetailOutputSerializer(target, context={"organization_slug": organization}).data)
