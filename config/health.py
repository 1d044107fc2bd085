"""Machine probes: /healthz and /readyz for load balancers, compose and orchestrators, and
/metrics for Prometheus.

Served by a middleware placed first, before SecurityMiddleware and CommonMiddleware: a load
balancer or `docker HEALTHCHECK` calls them over plain http with its own Host header (an IP,
"localhost"), which the SSL redirect and ALLOWED_HOSTS would otherwise answer with a 301 or
a 400. Nothing here reads the Host header, a session or a user, and the answers say only
which check failed, never a connection string.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.db.models import Count, Min
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily

from config import metrics
from config.celery import app as celery_app
from labelers.models import DispatchHeartbeat, Label
from moderation.models import IN_QUEUE, Item

logger = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
METRICS_PATH = "/metrics"

# Migrations applied once stay applied for this process: the plan is computed until it is
# empty, then never again (it reads every migration file, far too slow for every probe).
_migrations_current = False


def check_database() -> str | None:
    with connections[DEFAULT_DB_ALIAS].cursor() as cursor:
        cursor.execute("SELECT 1")
    return None


def check_migrations() -> str | None:
    global _migrations_current
    if _migrations_current:
        return None
    executor = MigrationExecutor(connections[DEFAULT_DB_ALIAS])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    if plan:
        return f"{len(plan)} migrations not applied"
    _migrations_current = True
    return None


def check_broker() -> str | None:
    """One connection to the broker (Redis answers a PING on connect), given two seconds."""
    with celery_app.connection_for_read() as connection:
        connection.ensure_connection(max_retries=1, timeout=settings.READYZ_BROKER_TIMEOUT)
    return None


def check_dispatcher() -> str | None:
    """Beat's sweep ran recently: without it nothing is labeled, however healthy the web."""
    ran_at = DispatchHeartbeat.objects.filter(pk=1).values_list("ran_at", flat=True).first()
    if ran_at is None:
        return "the dispatcher has never run"
    age = (timezone.now() - ran_at).total_seconds()
    if age > settings.LABEL_DISPATCH_STALL_SECONDS:
        return f"the dispatcher last ran {age:.0f} s ago"
    return None


# Each is a check_<name> function above, returning None when fine, else why not.
CHECKS = ("database", "migrations", "broker", "dispatcher")


def readiness(only: list[str] | None = None) -> tuple[bool, dict[str, str]]:
    """Every check's result ("ok" or why not), or only those named; ready when all are "ok"."""
    names = only or [
        name for name in CHECKS if name != "dispatcher" or settings.READYZ_CHECK_DISPATCHER
    ]
    results: dict[str, str] = {}
    for name in names:
        check = globals()[f"check_{name}"]  # looked up at call time: tests replace checks
        try:
            problem = check()
        except Exception as exc:
            # The exception's text can carry a URL with a password: log it, answer the type.
            logger.warning("readiness check %s failed", name, exc_info=True)
            problem = f"unreachable ({type(exc).__name__})"
        results[name] = problem or "ok"
    return all(value == "ok" for value in results.values()), results


def healthz(request: HttpRequest) -> HttpResponse:
    """The process answers: nothing else is checked (a liveness probe must not fail, and
    get the process restarted, because the database is down)."""
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> HttpResponse:
    started = time.monotonic()
    ready, checks = readiness()
    body = {
        "status": "ok" if ready else "unavailable",
        "checks": checks,
        "seconds": round(time.monotonic() - started, 3),
    }
    return JsonResponse(body, status=200 if ready else 503)


class DatabaseStateCollector:
    """What the database knows, read at scrape time (a few grouped queries on indexed
    columns): the review queue per source, items not yet routed, open labels, and how long
    ago beat's dispatch ran. Shared by every process, so exported once, by the web."""

    def collect(self):
        now = timezone.now()
        depth = GaugeMetricFamily(
            "modqueue_review_queue_items",
            "Undecided items waiting for a reviewer",
            labels=["source"],
        )
        oldest = GaugeMetricFamily(
            "modqueue_review_queue_oldest_seconds",
            "Age of the oldest item waiting for a reviewer (since it was received)",
            labels=["source"],
        )
        rows = (
            Item.objects.filter(status__in=IN_QUEUE)
            .values_list("source__slug")
            .annotate(n=Count("id"), first=Min("received_at"))
            .order_by()
        )
        for slug, count, first in rows:
            depth.add_metric([slug], count)
            oldest.add_metric([slug], (now - first).total_seconds())
        yield depth
        yield oldest
        received = Item.objects.filter(status=Item.Status.RECEIVED).aggregate(
            n=Count("id"), first=Min("received_at")
        )
        yield GaugeMetricFamily(
            "modqueue_items_unrouted", "Items received, not yet given labels", value=received["n"]
        )
        yield GaugeMetricFamily(
            "modqueue_items_unrouted_oldest_seconds",
            "Age of the oldest item not yet given labels (0: none)",
            value=(now - received["first"]).total_seconds() if received["first"] else 0,
        )
        open_labels = GaugeMetricFamily(
            "modqueue_labels_open", "Labels not done, by status", labels=["status"]
        )
        finished = (Label.Status.DONE, Label.Status.SUPERSEDED)
        counts = dict(
            Label.objects.exclude(status__in=finished)
            .values_list("status")
            .annotate(n=Count("id"))
            .order_by()
        )
        for status in Label.Status.values:
            if status not in finished:
                open_labels.add_metric([status], counts.get(status, 0))
        yield open_labels
        ran_at = DispatchHeartbeat.objects.filter(pk=1).values_list("ran_at", flat=True).first()
        yield GaugeMetricFamily(
            "modqueue_dispatcher_lag_seconds",
            "Seconds since beat's dispatch last ran (-1: never)",
            value=(now - ran_at).total_seconds() if ran_at else -1,
        )


_state_registry = CollectorRegistry(auto_describe=False)
_state_registry.register(DatabaseStateCollector())


def metrics_allowed(request: HttpRequest) -> bool:
    """A scraper shows METRICS_TOKEN as a bearer token, or calls from an address in
    METRICS_ALLOWED_IPS directly (not through the proxy: a forwarded request is never let in
    by its address, which would be the proxy's)."""
    token = settings.METRICS_TOKEN
    if token:
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip(), token):
            return True
    if "X-Forwarded-For" in request.headers or "X-Forwarded-Proto" in request.headers:
        return False
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(
        address in ipaddress.ip_network(allowed, strict=False)
        for allowed in settings.METRICS_ALLOWED_IPS
    )


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not metrics_allowed(request):
        return HttpResponse("forbidden\n", status=403, content_type="text/plain")
    body = metrics.process_metrics() + generate_latest(_state_registry)
    return HttpResponse(body, content_type=CONTENT_TYPE_LATEST)


class HealthMiddleware:
    """Answers /healthz and /readyz before any other middleware runs (see the module's
    docstring); every other request passes through untouched."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method in ("GET", "HEAD"):
            path = request.path_info.rstrip("/")
            if path == HEALTH_PATH:
                return healthz(request)
            if path == READY_PATH:
                return readyz(request)
            if path == METRICS_PATH:
                return metrics_view(request)
        return self.get_response(request)
