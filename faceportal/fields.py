"""Serializer fields that take JSON types at their word: a number is not text, text is not a number.

DRF's own fields coerce ("7" becomes 7, 7 becomes "7", "yes" becomes True). A JSON client that
sends the wrong type gets a 400 naming the field instead. Multipart forms, whose values are all
text, are turned into JSON values first (`faceportal.serializers.RequestSerializer`).
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from faceportal.text import NameRefused, display_name_clean


class StrictCharField(serializers.CharField):
    """A CharField that refuses numbers, booleans and lists instead of turning them into text."""

    default_error_messages = {"not_a_string": "Must be a string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("not_a_string")
        return super().to_internal_value(data)


class PlainTextField(StrictCharField):
    """Text a person reads back (a name, a search): no control characters.

    DRF already refuses NUL and lone UTF-16 surrogates (a "\\ud800" JSON escape), which no UTF-8
    store can hold."""

    default_error_messages = {"control_character": "May not contain control characters."}

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        if any(ord(char) < 32 or ord(char) == 127 for char in value):
            self.fail("control_character")
        return value


class DisplayNameField(PlainTextField):
    """A name shown to people (a person's, an organisation's): NFKC, no format characters, not blank
    once invisible characters are set aside (`faceportal.text.display_name_clean`)."""

    def to_internal_value(self, data):
        value = super().to_internal_value(data)
        try:
            value = display_name_clean(value)
        except NameRefused as refused:
            raise serializers.ValidationError(str(refused), code="invalid_name") from None
        if self.max_length is not None and len(value) > self.max_length:  # NFKC may lengthen it
            self.fail("max_length", max_length=self.max_length)
        return value


class StrictIntegerField(serializers.IntegerField):
    default_error_messages = {"not_an_integer": "Must be a whole number."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, int):
            self.fail("not_an_integer")
        return super().to_internal_value(data)


class StrictFloatField(serializers.FloatField):
    default_error_messages = {"not_a_number": "Must be a number."}

    def to_internal_value(self, data):
        if isinstance(data, bool) or not isinstance(data, (int, float)):
            self.fail("not_a_number")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    default_error_messages = {"not_a_boolean": "Must be true or false."}

    def to_internal_value(self, data):
        if not isinstance(data, bool):
            self.fail("not_a_boolean")
        return data


class RoundedFloatField(serializers.FloatField):
    """Output only: a measured value to `places` decimals (similarities, timings)."""

    def __init__(self, *, places: int = 4, **kwargs):
        self.places = places
        super().__init__(**kwargs)

    def to_representation(self, value):
        return round(float(value), self.places)


@extend_schema_field({
    "oneOf": [
        {"type": "string", "description": "base64, data URI, http(s) URL or server path"},
        {"type": "object", "description": "{\"base64\"|\"url\"|\"path\": \"...\"}"},
        {"type": "string", "format": "binary", "description": "a multipart file"},
    ]
})
class ImageSourceField(serializers.Field):
    """Where an image comes from, passed on unread: the loader decides, image by image, what it is
    and answers each unreadable one with its own code (invalid_image, image_url_forbidden, ...)."""

    def to_internal_value(self, data: Any) -> Any:
        return data

    def to_representation(self, value: Any) -> Any:
        return value


class TimingsField(serializers.DictField):
    """Milliseconds per stage, to two decimals."""

    child = RoundedFloatField(places=2)
