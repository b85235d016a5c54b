"""Bodies that cannot crash a handler: JSON with bounded nesting and no lone UTF-16 surrogates;
form and multipart text that is UTF-8 or refused.

Every JSON body (DRF's parser below) and every WebSocket text message goes through `loads`.
`json.loads` recurses once per nesting level, so 100,000 `[` raise RecursionError, which is not
a ValueError and would escape as a 500 (or kill a socket). Nesting is counted before parsing,
without recursion, and refused past FACEPORTAL_MAX_JSON_DEPTH. A `\\ud800` escape decodes to a
lone surrogate that no UTF-8 consumer (PostgreSQL, logs) can encode, so it is refused here too.

Django decodes form fields, multipart field names and query strings with errors="replace", so
bytes that are not UTF-8 (a client's lone surrogate, sent as it encodes it) would quietly become
U+FFFD and be stored as a name. They are refused instead, as the JSON parser refuses them: Django
is handed a codec that ignores the "replace" it asks for.
"""

from __future__ import annotations

import codecs
import json
import re
from typing import Any
from urllib.parse import parse_qsl

from django.conf import settings
from django.http import QueryDict
from rest_framework.exceptions import ParseError
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser

# A JSON string literal, unrolled so the regex engine never backtracks per character.
_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
# An escape that may decode to a surrogate (paired ones are fine; json joins them).
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_ONE_KIND = str.maketrans("{}", "[]")


class JSONRefused(ValueError):
    """The text is not JSON we accept; the message says why, for the client."""


def nesting_depth(text: str, *, stop_after: int = 1 << 30) -> int:
    """The deepest `[`/`{` nesting in JSON text, ignoring brackets inside strings; no recursion.

    Each pass deletes the innermost empty pairs (C-speed `str.replace`), so the number of passes
    is the depth; counting stops past `stop_after`. Mismatched brackets end early, and then
    `json.loads` refuses the text anyway.
    """
    if text.count("[") + text.count("{") <= 1:
        return text.count("[") + text.count("{")
    # String literals do not nest (base64 images are long); then keep only the brackets.
    brackets = _NOT_BRACKET.sub("", _STRING.sub("", text)).translate(_ONE_KIND)
    depth = 0
    while brackets and depth <= stop_after:
        shorter = brackets.replace("[]", "")
        if len(shorter) == len(brackets):
            break
        brackets = shorter
        depth += 1
    return depth


def _has_lone_surrogate(value: Any) -> bool:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if any("\ud800" <= char <= "\udfff" for char in item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def loads(text: str | bytes, *, max_depth: int | None = None) -> Any:
    """`json.loads` that raises only `JSONRefused` (a ValueError) on anything it will not take."""
    if isinstance(text, (bytes, bytearray)):
        try:
            text = bytes(text).decode("utf-8")
        except UnicodeDecodeError:
            raise JSONRefused("JSON must be UTF-8.") from None
    limit = settings.FACEPORTAL_MAX_JSON_DEPTH if max_depth is None else max_depth
    if nesting_depth(text, stop_after=limit) > limit:
        raise JSONRefused(f"JSON is nested more than {limit} levels deep.")
    try:
        value = json.loads(text)
    except RecursionError:  # cannot happen below the depth limit; kept as a second guard
        raise JSONRefused(f"JSON is nested more than {limit} levels deep.") from None
    except ValueError:
        raise JSONRefused("Not valid JSON.") from None
    if _SURROGATE_ESCAPE.search(text) and _has_lone_surrogate(value):
        raise JSONRefused("JSON contains a lone UTF-16 surrogate escape (not a Unicode character).")
    return value


class SafeJSONParser(JSONParser):
    """DRF's JSON parser on top of `loads`: every refusal is a 400 in the error shape."""

    def parse(self, stream, media_type=None, parser_context=None):
        parser_context = parser_context or {}
        encoding = parser_context.get("encoding", settings.DEFAULT_CHARSET)
        try:
            raw = stream.read() if stream is not None else b""
            text = raw.decode(encoding)
        except (UnicodeDecodeError, LookupError):
            raise ParseError("JSON parse error - body is not valid text.") from None
        try:
            return loads(text)
        except JSONRefused as exc:
            raise ParseError(f"JSON parse error - {exc}") from None


STRICT_UTF8 = "faceportal-strict-utf-8"


def _strict_utf8_decode(data, errors="strict"):  # noqa: ARG001 - the caller's "replace" is what we refuse
    return codecs.utf_8_decode(data, "strict", True)


def _find_strict_utf8(name: str) -> codecs.CodecInfo | None:
    if name != STRICT_UTF8.replace("-", "_"):
        return None
    utf8 = codecs.lookup("utf-8")
    return codecs.CodecInfo(name=STRICT_UTF8, encode=utf8.encode, decode=_strict_utf8_decode)


codecs.register(_find_strict_utf8)
NOT_UTF8 = "Form fields and query strings must be UTF-8 text."


def query_is_utf8(query_string: str | bytes) -> bool:
    """Whether a query string (or urlencoded body) and all its percent-escapes decode as UTF-8."""
    try:
        text = query_string.decode("utf-8") if isinstance(query_string, bytes) else query_string
        parse_qsl(text, keep_blank_values=True, encoding=STRICT_UTF8)
    except UnicodeDecodeError:
        return False
    return True


class StrictFormParser(FormParser):
    def parse(self, stream, media_type=None, parser_context=None):
        raw = stream.read() if stream is not None else b""
        if not query_is_utf8(raw):
            raise ParseError(NOT_UTF8)
        return QueryDict(raw, encoding="utf-8")


class StrictMultiPartParser(MultiPartParser):
    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, {**(parser_context or {}), "encoding": STRICT_UTF8})
        except UnicodeDecodeError:
            raise ParseError(NOT_UTF8) from None


def disable_twisted_form_parsing() -> None:
    """Stop Twisted from parsing form bodies under daphne; Django parses them, once.

    Twisted's `Request.requestReceived` parses every multipart/urlencoded POST into `args`
    (which daphne never reads) before daphne sees it, and answers a multipart body it cannot
    parse (no boundary) with a bare 400 and no body, bypassing our error shape. Without daphne
    (tests, WSGI) there is nothing to do.
    """
    try:
        from daphne.http_protocol import WebRequest
    except ImportError:
        return
    if getattr(WebRequest, "_form_parsing_disabled", False):
        return
    original_init = WebRequest.__init__

    def __init__(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self._parsePOSTFormSubmission = False

    WebRequest.__init__ = __init__
    WebRequest._form_parsing_disabled = True
