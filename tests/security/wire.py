"""What a client puts on the wire for a request, byte for byte, whatever text it was given.

Python's URL, form and multipart encoders refuse text that has no UTF-8 form (a lone surrogate
such as '\\ud934'), so a fuzzer built on them fails before any request is sent. A real client sends
such text as the bytes its encoder produces: here UTF-8 with `surrogatepass`, which is what a
broken or hostile client writes. Paths and queries carry them percent-encoded, headers as raw
bytes (a WSGI environ holds them as latin-1 text), form and multipart bodies as raw bytes.
The request then goes through Django's own test client, so the server sees exactly those bytes.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from urllib.parse import quote

from django.test import Client
from schemathesis.core import NotSet


def wire_bytes(value: object) -> bytes:
    """A value's bytes as a client sends them: text as UTF-8 (lone surrogates passed through)."""
    if isinstance(value, bytes):
        return value
    if isinstance(value, bool):
        return b"true" if value else b"false"
    if value is None:
        return b""
    return str(value).encode("utf-8", "surrogatepass")


def url_component(value: object) -> str:
    return quote(wire_bytes(value), safe="")


def query_string(query: dict) -> str:
    pairs = []
    for key, value in query.items():
        for item in value if isinstance(value, list) else [value]:
            pairs.append(f"{url_component(key)}={url_component(item)}")
    return "&".join(pairs)


def header_value(value: object) -> str:
    """Header bytes as WSGI holds them (latin-1 text); CR, LF and NUL cannot travel in a header."""
    raw = wire_bytes(value)
    return raw.translate(None, b"\r\n\x00").decode("latin-1")


def multipart_name(value: object) -> bytes:
    # As browsers write a field name: the characters that would end the quoted name, escaped.
    return wire_bytes(value).replace(b"\r", b"%0D").replace(b"\n", b"%0A").replace(b'"', b"%22")


def multipart_body(fields: list[tuple[object, object]]) -> tuple[bytes, str]:
    boundary = "fuzz" + secrets.token_hex(16)
    parts = []
    for name, value in fields:
        disposition = b'Content-Disposition: form-data; name="' + multipart_name(name) + b'"'
        if isinstance(value, bytes):
            disposition += b'; filename="upload.bin"\r\nContent-Type: application/octet-stream'
        parts.append(b"--" + boundary.encode() + b"\r\n" + disposition + b"\r\n\r\n" + wire_bytes(value) + b"\r\n")
    body = b"".join(parts) + b"--" + boundary.encode() + b"--\r\n"
    return body, f"multipart/form-data; boundary={boundary}"


def form_fields(body: dict) -> list[tuple[object, object]]:
    """A JSON-shaped body as form fields: a list repeats its field, anything nested travels as JSON."""
    fields: list[tuple[object, object]] = []
    for key, value in body.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, (dict, list)):
                item = json.dumps(item)
            fields.append((key, item))
    return fields


@dataclass
class WireRequest:
    method: str
    path: str  # the route template, e.g. /orgs/{organization}/people
    path_parameters: dict = field(default_factory=dict)
    query: dict = field(default_factory=dict)
    headers: dict = field(default_factory=dict)
    media_type: str | None = None
    body: object = None
    extra_fields: list[tuple[object, object]] = field(default_factory=list)  # form fields beyond the body's
    raw_json: bool = False  # JSON as UTF-8 bytes (lone surrogates raw), not \\u-escaped ASCII

    def url(self) -> str:
        path = self.path
        for name, value in self.path_parameters.items():
            path = path.replace("{" + name + "}", url_component(value))
        query = query_string(self.query)
        return f"{path}?{query}" if query else path

    def encoded_body(self) -> tuple[bytes, str | None]:
        if self.media_type is None or self.body is None:
            return b"", None
        if self.media_type == "application/json":
            if self.raw_json:
                return json.dumps(self.body, ensure_ascii=False).encode("utf-8", "surrogatepass"), self.media_type
            return json.dumps(self.body).encode("ascii"), self.media_type
        fields = (form_fields(self.body) if isinstance(self.body, dict) else []) + self.extra_fields
        if self.media_type == "application/x-www-form-urlencoded":
            text = "&".join(f"{url_component(key)}={url_component(value)}" for key, value in fields)
            return text.encode("ascii"), self.media_type
        if self.media_type == "multipart/form-data":
            return multipart_body(fields)
        return wire_bytes(self.body), self.media_type

    def send(self, client: Client | None = None):
        client = client or Client()
        data, content_type = self.encoded_body()
        headers = {name: header_value(value) for name, value in self.headers.items()}
        return client.generic(self.method.upper(), self.url(), data=data,
                              content_type=content_type or "application/octet-stream", headers=headers)


def from_case(case) -> WireRequest:
    """The request a schemathesis case describes, to be sent byte for byte."""
    return WireRequest(
        method=case.method,
        path=case.path,
        path_parameters=dict(case.path_parameters or {}),
        query=dict(case.query or {}),
        headers=dict(case.headers or {}),
        media_type=case.media_type,
        body=None if isinstance(case.body, NotSet) else case.body,
    )
