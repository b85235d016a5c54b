from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response

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
    threshold = serializers.FloatField(required=False, min_value=0, max_value=1,
                                       help_text="Minimum similarity (1 + cosine) / 2; default per model")
    max_results = serializers.IntegerField(required=False, min_value=1, max_value=20)
    api_auth = ApiAuthSerializer(required=False)


class MatchSerializer(serializers.Serializer):
    person = serializers.IntegerField()
    name = serializers.CharField()
    similarity = serializers.FloatField()


class RecognizedFaceSerializer(serializers.Serializer):
    box = BoxSerializer()
    detection_confidence = serializers.FloatField()
    match = MatchSerializer(allow_null=True)
    candidates = MatchSerializer(many=True)


class RecognizeOutputSerializer(serializers.Serializer):
    faces = RecognizedFaceSerializer(many=True)
    threshold = serializers.FloatField()
    model = serializers.CharField()
    detector = serializers.CharField()
    image = serializers.DictField(child=serializers.IntegerField())
    timings_ms = serializers.DictField(child=serializers.FloatField())


class RecognizeApi(OrganizationScopedApi):
    @extend_schema(request=RecognizeInputSerializer, responses={200: RecognizeOutputSerializer},
                   summary="Recognise every face in an image")
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


class VerifyOutputSerializer(serializers.Serializer):
    verified = serializers.BooleanField()
    similarity = serializers.FloatField()
    threshold = serializers.FloatField()


class VerifyApi(OrganizationScopedApi):
    @extend_schema(request=VerifyInputSerializer, responses={200: VerifyOutputSerializer},
                   summary="1:1 verification: two images, or an image and a person")
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
