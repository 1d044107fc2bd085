"""Error reports to Sentry (sentry-sdk), only when SENTRY_DSN is set, without content or secrets.

An item's text and media, a product's webhook body and the API key must never leave for a
third party inside an error report. The SDK is told to send none of what carries them: no
request bodies, no local variables of the frames (a label task's locals hold the content and
the key), no cookies, user or client address (send_default_pii off). What remains (exception
messages, log messages that became breadcrumbs or events, headers, task arguments) passes
through the same redaction as the logs (lib/logs.redact) in before_send and
before_breadcrumb, since the SDK sees a log record before the logging filters redact it.
"""

from __future__ import annotations

from typing import Any

import sentry_sdk
from sentry_sdk.integrations.celery import CeleryIntegration
from sentry_sdk.integrations.django import DjangoIntegration

from lib.logs import redact

# Request parts that carry what a product sent or who a reviewer is; dropped whole.
_REQUEST_PARTS_DROPPED = ("data", "cookies", "env")
# SQL breadcrumbs' and spans' parameters are the values written: an item's text among them.
_BREADCRUMB_DATA_DROPPED = ("db.params",)


def scrub(value: Any) -> Any:
    """The value with every string in it redacted (dicts, lists and tuples walked)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: scrub(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(item) for item in value]
    return value


def before_send(event: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    request = event.get("request")
    if isinstance(request, dict):
        for part in _REQUEST_PARTS_DROPPED:
            request.pop(part, None)
        # The query string can hold a search typed into the queue page: keep the path only.
        request.pop("query_string", None)
    for exception in (event.get("exception") or {}).get("values") or []:
        for frame in (exception.get("stacktrace") or {}).get("frames") or []:
            frame.pop("vars", None)
    for span in event.get("spans") or []:  # a performance trace's SQL spans
        for key in _BREADCRUMB_DATA_DROPPED:
            (span.get("data") or {}).pop(key, None)
    return scrub(event)


def before_breadcrumb(crumb: dict[str, Any], hint: dict[str, Any]) -> dict[str, Any]:
    data = crumb.get("data")
    if isinstance(data, dict):
        for key in _BREADCRUMB_DATA_DROPPED:
            data.pop(key, None)
    return scrub(crumb)


def options(*, dsn: str, environment: str, release: str, traces_sample_rate: float) -> dict:
    """sentry_sdk.init's arguments (tests read them without starting the SDK)."""
    return {
        "dsn": dsn,
        "environment": environment or None,
        "release": release or None,
        "integrations": [DjangoIntegration(), CeleryIntegration()],
        "send_default_pii": False,
        "max_request_body_size": "never",
        "include_local_variables": False,
        "before_send": before_send,
        # Performance traces (when sampled) carry the request too: the same treatment.
        "before_send_transaction": before_send,
        "before_breadcrumb": before_breadcrumb,
        # None, not 0: with a rate of 0 the SDK still builds an unsampled trace per request.
        "traces_sample_rate": traces_sample_rate or None,
    }


def init(*, dsn: str, environment: str = "", release: str = "", traces_sample_rate=0.0) -> bool:
    """Start the SDK when a DSN is given; without one, nothing is installed or sent."""
    if not dsn:
        return False
    sentry_sdk.init(
        **options(
            dsn=dsn,
            environment=environment,
            release=release,
            traces_sample_rate=traces_sample_rate,
        )
    )
    return True
