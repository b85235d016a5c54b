from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from faceportal.openapi import API_KEY_AUTH, DATA_ROUTE_ERRORS, error_responses
from faces.apis import ApiAuthSerializer, BoxSerializer, OrganizationScopedApi
from recognition.services import recognize, verify


def image_from_request(request, data, field: str = "image"):
    upload = request.FILES.get(field)
    return upload if upload is not None else data.get(field)


def optional_number(data, field: str):
    """Multipart forms send numbers as text; JSON sends numbers. Accept both, validate later."""
    value = data.get(field)
    if isinstance(value, str) and hasattr(data, "getlist"):
        try:
            return float(value) if "." in value else int(value)
        except ValueError:
            return value
    return value


class RecognizeInputSerializer(serializers.Serializer):
    image = serializers.JSONField(help_text="base64, data URI, http(s) URL, server path, or a multipart file")
    threshold = serializers.FloatField(
        required=False, min_value=0, max_value=1,
        help_text="Minimum similarity (1 + cosine) / 2. Leave it out to use the organisation's false_match_rate, "
        "turned into a threshold for its current gallery size (docs/OPEN_SET.md).")
    max_results = serializers.IntegerField(required=False, min_value=1, max_value=20)
    api_auth = ApiAuthSerializer(required=False)


class RecognizeMultipartSerializer(serializers.Serializer):
    image = serializers.FileField()
    threshold = serializers.FloatField(required=False, min_value=0, max_value=1)
    max_results = serializers.IntegerField(required=False, min_value=1, max_value=20)
    api_auth = serializers.CharField(required=False, help_text='Optional JSON: {"user": ..., "api_key_name": ...}')


class MatchSerializer(serializers.Serializer):
    person = serializers.IntegerField()
    name = serializers.CharField()
    similarity = serializers.FloatField()


class RecognizedFaceSerializer(serializers.Serializer):
    box = BoxSerializer()
    detection_confidence = serializers.FloatField()
    decision = serializers.ChoiceField(
        choices=["match", "unknown", "ambiguous"],
        help_text="match: 'match' names the person. unknown: nobody enrolled is close enough. ambiguous: "
        "two people are about equally close, so neither is named.")
    threshold = serializers.FloatField(help_text="The similarity this face's best candidate had to reach")
    match = MatchSerializer(allow_null=True)
    candidates = MatchSerializer(many=True)


class RecognizeOutputSerializer(serializers.Serializer):
    faces = RecognizedFaceSerializer(many=True)
    threshold = serializers.FloatField(help_text="The threshold in similarity units (for a typical face when "
                                       "calibrated; each face carries its own)")
    threshold_source = serializers.ChoiceField(
        choices=["request", "calibrated", "model_default"],
        help_text="request: the request's 'threshold'. calibrated: derived from false_match_rate and gallery_size. "
        "model_default: the model has no calibration data.")
    false_match_rate = serializers.FloatField(required=False, help_text="The organisation's target (calibrated only)")
    gallery_size = serializers.IntegerField(required=False, help_text="People enrolled (calibrated only)")
    model = serializers.CharField()
    detector = serializers.CharField()
    image = serializers.DictField(child=serializers.IntegerField())
    timings_ms = serializers.DictField(child=serializers.FloatField())


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
        }
    ],
    "threshold": 0.9511,
    "threshold_source": "calibrated",
    "false_match_rate": 0.001,
    "gallery_size": 120,
    "model": "Dlib",
    "detector": "dlib",
    "image": {"width": 640, "height": 480},
    "timings_ms": {"decode": 3.2, "detect": 88.1, "align": 4.3, "embed": 20.6, "search": 2.3,
                   "total": 119.8},
}


class RecognizeApi(OrganizationScopedApi):
    @extend_schema(
        request={"application/json": RecognizeInputSerializer, "multipart/form-data": RecognizeMultipartSerializer},
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
        data = self.body()
        result = recognize(
            organization=self.organization(),
            image=image_from_request(request, data),
            threshold=optional_number(data, "threshold"),
            max_results=optional_number(data, "max_results"),
        )
        return Response(result)


class VerifyInputSerializer(serializers.Serializer):
    image = serializers.JSONField()
    image2 = serializers.JSONField(required=False, help_text="Second image; or give 'person'")
    person = serializers.IntegerField(required=False, help_text="Person id to verify against")
    threshold = serializers.FloatField(required=False, min_value=0, max_value=1)
    api_auth = ApiAuthSerializer(required=False)


class VerifyMultipartSerializer(serializers.Serializer):
    image = serializers.FileField()
    image2 = serializers.FileField(required=False)
    person = serializers.IntegerField(required=False)
    threshold = serializers.FloatField(required=False, min_value=0, max_value=1)
    api_auth = serializers.CharField(required=False, help_text='Optional JSON: {"user": ..., "api_key_name": ...}')


class VerifiedPersonSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    face_id = serializers.IntegerField(help_text="The person's face closest to the probe")
    box = BoxSerializer(help_text="That face's box in the photo it was registered from")


class VerifyOutputSerializer(serializers.Serializer):
    verified = serializers.BooleanField()
    similarity = serializers.FloatField()
    threshold = serializers.FloatField()
    threshold_source = serializers.ChoiceField(choices=["request", "calibrated", "model_default"])
    image_box = BoxSerializer(help_text="The face compared in 'image' (its most prominent)")
    image2_box = BoxSerializer(allow_null=True, help_text="The face compared in 'image2'; null against a person")
    person = VerifiedPersonSerializer(allow_null=True, help_text="When verifying against a person; else null")


class VerifyApi(OrganizationScopedApi):
    @extend_schema(
        request={"application/json": VerifyInputSerializer, "multipart/form-data": VerifyMultipartSerializer},
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
        data = self.body()
        result = verify(
            organization=self.organization(),
            image=image_from_request(request, data),
            other_image=image_from_request(request, data, "image2"),
            person_id=optional_number(data, "person"),
            threshold=optional_number(data, "threshold"),
        )
        return Response(result.__dict__)
