"""Request and answer shapes every app shares, in plain DRF (no app imports):

- `RequestSerializer`: the base of every Input serializer. It reads a JSON body and a multipart
  form alike (form values are text: they are turned into the JSON values the fields expect), so
  one serializer, one set of rules, validates both.
- `validated()`: runs an Input serializer and raises our 400 (`invalid_input`, naming the field);
  REST views, the WebSocket consumer and the admin's try-it views all call it.
- `ApiAuthSerializer` and `BoxSerializer`: shapes used by several apps.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from rest_framework import serializers
from rest_framework.utils import html

from faceportal import parsers
from faceportal.errors import invalid_input
from faceportal.fields import StrictBooleanField, StrictCharField, StrictFloatField, StrictIntegerField

FORM_BOOLEANS = {"true": True, "false": False, "1": True, "0": False}
WHOLE_NUMBER = re.compile(r"[+-]?\d{1,18}")


def _structured(field: serializers.Field) -> bool:
    """A field whose value is an object or a list of objects: a form sends it as JSON text."""
    return isinstance(field, (serializers.BaseSerializer, serializers.DictField, serializers.JSONField))


def _form_value(field: serializers.Field, text: Any) -> Any:
    """One form value as the JSON value `field` expects; left as it is when it cannot be, so the
    field itself refuses it with its own message."""
    if not isinstance(text, str):  # an uploaded file
        return text
    stripped = text.strip()
    if _structured(field) or (isinstance(field, serializers.ListField) and _structured(field.child)):
        try:
            return parsers.loads(stripped)
        except parsers.JSONRefused:
            return text
    if isinstance(field, StrictBooleanField):
        return FORM_BOOLEANS.get(stripped.lower(), text)
    if isinstance(field, StrictIntegerField) and WHOLE_NUMBER.fullmatch(stripped):
        return int(stripped)
    if isinstance(field, StrictFloatField):
        try:
            number = float(stripped)
        except ValueError:
            return text
        return number if math.isfinite(number) else text
    return text


def form_to_json(form, *, fields: Mapping[str, serializers.Field]) -> dict[str, Any]:
    """A multipart form (a QueryDict of text and files) as the JSON body it stands for."""
    body: dict[str, Any] = {}
    for name, field in fields.items():
        if name not in form:
            continue
        values = form.getlist(name)
        if values == [""] and isinstance(field, (StrictBooleanField, StrictIntegerField, StrictFloatField)):
            continue  # a form's empty number or checkbox: not given
        if isinstance(field, serializers.ListField) and not _structured(field.child):
            body[name] = values  # a repeated field: one image per `images` entry
        else:
            body[name] = _form_value(field, values[-1])
    return body


class RequestSerializer(serializers.Serializer):
    """Base of Input serializers: validates a JSON body or a multipart form with the same rules."""

    def to_internal_value(self, data):
        if html.is_html_input(data):
            data = form_to_json(data, fields=self.fields)
        return super().to_internal_value(data)


def validated(serializer_class: type[serializers.Serializer], *, data: Any,
              context: dict[str, Any] | None = None) -> dict[str, Any]:
    """The validated data, or our 400 naming the first field at fault (and every field's errors)."""
    serializer = serializer_class(data=data, context=context or {})
    if not serializer.is_valid():
        raise invalid_input(serializer.errors)
    return dict(serializer.validated_data)


class ApiAuthSerializer(serializers.Serializer):
    """`{"user", "api_key_name"}`: names an API key (the one used, or the one to revoke)."""

    user = StrictCharField(max_length=150)
    api_key_name = StrictCharField(max_length=150)


class ApiAuthBodySerializer(RequestSerializer):
    api_auth = ApiAuthSerializer(required=False, help_text="Optional; when given it must name the key used.")


class BoxSerializer(serializers.Serializer):
    """A face's box in image pixels."""

    x = StrictIntegerField(min_value=0)
    y = StrictIntegerField(min_value=0)
    w = StrictIntegerField(min_value=1)
    h = StrictIntegerField(min_value=1)
