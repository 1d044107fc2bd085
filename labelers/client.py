"""The only code in the project that speaks HTTP to the labeling API (label-api.md).

`label()` returns a validated `LabelResult` or raises one of two errors that tell the caller
what to do next: `TransientLabelError` (retry later) or `PermanentLabelError` (needs a person).
The API key is sent in a header and never appears in a message, a log line or a repr.
"""

from __future__ import annotations

import json
import math
import os
import threading
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

import certifi
import urllib3
from django.conf import settings
from requests.utils import get_environ_proxies

from lib import metrics

MODELS = ("cope-latest", "cope-a-9b", "cope-b-12b", "cope-b-a4b", "cope-b-a4b-mm")
DEPRECATED_MODELS = {"cope-b-12b": "deprecated since 2026-07-01; use cope-b-a4b-mm for media"}
MEDIA_MODEL = "cope-b-a4b-mm"
RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504, 529}


@dataclass(frozen=True)
class LabelRequest:
    content_text: str = ""
    content_image: str = ""  # data URL
    content_video: str = ""  # data URL
    criteria_text: str = ""
    labeler_id: str = ""
    labeler_version_id: str = ""
    model: str = ""

    def body(self) -> dict[str, str]:
        body = {
            key: value
            for key in ("content_text", "content_image", "content_video", "model")
            if (value := getattr(self, key))
        }
        if self.labeler_id:
            body["labeler_id"] = self.labeler_id
            body["labeler_version_id"] = self.labeler_version_id or "latest"
        else:
            body["criteria_text"] = self.criteria_text
        return body


@dataclass(frozen=True)
class LabelResult:
    label: str
    confidence: float
    compute_time: float
    latency: float  # wall seconds of the HTTP call

    @property
    def violation_score(self) -> float:
        return violation_score(self.label, self.confidence)


def violation_score(label: str, confidence: float) -> float:
    """Confidence that the content violates: the API's confidence is in the label it gave."""
    return confidence if label == "1" else 1.0 - confidence


class LabelError(Exception):
    """Base of the client's errors; the message never contains the API key."""

    status: int | None = None


class TransientLabelError(LabelError):
    # Set by the guarded call (guarded.py): how long the breaker holds calls back after
    # counting this failure (0: it is closed).
    breaker_wait: float = 0.0

    def __init__(
        self, message: str, *, status: int | None = None, retry_after: float | None = None
    ):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class PermanentLabelError(LabelError):
    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status


class AuthenticationError(PermanentLabelError):
    """401, or no key configured: every call will fail until a person fixes the key."""


class ValidationError(PermanentLabelError):
    """422: the request or the criteria are wrong; carries the API's own message."""


class MalformedResponseError(PermanentLabelError):
    """A 200 whose body is not a label; never stored as one."""


def parse_retry_after(value: str | None) -> float | None:
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, IndexError):
            return None
    if not math.isfinite(seconds):
        return None
    return max(0.0, min(seconds, 3600.0))


def _json(response: urllib3.BaseHTTPResponse):
    """The body as JSON; ValueError (UnicodeDecodeError among them) if it is not JSON."""
    return json.loads(response.data)


def _api_message(response: urllib3.BaseHTTPResponse) -> str:
    try:
        data = _json(response)
    except ValueError:
        return response.data.decode("utf-8", "replace")[:500]
    if isinstance(data, dict):
        for key in ("detail", "error", "message"):
            if key in data:
                return (
                    json.dumps(data[key])[:1000]
                    if not isinstance(data[key], str)
                    else data[key][:1000]
                )
    return json.dumps(data)[:1000]


def parse_result(response: urllib3.BaseHTTPResponse, latency: float) -> LabelResult:
    try:
        data = _json(response)
    except ValueError as exc:
        raise MalformedResponseError("200 with a body that is not JSON", status=200) from exc
    if not isinstance(data, dict):
        raise MalformedResponseError("200 with a body that is not a JSON object", status=200)
    label, confidence, compute_time = (
        data.get("label"),
        data.get("confidence"),
        data.get("compute_time"),
    )
    if label not in ("0", "1"):
        raise MalformedResponseError(f"200 with label {label!r}, not '0' or '1'", status=200)
    if isinstance(confidence, bool) or not isinstance(confidence, int | float):
        raise MalformedResponseError(f"200 with confidence {confidence!r}", status=200)
    if not (0.5 <= confidence <= 1.0):
        raise MalformedResponseError(
            f"200 with confidence {confidence} outside 0.5..1.0", status=200
        )
    if isinstance(compute_time, bool) or not isinstance(compute_time, int | float):
        raise MalformedResponseError(f"200 with compute_time {compute_time!r}", status=200)
    if not math.isfinite(compute_time) or compute_time < 0:
        raise MalformedResponseError(f"200 with compute_time {compute_time}", status=200)
    return LabelResult(label, float(confidence), float(compute_time), latency)


class LabelClient:
    def __init__(
        self,
        *,
        base_url: str,
        api_key: str,
        connect_timeout: float = 5.0,
        read_timeout: float = 120.0,
        pool_size: int = 32,
    ):
        self.url = base_url.rstrip("/") + "/v1/label"
        self._api_key = api_key
        self.timeout = urllib3.Timeout(connect=connect_timeout, read=read_timeout)
        # urllib3 itself rather than requests on top of it: requests' layers (hooks, cookies,
        # the environment read on every call, a .netrc looked for) cost the client side of a
        # call about three times as much CPU, once per label. What requests would take from
        # the environment is read once here: the proxy for this URL (honouring NO_PROXY) and
        # the CA bundle (REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE, else certifi's, as requests).
        # No retries and no redirects: a failed call is the caller's to retry.
        ca_certs = (
            os.environ.get("REQUESTS_CA_BUNDLE")
            or os.environ.get("CURL_CA_BUNDLE")
            or certifi.where()
        )
        options: dict[str, Any] = {"maxsize": pool_size, "retries": False, "ca_certs": ca_certs}
        proxies = get_environ_proxies(self.url)
        scheme = urllib3.util.parse_url(self.url).scheme or "http"
        proxy = proxies.get(scheme) or proxies.get("all")
        self.pool: urllib3.PoolManager = (
            urllib3.ProxyManager(proxy, num_pools=1, **options)
            if proxy
            else urllib3.PoolManager(num_pools=1, **options)
        )

    def __repr__(self) -> str:
        return f"LabelClient(url={self.url!r})"

    @property
    def has_key(self) -> bool:
        return bool(self._api_key)

    def label(self, request: LabelRequest) -> LabelResult:
        if not self._api_key:
            raise AuthenticationError("no API key configured (set ZENTROPI_API_KEY)")
        started = time.monotonic()
        try:
            response = self.pool.request(
                "POST",
                self.url,
                body=json.dumps(request.body()).encode(),
                headers={
                    "Authorization": f"Bearer {self._api_key}",
                    "Content-Type": "application/json",
                },
                timeout=self.timeout,
                retries=False,
                redirect=False,
            )
        except urllib3.exceptions.TimeoutError as exc:
            if isinstance(exc, urllib3.exceptions.NewConnectionError):  # refused, unreachable
                metrics.API_CALLS.labels(result="connection").inc()
                raise TransientLabelError(f"connection error: {type(exc).__name__}") from None
            metrics.API_CALLS.labels(result="timeout").inc()
            raise TransientLabelError(f"timeout after {time.monotonic() - started:.1f}s") from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            metrics.API_CALLS.labels(result="connection").inc()
            # The exception text names the URL, never the headers; keep only its class.
            raise TransientLabelError(f"connection error: {type(exc).__name__}") from None
        latency = time.monotonic() - started
        status = response.status
        metrics.API_CALLS.labels(result=metrics.api_result(status)).inc()
        metrics.API_LATENCY.observe(latency)
        if status == 200:
            return parse_result(response, latency)
        if status == 401:
            raise AuthenticationError("401: the API key was refused", status=status)
        if status == 422 or status == 400:
            raise ValidationError(f"{status}: {_api_message(response)}", status=status)
        if status in RETRYABLE_STATUS or status >= 500:
            raise TransientLabelError(
                f"{status} from the labeling API",
                status=status,
                retry_after=parse_retry_after(response.headers.get("Retry-After")),
            )
        raise PermanentLabelError(f"unexpected {status}: {_api_message(response)}", status=status)


_local = threading.local()


def get_client() -> LabelClient:
    """One pooled client per thread, rebuilt when the URL or key setting changes."""
    config = (
        settings.ZENTROPI_API_URL,
        settings.ZENTROPI_API_KEY,
        settings.LABEL_CONNECT_TIMEOUT,
        settings.LABEL_READ_TIMEOUT,
    )
    client = getattr(_local, "client", None)
    if client is None or getattr(_local, "config", None) != config:
        client = LabelClient(
            base_url=config[0], api_key=config[1], connect_timeout=config[2], read_timeout=config[3]
        )
        _local.client, _local.config = client, config
    return client
