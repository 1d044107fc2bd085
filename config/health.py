"""Health and readiness for load balancers, compose and orchestrators: /healthz and /readyz.

Served by a middleware placed first, before SecurityMiddleware and CommonMiddleware: a load
balancer or `docker HEALTHCHECK` calls them over plain http with its own Host header (an IP,
"localhost"), which the SSL redirect and ALLOWED_HOSTS would otherwise answer with a 301 or
a 400. Nothing here reads the Host header, a session or a user, and the answers say only
which check failed, never a connection string.
"""

from __future__ import annotations

import logging
import time

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, connections
from django.db.migrations.executor import MigrationExecutor
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone

from config.celery import app as celery_app
from labelers.models import DispatchHeartbeat

logger = logging.getLogger(__name__)

HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"

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
        return self.get_response(request)
