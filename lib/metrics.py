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
