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

from celery import current_app as celery_app
from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils.module_loading import import_string
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from lib import metrics

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


# What this process needs to serve its own requests: every check but those of side
# processes. A stalled dispatcher (beat) is reported in the body but does not make the web
# unready: behind a load balancer one dead beat would take every web instance out of
# rotation, and products' webhooks with it. The queue page's banner, /metrics
# (modqueue_dispatcher_lag_seconds) and beat's own health check (`manage.py readyz --check
# dispatcher`) say it instead; READYZ_CHECK_DISPATCHER makes it required again.
SIDE_PROCESS_CHECKS = ("dispatcher",)


def readiness(only: list[str] | None = None) -> tuple[bool, dict[str, str]]:
    """Every check's result ("ok" or why not), or only those named; ready when every
    required check (all those named, when named) is "ok"."""
    checks = settings.HEALTH_CHECKS
    names = only or list(checks)
    required = only or [
        name
        for name in checks
        if name not in SIDE_PROCESS_CHECKS or settings.READYZ_CHECK_DISPATCHER
    ]
    results: dict[str, str] = {}
    for name in names:
        check = import_string(checks[name])  # looked up at call time: tests replace checks
        try:
            problem = check()
        except Exception as exc:
            # The exception's text can carry a URL with a password: log it, answer the type.
            logger.warning("readiness check %s failed", name, exc_info=True)
            problem = f"unreachable ({type(exc).__name__})"
        results[name] = problem or "ok"
    return all(results[name] == "ok" for name in required), results


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


# What the database knows (the apps' collectors, METRICS_COLLECTORS in settings), exported
# once, by the web; built at first scrape, when the apps are loaded.
_state_registry: CollectorRegistry | None = None


def _state() -> CollectorRegistry:
    global _state_registry
    if _state_registry is None:
        registry = CollectorRegistry(auto_describe=False)
        for path in settings.METRICS_COLLECTORS:
            registry.register(import_string(path)())
        _state_registry = registry
    return _state_registry


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
    body = metrics.process_metrics() + generate_latest(_state())
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
