from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework.response import Response

from apikeys.authentication import request_key
from apikeys.models import SCOPE_RECOGNIZE
from apikeys.tenant_api import OrganizationScopedApi
from faceportal.openapi import API_KEY_AUTH, DATA_ROUTE_ERRORS, error_responses, json_or_upload
from recognition.serializers import (
    RecognizeInputSerializer,
    RecognizeOutputSerializer,
    VerifyInputSerializer,
    VerifyOutputSerializer,
)
from recognition.services import DEFAULT_MAX_RESULTS, recognize, verify

RECOGNIZE_RESPONSE_EXAMPLE = {
    "faces": [
        {
            "box": {"x": 84, "y": 61, "w": 112, "h": 112},
            "detection_confidence": 0.99,
            "decision": "match",
            "threshold": 0.9524,
            "match": {"person": 7, "name": "Ada Lovelace", "similarity": 0.9812},
            "candidates": [{"person": 7, "name": "Ada Lovelace", "similarity": 0.9812},
                           {"person": 3, "name": "Grace Hopper", "similarity": 0.9104}],
            "unknown_face": None,
        }
    ],
    "threshold": 0.9511,
    "threshold_source": "calibrated",
    "false_match_rate": 0.001,
    "gallery_size": 120,
    "model": "Dlib",
    "detector": "dlib",
    "image": {"width": 640, "height": 480},
    "keep_unknown_faces": False,
    "timings_ms": {"decode": 3.2, "detect": 88.1, "align": 4.3, "embed": 20.6, "search": 2.3,
                   "total": 119.8},
}


class RecognizeApi(OrganizationScopedApi):
    required_scope = SCOPE_RECOGNIZE

    @extend_schema(
        request=json_or_upload(RecognizeInputSerializer),
        responses={200: RecognizeOutputSerializer, **error_responses(*DATA_ROUTE_ERRORS)},
        summary="Recognise every face in an image", operation_id="recognize",
        description="Every detected face with its box, its decision (match, unknown or ambiguous), the person "
        "matched (or null) and the nearest candidates, plus per-stage timings. Without a 'threshold' in the request "
        "the threshold follows the organisation's false_match_rate and its gallery size.",
        tags=["recognition"],
        auth=API_KEY_AUTH,
        examples=[
            OpenApiExample("Base64 image", value={"image": "<base64 JPEG>", "max_results": 3},
                           request_only=True),
            OpenApiExample("One face matched", value=RECOGNIZE_RESPONSE_EXAMPLE, response_only=True,
                           status_codes=["200"]),
        ],
    )
    def post(self, request, organization: str):
        data = self.validated_body(RecognizeInputSerializer)
        result = recognize(
            organization=self.organization(), image=data["image"], threshold=data.get("threshold"),
            max_results=data.get("max_results") or DEFAULT_MAX_RESULTS, seen_by=request_key(request),
            fire_events=True,
        )
        return Response(RecognizeOutputSerializer(result).data)


class VerifyApi(OrganizationScopedApi):
    required_scope = SCOPE_RECOGNIZE

    @extend_schema(
        request=json_or_upload(VerifyInputSerializer),
        responses={200: VerifyOutputSerializer, **error_responses(*DATA_ROUTE_ERRORS, 422)},
        summary="1:1 verification: two images, or an image and a person", operation_id="verify",
        tags=["recognition"],
        auth=API_KEY_AUTH,
        examples=[
            OpenApiExample("Against a person", value={"image": "<base64 JPEG>", "person": 7}, request_only=True),
            OpenApiExample("Same person", value={
                "verified": True, "similarity": 0.9781, "threshold": 0.9402, "threshold_source": "calibrated",
                "image_box": {"x": 84, "y": 61, "w": 112, "h": 112}, "image2_box": None,
                "person": {"id": 7, "name": "Ada Lovelace", "face_id": 31, "box": {"x": 40, "y": 52, "w": 96, "h": 96}},
            }, response_only=True, status_codes=["200"]),
        ],
    )
    def post(self, request, organization: str):
        data = self.validated_body(VerifyInputSerializer)
        result = verify(
            organization=self.organization(), image=data["image"], other_image=data.get("image2"),
            person_id=data.get("person"), threshold=data.get("threshold"),
        )
        return Response(VerifyOutputSerializer(result).data)
