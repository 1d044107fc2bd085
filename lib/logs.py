"""Log lines that say which item, source and task they are about, and never a secret.

Code binds what it works on once (`bind(item_id=..., source_id=...)`); every line logged
afterwards in that request or task carries it: as JSON fields in production (LOG_FORMAT=json),
at the end of a readable line in development. Context lives in a ContextVar, so each worker
thread and each request has its own; the Celery signals and the middleware below clear it.

Secrets never reach a handler: RedactSecrets replaces the API key, signing secrets
(whsec_...), source tokens (mqt_...) and bearer credentials in the message and its
arguments, and in the traceback and stack text of the record. Content (text, media) is never
logged by the code in the first place.
"""

from __future__ import annotations

import logging
import re
from contextvars import ContextVar
from typing import Any

from django.conf import settings

_context: ContextVar[dict[str, Any] | None] = ContextVar("log_context", default=None)


def bind(**fields: Any) -> None:
    """Add fields to every later line of this request or task."""
    _context.set({**(_context.get() or {}), **fields})


def clear() -> None:
    _context.set(None)


def context() -> dict[str, Any]:
    return dict(_context.get() or {})


class AddContext(logging.Filter):
    """Puts the bound fields on the record: JSON fields, and `context` for plain lines."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _context.get() or {}
        for key, value in fields.items():
            if not hasattr(record, key):
                setattr(record, key, value)
        record.context = " ".join(f"{k}={v}" for k, v in fields.items())
        return True


_SECRET_PATTERNS = [
    re.compile(r"whsec_[A-Za-z0-9+/=_-]+"),
    re.compile(r"mqt_[A-Za-z0-9_-]+"),
    re.compile(r"(?i)(bearer\s+)[^\s'\",]+"),
]


def redact(text: str) -> str:
    key = getattr(settings, "ZENTROPI_API_KEY", "")
    if key and len(key) >= 4:
        text = text.replace(key, "[redacted]")
    for pattern in _SECRET_PATTERNS:
        text = pattern.sub(lambda m: (m.group(1) if m.groups() else "") + "[redacted]", text)
    return text


_TRACEBACKS = logging.Formatter()


class RedactSecrets(logging.Filter):
    """Formats the message once, redacted, so no handler sees the secret in its arguments."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken format string: leave it to the handler to report
            return True
        redacted = redact(message)
        if redacted != message or record.args:
            record.msg, record.args = redacted, None
        # A secret inside an exception's message reaches the handler as traceback text, which
        # each formatter renders from exc_info itself (the JSON one ignores a cached exc_text):
        # render it here once, redacted, and leave no exc_info to render again.
        if record.exc_info:
            record.exc_text = redact(_TRACEBACKS.formatException(record.exc_info))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


class LogContextMiddleware:
    """Nothing one request bound is left for the next request the same thread serves."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        clear()
        try:
            return self.get_response(request)
        finally:
            clear()
