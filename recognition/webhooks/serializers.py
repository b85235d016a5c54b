from __future__ import annotations

from rest_framework import serializers

from faceportal.fields import StrictCharField
from faceportal.serializers import ApiAuthSerializer, RequestSerializer
from recognition.models import MAX_WEBHOOK_URL_LENGTH, WEBHOOK_EVENTS

MIN_SECRET_LENGTH = 16


class WebhookCreateInputSerializer(RequestSerializer):
    url = StrictCharField(max_length=MAX_WEBHOOK_URL_LENGTH, help_text="http(s) URL the events are POSTed to")
    events = serializers.ListField(child=serializers.ChoiceField(choices=list(WEBHOOK_EVENTS)), min_length=1,
                                   max_length=len(WEBHOOK_EVENTS), help_text="The events wanted")
    secret = StrictCharField(min_length=MIN_SECRET_LENGTH, max_length=200, trim_whitespace=False,
                             help_text="Signs every delivery (HMAC-SHA256). Shown only in this answer, never again.")
    api_auth = ApiAuthSerializer(required=False)

    def validate_secret(self, value: str) -> str:
        if not value.isprintable() or not value.isascii():
            raise serializers.ValidationError("The secret must be printable ASCII.")
        return value


class WebhookOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.CharField()
    events = serializers.ListField(child=serializers.CharField())
    created_at = serializers.DateTimeField()


class WebhookCreatedOutputSerializer(WebhookOutputSerializer):
    secret = serializers.CharField(help_text="As given; this is the only answer that shows it")


class WebhookListOutputSerializer(serializers.Serializer):
    results = WebhookOutputSerializer(many=True)


class WebhookDeliveryOutputSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    event = serializers.CharField()
    status = serializers.ChoiceField(choices=["pending", "delivered", "failed"])
    attempts = serializers.IntegerField()
    last_status_code = serializers.IntegerField(allow_null=True, help_text="The target's last answer, if any")
    last_error = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()
    next_attempt_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)

    def to_representation(self, delivery):
        data = super().to_representation(delivery)
        if delivery.status != "pending":
            data["next_attempt_at"] = None
        return data


class WebhookDeliveryListOutputSerializer(serializers.Serializer):
    results = WebhookDeliveryOutputSerializer(many=True)
