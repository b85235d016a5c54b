"""Logging filters that shape records, kept free of Django imports (LOGGING loads them early)."""

from __future__ import annotations

import logging


class WithoutTraceback(logging.Filter):
    """Keeps the message, drops the traceback: for refusals whose message already says everything
    (`Invalid HTTP_HOST header: '192.168.1.5:8000'. You may need to add '192.168.1.5' to ALLOWED_HOSTS.`)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.exc_info = None
        record.exc_text = None
        return True


class OnlyUnhandledErrors(logging.Filter):
    """For `django.request`: keeps a record only when it carries a traceback (an exception nothing
    answered). A status the code chose to send (/readyz's 503 while the models load, a 503
    "database unavailable", any 4xx) is already one `faceportal.request` line; Django would repeat
    it as an ERROR that reads like a crash."""

    def filter(self, record: logging.LogRecord) -> bool:
        return bool(record.exc_info)
