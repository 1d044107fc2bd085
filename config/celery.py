"""The Celery app: settings from Django, tasks discovered in the apps, connection upkeep."""

import os
import threading
import time

from celery import Celery
from celery.signals import task_prerun
from django.db import close_old_connections

from config import broker  # noqa: F401 - registers the atomic filesystem transport

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("modqueue")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Celery's Django fixup closes every database connection before and after each task unless
# this is set; reconnecting cost ~17 ms a task (a quarter of the labeling throughput). Let
# Django decide instead, as it does for web requests: CONN_MAX_AGE and health checks.
app.conf["CELERY_DB_REUSE_MAX"] = 1_000_000
app.autodiscover_tasks()


_checked = threading.local()


@task_prerun.connect
def _close_old_connections(task=None, **_):
    """Django's per-request connection upkeep (CONN_MAX_AGE, health checks), at most once a
    second per worker thread: a health check is a round trip, and tasks come by the dozen."""
    if task is not None and getattr(task.request, "is_eager", False):
        return  # eager tasks run inside the caller's connection and transaction
    now = time.monotonic()
    if now - getattr(_checked, "at", 0.0) < 1.0:
        return
    _checked.at = now
    close_old_connections()
