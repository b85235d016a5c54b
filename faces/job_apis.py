"""Bulk enrolment job routes: upload a zip (202 with the job), then follow its progress."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from apikeys.models import SCOPE_ENROL
from apikeys.tenant_api import OrganizationScopedApi
from faceportal.errors import NotFound
from faceportal.openapi import API_KEY_AUTH, DATA_ROUTE_ERRORS, error_responses
from faceportal.serializers import ApiAuthSerializer, RequestSerializer
from faces.enrolment_jobs import enrolment_job_create
from faces.models import EnrolmentJob


class EnrolmentJobInputSerializer(RequestSerializer):
    archive = serializers.FileField(
        allow_empty_file=False,
        help_text="A zip of one folder per person: `<name>/<image>`, or `ext:<external_id>/<image>` to add faces "
        "to the person with that external_id. Folders starting with `_` or `.` are skipped.")
    api_auth = ApiAuthSerializer(required=False, help_text="Optional (a JSON string in the form).")


class EnrolmentJobImageOutputSerializer(serializers.Serializer):
    index = serializers.IntegerField(source="position")
    path = serializers.CharField(help_text="The image's path in the archive")
    processed = serializers.BooleanField()
    accepted = serializers.BooleanField()
    code = serializers.CharField(allow_null=True, help_text="As `/register` reports it: no_face, invalid_image, "
                                 "face_too_small, duplicate_image, face_matches_existing_person, ...")
    reason = serializers.CharField(allow_null=True)
    face_id = serializers.IntegerField(allow_null=True)
    person_id = serializers.IntegerField(allow_null=True)


class EnrolmentJobOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.CharField(help_text="queued, running or done")
    done = serializers.IntegerField(help_text="Images processed so far")
    total = serializers.IntegerField(help_text="Images in the archive")
    faces_added = serializers.IntegerField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)


class EnrolmentJobDetailOutputSerializer(EnrolmentJobOutputSerializer):
    images = EnrolmentJobImageOutputSerializer(many=True, help_text="Every image, in order")


def enrolment_job_get(*, organization, job_id: int) -> EnrolmentJob:
    job = EnrolmentJob.objects.filter(organization=organization, pk=job_id).first()
    if job is None:
        raise NotFound("No such enrolment job.", code="enrolment_job_not_found")
    return job


class EnrolmentJobListApi(OrganizationScopedApi):
    required_scope = SCOPE_ENROL
    parser_classes = [MultiPartParser]

    @extend_schema(
        request={"multipart/form-data": EnrolmentJobInputSerializer},
        responses={202: EnrolmentJobOutputSerializer, **error_responses(*DATA_ROUTE_ERRORS, 409)},
        summary="Start a bulk enrolment job from a zip", operation_id="enrolment_job_create",
        description="The archive is checked at once (size, entries, per-image bytes and pixels, unsafe paths, "
        "compression ratio: a 400 creates nothing) and enrolled in the background, one image at a time, "
        "behind live recognition. One unfinished job per organisation (409 enrolment_job_running).",
        tags=["faces"], auth=API_KEY_AUTH,
    )
    def post(self, request, organization: str):
        data = self.validated_body(EnrolmentJobInputSerializer)
        job = enrolment_job_create(organization=self.organization(), archive=data["archive"])
        return Response(EnrolmentJobOutputSerializer(job).data, status=status.HTTP_202_ACCEPTED)


class EnrolmentJobDetailApi(OrganizationScopedApi):
    required_scope = SCOPE_ENROL

    @extend_schema(
        responses={200: EnrolmentJobDetailOutputSerializer, **error_responses(401, 403, 404, 429, 503)},
        summary="An enrolment job's progress and per-image outcomes", operation_id="enrolment_job_get",
        tags=["faces"], auth=API_KEY_AUTH,
        examples=[OpenApiExample("Half way", response_only=True, value={
            "id": 3, "status": "running", "done": 1, "total": 2, "faces_added": 1,
            "created_at": "2025-01-31T09:00:00Z", "started_at": "2025-01-31T09:00:01Z", "finished_at": None,
            "images": [
                {"index": 0, "path": "Ada Lovelace/1.jpg", "processed": True, "accepted": True, "code": None,
                 "reason": None, "face_id": 31, "person_id": 7},
                {"index": 1, "path": "ext:emp-1042/1.jpg", "processed": False, "accepted": False, "code": None,
                 "reason": None, "face_id": None, "person_id": None}]})],
    )
    def get(self, request, organization: str, job_id: int):
        job = enrolment_job_get(organization=self.organization(), job_id=job_id)
        data = EnrolmentJobOutputSerializer(job).data
        images = job.images.order_by("position").defer("data")
        data["images"] = EnrolmentJobImageOutputSerializer(images, many=True).data
        return Response(data)
