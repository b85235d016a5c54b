"""The unknown-faces inbox and its clusters: thin views over unknowns.selectors and services."""

from __future__ import annotations

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import status
from rest_framework.response import Response

from apikeys.models import SCOPE_MANAGE
from apikeys.tenant_api import OrganizationScopedApi
from faceportal.openapi import API_KEY_AUTH, error_responses
from faceportal.pagination import PageSizePagination
from faceportal.serializers import ApiAuthBodySerializer
from faces.selectors import person_get
from faces.unknowns.selectors import (
    unknown_cluster_get,
    unknown_cluster_list,
    unknown_face_get,
    unknown_face_list,
)
from faces.unknowns.serializers import (
    ClusterAssignInputSerializer,
    ClusterAssignOutputSerializer,
    ClusterDismissOutputSerializer,
    PageQuerySerializer,
    UnknownClusterOutputSerializer,
    UnknownClusterPageSerializer,
    UnknownDeleteAllOutputSerializer,
    UnknownFaceListQuerySerializer,
    UnknownFaceOutputSerializer,
    UnknownFacePageSerializer,
)
from faces.unknowns.services import (
    unknown_cluster_assign,
    unknown_cluster_dismiss,
    unknown_face_delete,
    unknown_faces_delete,
)

TAGS = ["unknown faces"]
READ_ERRORS = (400, 401, 403, 404, 429, 503)


UnknownPagination = PageSizePagination


class UnknownFaceListApi(OrganizationScopedApi):
    required_scope = SCOPE_MANAGE

    @extend_schema(parameters=[UnknownFaceListQuerySerializer],
                   responses={200: UnknownFacePageSerializer, **error_responses(*READ_ERRORS)},
                   summary="Kept unknown faces, newest first (paginated)", operation_id="unknown_face_list",
                   description="Faces recognition decided unknown and kept (docs/UNKNOWN_FACES.md). "
                   "'cluster' narrows the list to one cluster of GET unknown-clusters.",
                   tags=TAGS, auth=API_KEY_AUTH)
    def get(self, request, organization: str):
        query = self.validated_query(UnknownFaceListQuerySerializer)
        queryset = unknown_face_list(organization=self.organization(), cluster_id=query.get("cluster"))
        paginator = UnknownPagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        data = UnknownFaceOutputSerializer(page, many=True, context={"organization_slug": organization}).data
        return paginator.get_paginated_response(data)

    @extend_schema(request=ApiAuthBodySerializer,
                   responses={200: UnknownDeleteAllOutputSerializer, **error_responses(*READ_ERRORS)},
                   summary="Delete every kept unknown face", operation_id="unknown_face_delete_all",
                   tags=TAGS, auth=API_KEY_AUTH)
    def delete(self, request, organization: str):
        self.validated_body()
        removed = unknown_faces_delete(organization=self.organization())
        return Response(UnknownDeleteAllOutputSerializer({"faces_removed": removed}).data)


class UnknownFaceDetailApi(OrganizationScopedApi):
    required_scope = SCOPE_MANAGE

    @extend_schema(request=ApiAuthBodySerializer, responses={204: None, **error_responses(*READ_ERRORS)},
                   summary="Delete one kept unknown face", operation_id="unknown_face_delete",
                   tags=TAGS, auth=API_KEY_AUTH)
    def delete(self, request, organization: str, unknown_id: int):
        self.validated_body()
        unknown_face_delete(unknown=unknown_face_get(organization=self.organization(), unknown_id=unknown_id))
        return Response(status=status.HTTP_204_NO_CONTENT)


class UnknownFaceThumbnailApi(OrganizationScopedApi):
    required_scope = SCOPE_MANAGE

    @extend_schema(responses={(200, "image/jpeg"): OpenApiTypes.BINARY, **error_responses(401, 403, 404, 429, 503)},
                   summary="The kept crop of an unknown face (JPEG)", operation_id="unknown_face_thumbnail",
                   tags=TAGS, auth=API_KEY_AUTH)
    def get(self, request, organization: str, unknown_id: int):
        unknown = unknown_face_get(organization=self.organization(), unknown_id=unknown_id)
        response = HttpResponse(bytes(unknown.crop), content_type="image/jpeg")
        response["Cache-Control"] = "private, max-age=300"  # one tenant's data, fetched with its key
        return response


class UnknownClusterListApi(OrganizationScopedApi):
    required_scope = SCOPE_MANAGE

    @extend_schema(parameters=[PageQuerySerializer],
                   responses={200: UnknownClusterPageSerializer, **error_responses(*READ_ERRORS)},
                   summary="Kept unknown faces grouped by person (paginated)", operation_id="unknown_cluster_list",
                   description="Clusters most recently seen first, each with its size, a few sample faces and when "
                   "it was first and last seen. Two faces share a cluster when the decision would call them the "
                   "same person (docs/UNKNOWN_FACES.md); a face alone is a cluster of one.",
                   tags=TAGS, auth=API_KEY_AUTH)
    def get(self, request, organization: str):
        self.validated_query(PageQuerySerializer)
        clusters = unknown_cluster_list(organization=self.organization())
        paginator = UnknownPagination()
        page = paginator.paginate_queryset(clusters, request, view=self)
        data = UnknownClusterOutputSerializer(page, many=True, context={"organization_slug": organization}).data
        return paginator.get_paginated_response(data)


class UnknownClusterAssignApi(OrganizationScopedApi):
    required_scope = SCOPE_MANAGE

    @extend_schema(
        request=ClusterAssignInputSerializer,
        responses={200: ClusterAssignOutputSerializer, **error_responses(400, 401, 403, 404, 409, 415, 429, 503)},
        summary="Name a cluster: its faces become a person's", operation_id="unknown_cluster_assign",
        description="{'name': ...} makes a new person (or adds to the one of that name); {'person': id} adds to "
        "an existing person. The same rules as registration: a face the person already has is skipped "
        "(duplicate_image), a face that matches a different person refuses the cluster with 409 "
        "face_matches_existing_person unless allow_duplicate. The assigned faces leave the inbox.",
        tags=TAGS, auth=API_KEY_AUTH,
        examples=[OpenApiExample("A new person", value={"name": "Ada Lovelace"}, request_only=True),
                  OpenApiExample("An existing person", value={"person": 7}, request_only=True)],
    )
    def post(self, request, organization: str, cluster_id: int):
        data = self.validated_body(ClusterAssignInputSerializer)
        org = self.organization()
        cluster = unknown_cluster_get(organization=org, cluster_id=cluster_id)
        person = person_get(organization=org, person_id=data["person"]) if "person" in data else None
        result = unknown_cluster_assign(organization=org, cluster=cluster, name=data.get("name"), person=person,
                                        allow_duplicate=data["allow_duplicate"])
        return Response(ClusterAssignOutputSerializer(result).data)


class UnknownClusterDismissApi(OrganizationScopedApi):
    required_scope = SCOPE_MANAGE

    @extend_schema(request=ApiAuthBodySerializer,
                   responses={200: ClusterDismissOutputSerializer, **error_responses(*READ_ERRORS, 415)},
                   summary="Dismiss a cluster: not a person of interest", operation_id="unknown_cluster_dismiss",
                   description="Its faces leave the inbox (deleted) without enrolling anyone.",
                   tags=TAGS, auth=API_KEY_AUTH)
    def post(self, request, organization: str, cluster_id: int):
        self.validated_body()
        org = self.organization()
        cluster = unknown_cluster_get(organization=org, cluster_id=cluster_id)
        removed = unknown_cluster_dismiss(organization=org, cluster=cluster)
        return Response(ClusterDismissOutputSerializer({"cluster": cluster.id, "faces_removed": removed}).data)
