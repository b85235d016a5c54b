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
