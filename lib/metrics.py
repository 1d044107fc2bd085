"""Prometheus metrics the processes count as they work (prometheus-client).

Counters and histograms live here, with no import of the apps, so that intake, the labeling
client and the tasks can count without depending on each other. What the database knows
(queue depth, oldest waiting item, open labels, dispatcher lag) is read at scrape time by
lib/health.py, which serves /metrics.

gunicorn runs several processes: gunicorn.conf.py sets PROMETHEUS_MULTIPROC_DIR before they
start, so each writes its values to a file there and /metrics adds them all up. A Celery
worker (threads pool: one process) serves its own on WORKER_METRICS_PORT.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import REGISTRY as PROCESS_REGISTRY
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)

INTAKE_REQUESTS = Counter(
    "modqueue_intake_requests_total",
    "Webhook requests by HTTP status answered",
    ["status"],
)
REPORT_REQUESTS = Counter(
    "modqueue_report_requests_total",
    "Report webhook requests by HTTP status answered",
    ["status"],
)
LABELS = Counter(
    "modqueue_labels_total",
    "Label task outcomes (done, cached, failed, retry, paused, waiting_key, skipped, ...)",
    ["outcome"],
)
API_CALLS = Counter(
    "modqueue_api_calls_total",
    "Calls to the labeling API by result (200, 401, 422, 429, 5xx, other, timeout, connection)",
    ["result"],
)
API_LATENCY = Histogram(
    "modqueue_api_call_seconds",
    "Latency of calls to the labeling API that got an answer",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
)
CACHE_HITS = Counter(
    "modqueue_label_cache_hits_total",
    "Labels served from an identical, already paid-for label instead of a call",
)
CALLBACKS = Counter(
    "modqueue_callbacks_total",
    "Decision callback attempts to products by outcome (delivered, retry, failed: gave up, "
    "superseded: not sent, a newer decision of the item was delivered)",
    ["outcome"],
)

# Requests by view, never by path: one series per route however many items, authors or
# made-up URLs are asked for (a path label would grow without bound).
HTTP_REQUESTS = Counter(
    "modqueue_http_requests_total",
    "HTTP requests answered, by view (URL name; unmatched: no route), method and status",
    ["view", "method", "status"],
)
HTTP_LATENCY = Histogram(
    "modqueue_http_request_seconds",
    "Time from the request reaching the app's middleware to its response, by view and method",
    ["view", "method"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
UNMATCHED = "unmatched"


class RequestMetricsMiddleware:
    """Counts each request and its latency under its view's name (resolver_match.view_name,
    e.g. "webhook", "item", "admin:index"); a request no route matched (404s, redirects to
    the slash) counts as "unmatched". Placed before the machine endpoints' short cut, so the
    webhook is counted too; /healthz, /readyz and /metrics are answered before it and are
    not. The cost is two clock reads and three value updates: ~7 µs a request with
    gunicorn's multiprocess files (3 µs in one process), against ~1 ms of CPU for a signed
    webhook."""

    def __init__(self, get_response: Callable):
        self.get_response = get_response
        # The labelled children, looked up once per (view, method, status): labels() takes
        # a lock and builds a key on every call, most of what this middleware would cost.
        self._series: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - started
        match = getattr(request, "resolver_match", None)
        view = match.view_name if match is not None else UNMATCHED
        method = request.method if request.method in _METHODS else "other"
        key = (view, method, response.status_code)
        series = self._series.get(key)
        if series is None:
            series = self._series[key] = (
                HTTP_LATENCY.labels(view, method),
                HTTP_REQUESTS.labels(view, method, str(response.status_code)),
            )
        series[0].observe(elapsed)
        series[1].inc()
        return response


_STATUS_SERIES: dict[tuple[int, int], Any] = {}


def counted(counter: Counter, status: int) -> None:
    """counter{status} += 1, its child looked up once per status: labels() takes a lock and
    builds a key on every call (the webhooks count every request)."""
    key = (id(counter), status)
    child = _STATUS_SERIES.get(key)
    if child is None:
        child = _STATUS_SERIES[key] = counter.labels(status=str(status))
    child.inc()


def api_result(status: int | None, error: str | None = None) -> str:
    """A low-cardinality label for one API call."""
    if error is not None:
        return error
    if status in (200, 401, 422, 429):
        return str(status)
    if status is not None and status >= 500:
        return "5xx"
    return "other"


def process_metrics() -> bytes:
    """This process's counters, or every gunicorn process's when they share a folder."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        return generate_latest(registry)
    return generate_latest(PROCESS_REGISTRY)
