"""Log hygiene for every record: the current request id added, secrets and request objects removed.

Kept free of Django imports: `LOGGING` loads this filter before the apps are ready.
"""

from __future__ import annotations

import contextvars
import logging
import re

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)

# Header and query names whose values are credentials.
SECRET_FIELDS = re.compile(r"(authorization|x-api-key|api_key|apikey|token|password|secret|cookie)", re.IGNORECASE)
# `name=value` and `Bearer value` pairs inside free text.
SECRET_IN_TEXT = re.compile(
    r"(?i)((?:authorization|x-api-key|api_key|apikey|token|password|secret)[\"']?\s*[:=]\s*[\"']?|bearer\s+)"
    r"[^\s&\"',;]+"
)


def scrub_text(text: str) -> str:
    return SECRET_IN_TEXT.sub(lambda m: m.group(1) + "[redacted]", text)


class RequestContextFilter(logging.Filter):
    """Adds the request id to every log record and keeps secrets and request objects out of logs.

    Django's own `django.request` records attach the request object, whose repr holds the full URL
    (a WebSocket or REST client may pass `?token=`); the JSON formatter would print it.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        request = record.__dict__.get("request")
        # Django logs 4xx/5xx responses after the middleware has returned, so also ask the request.
        request_id = request_id_var.get() or getattr(request, "request_id", None)
        if request_id and not hasattr(record, "request_id"):
            record.request_id = request_id
        if request is not None and not isinstance(request, str):
            record.request = f"{getattr(request, 'method', '')} {getattr(request, 'path', '')}".strip()
        for name in list(record.__dict__):
            if SECRET_FIELDS.search(name) and name not in {"api_key_name", "api_key_user"}:
                record.__dict__[name] = "[redacted]"
        if isinstance(record.msg, str):
            record.msg = scrub_text(record.msg)
        if record.args:
            record.args = tuple(scrub_text(a) if isinstance(a, str) else a for a in record.args) \
                if isinstance(record.args, tuple) else record.args
        return True
