"""Recognition's request and answer shapes. The same serializers validate a REST body and a
WebSocket frame, and shape `recognize`'s result for both: the OpenAPI schema and the socket's
`result` messages cannot drift apart."""

from __future__ import annotations

from rest_framework import serializers

from faceportal.fields import (
    ImageSourceField,
    RoundedFloatField,
    StrictCharField,
    StrictFloatField,
    StrictIntegerField,
    TimingsField,
)
from faceportal.serializers import ApiAuthSerializer, BoxSerializer, RequestSerializer
from faces.decision import SOURCE_CALIBRATED

MAX_RESULTS_LIMIT = 20
THRESHOLD_SOURCES = ["request", "calibrated", "model_default"]


def threshold_field(**kwargs) -> StrictFloatField:
    return StrictFloatField(
        required=False, allow_null=True, min_value=0, max_value=1,
        help_text="Minimum similarity (1 + cosine) / 2. Leave it out to use the organisation's false_match_rate, "
        "turned into a threshold for its current gallery size (docs/OPEN_SET.md).", **kwargs)


class RecognitionOptionsSerializer(RequestSerializer):
    """What a recognition may set: the same on `POST /recognize`, a socket frame and its settings."""

    threshold = threshold_field()
    max_results = StrictIntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_RESULTS_LIMIT,
                                     help_text="Candidates per face (default 5)")


class RecognizeInputSerializer(RecognitionOptionsSerializer):
    image = ImageSourceField(help_text="base64, data URI, http(s) URL, server path, or a multipart file")
    api_auth = ApiAuthSerializer(required=False, help_text="Optional (a JSON string in a multipart form).")


class FrameInputSerializer(RecognitionOptionsSerializer):
    """A JSON frame on the socket. Only base64 there: a URL or server path would be fetched once per frame."""

    image = StrictCharField(help_text="A data URI or base64 JPEG/PNG/WebP")


class VerifyInputSerializer(RequestSerializer):
    image = ImageSourceField()
    image2 = ImageSourceField(required=False, help_text="Second image; or give 'person'")
    person = StrictIntegerField(required=False, min_value=1, help_text="Person id to verify against")
    threshold = threshold_field()
    api_auth = ApiAuthSerializer(required=False)

    def validate(self, attrs: dict) -> dict:
        if ("image2" in attrs) == ("person" in attrs):
            raise serializers.ValidationError({"image2": ["Give exactly one of 'image2' or 'person'."]})
        return attrs


class MatchSerializer(serializers.Serializer):
    """A `faces.selectors.PersonMatch`."""

    person = serializers.IntegerField(source="person_id")
    name = serializers.CharField()
    external_id = serializers.CharField(allow_null=True, help_text="The person's external_id, if set")
    similarity = RoundedFloatField()


class RecognizedFaceSerializer(serializers.Serializer):
    box = BoxSerializer()
    detection_confidence = RoundedFloatField()
    decision = serializers.ChoiceField(
        choices=["match", "unknown", "ambiguous"],
        help_text="match: 'match' names the person. unknown: nobody enrolled is close enough. ambiguous: "
        "two people are about equally close, so neither is named.")
    threshold = RoundedFloatField(help_text="The similarity this face's best candidate had to reach")
    match = MatchSerializer(allow_null=True)
    candidates = MatchSerializer(many=True)
    unknown_face = serializers.IntegerField(
        allow_null=True, help_text="The id of the kept unknown face (GET /orgs/{org}/unknown-faces), when this "
        "face was unknown and kept; else null.")


class ImageSizeSerializer(serializers.Serializer):
    width = serializers.IntegerField()
    height = serializers.IntegerField()


class RecognizeOutputSerializer(serializers.Serializer):
    """A `recognition.services.Recognition`."""

    faces = RecognizedFaceSerializer(many=True)
    threshold = RoundedFloatField(source="threshold.similarity",
                                  help_text="The threshold in similarity units (for a typical face when calibrated; "
                                  "each face carries its own)")
    threshold_source = serializers.ChoiceField(
        source="threshold.source", choices=THRESHOLD_SOURCES,
        help_text="request: the request's 'threshold'. calibrated: derived from false_match_rate and gallery_size. "
        "model_default: the model has no calibration data.")
    false_match_rate = serializers.FloatField(source="threshold.false_match_rate", required=False,
                                              help_text="The organisation's target (calibrated only)")
    gallery_size = serializers.IntegerField(source="threshold.gallery_size", required=False,
                                            help_text="People enrolled (calibrated only)")
    calibrated_for = serializers.CharField(
        source="threshold.calibrated_for", required=False,
        help_text="The engine combination whose calibration decides (calibrated only): 'Dlib+Facenet512' when the "
        "second model is fused in where the first cannot decide alone; 'Dlib' when the first decides alone")
    model = serializers.CharField()
    detector = serializers.CharField()
    image = ImageSizeSerializer(help_text="The image's size as sent")
    keep_unknown_faces = serializers.BooleanField(
        help_text="Whether the organisation keeps faces decided unknown (docs/UNKNOWN_FACES.md)")
    faces_dropped = serializers.IntegerField(
        help_text="Faces found beyond FACEPORTAL_MAX_FACES_PER_IMAGE (default 20) and left out: only the most "
        "prominent (largest, then most central) are recognised")
    timings_ms = TimingsField()

    def to_representation(self, recognition):
        data = super().to_representation(recognition)
        if recognition.threshold.source != SOURCE_CALIBRATED:  # only a calibrated threshold has them
            data.pop("false_match_rate")
            data.pop("gallery_size")
            data.pop("calibrated_for")
        return data


class DecisionInForceSerializer(serializers.Serializer):
    """A `faces.decision.Threshold` on its own: what decides who gets a name, the same fields and
    rules as on a `POST /recognize` answer (the socket's `ready` message, the try-it page)."""

    threshold = RoundedFloatField(source="similarity",
                                  help_text="The threshold in force, in similarity units for a typical face")
    threshold_source = serializers.ChoiceField(source="source", choices=THRESHOLD_SOURCES)
    false_match_rate = serializers.FloatField(required=False, help_text="The organisation's target (calibrated only)")
    gallery_size = serializers.IntegerField(required=False, help_text="People enrolled now (calibrated only)")
    calibrated_for = serializers.CharField(
        required=False, help_text="The engine combination whose calibration decides (calibrated only)")

    def to_representation(self, threshold):
        data = super().to_representation(threshold)
        if threshold.source != SOURCE_CALIBRATED:
            data.pop("false_match_rate")
            data.pop("gallery_size")
            data.pop("calibrated_for")
        return data


class VerifiedPersonSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    external_id = serializers.CharField(allow_null=True)
    face_id = serializers.IntegerField(help_text="The person's face closest to the probe")
    box = BoxSerializer(help_text="That face's box in the photo it was registered from")


class VerifyOutputSerializer(serializers.Serializer):
    """A `recognition.services.Verification`."""

    verified = serializers.BooleanField()
    similarity = RoundedFloatField()
    threshold = RoundedFloatField()
    threshold_source = serializers.ChoiceField(choices=THRESHOLD_SOURCES)
    image_box = BoxSerializer(help_text="The face compared in 'image' (its most prominent)")
    image2_box = BoxSerializer(allow_null=True, help_text="The face compared in 'image2'; null against a person")
    person = VerifiedPersonSerializer(allow_null=True, help_text="When verifying against a person; else null")
