"""The one guarded call to the labeling API, shared by labeling (fetch.py) and shadow runs
(shadow.py): the key check (a key the API refused is not used again, across processes), the
circuit breaker shared by all workers, the global throttle (in-flight and per-second caps)
and the client. Callers decide what a failure means for their work (retry, pause, stop)."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable

from django.conf import settings

from labelers import client as api
from labelers.breaker import get_breaker
from labelers.models import ApiKeyRefusal
from labelers.throttle import get_throttle

logger = logging.getLogger(__name__)


def _key_fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


# Per process: (fingerprint, refused, checked_at). The refusal table is read at most every
# few seconds instead of once per label; a refusal seen here is recorded here at once.
_refusal_seen: dict[str, tuple[bool, float]] = {}
REFUSAL_CHECK_SECONDS = 5.0


def api_key_refused() -> bool:
    key = settings.ZENTROPI_API_KEY
    if not key:
        return True
    fingerprint = _key_fingerprint(key)
    seen = _refusal_seen.get(fingerprint)
    if seen is not None and time.monotonic() - seen[1] < REFUSAL_CHECK_SECONDS:
        return seen[0]
    refused = ApiKeyRefusal.objects.filter(fingerprint=fingerprint).exists()
    _refusal_seen[fingerprint] = (refused, time.monotonic())
    return refused


def api_key_refusals_forget() -> None:
    """An admin says the key is fixed: forget every refusal, here and in the database."""
    ApiKeyRefusal.objects.all().delete()
    _refusal_seen.clear()


def record_refusal(key: str) -> None:
    fingerprint = _key_fingerprint(key)
    ApiKeyRefusal.objects.get_or_create(fingerprint=fingerprint)
    _refusal_seen[fingerprint] = (True, time.monotonic())


def _breaker_record(breaker, *, ok: bool) -> float:
    """Count a call's outcome in the breaker; bookkeeping that fails (Redis restarting) is
    lost, never the answer or the label's retry."""
    try:
        return breaker.record(ok=ok)
    except Exception:
        logger.warning("cannot record a call's outcome in the breaker", exc_info=True)
        return 0.0


class BreakerOpen(Exception):
    """The breaker holds calls back for `wait` seconds more: nothing was sent."""

    def __init__(self, wait: float):
        super().__init__(f"the labeling API is failing: paused for {wait:.0f}s at least")
        self.wait = wait


def label_call(
    build: Callable[[], api.LabelRequest],
    *,
    keep: Callable[[], bool] | None = None,
    keep_every: float = 5.0,
) -> api.LabelResult:
    """One call to /v1/label, guarded. Raises BreakerOpen while the breaker holds calls back
    (before `build` runs: reading stored media is work to skip then). `build`'s OSError (the
    stored media is missing or unreadable here) is a PermanentLabelError. `keep` and
    `keep_every`: the caller's lease, renewed while waiting for a throttle slot
    (SlotAbandoned if it is lost). The breaker counts a transient failure (5xx, 429,
    timeout, dropped connection) against the API, and the `breaker_wait` it then answers
    rides on the error; any other answer of the API (200, 422) counts for it; a refused key
    (401) and failures of our own count neither way."""
    breaker = get_breaker()
    if (wait := breaker.wait_seconds()) > 0:
        raise BreakerOpen(wait)
    try:
        request = build()
    except OSError as exc:
        raise api.PermanentLabelError(f"cannot read the item's media: {exc}") from None
    try:
        with get_throttle().slot(keep=keep, keep_every=keep_every):
            result = api.get_client().label(request)
    except api.AuthenticationError:
        raise
    except api.PermanentLabelError as exc:
        if exc.status is not None:  # the API answered; the request or criteria are at fault
            _breaker_record(breaker, ok=True)
        raise
    except api.TransientLabelError as exc:
        exc.breaker_wait = _breaker_record(breaker, ok=False)
        raise
    # Paid for: from here on the answer is stored whatever the breaker's bookkeeping does
    # (the throttle's slot release cannot fail either: throttle.slot).
    _breaker_record(breaker, ok=True)
    return result
