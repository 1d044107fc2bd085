import os

from celery import Celery
from celery.signals import task_postrun, task_prerun

from config import broker  # noqa: F401 - registers the atomic filesystem transport

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("modqueue")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Celery's Django fixup closes every database connection before and after each task unless
# this is set; reconnecting cost ~17 ms a task (a quarter of the labeling throughput). Let
# Django decide instead, as it does for web requests: CONN_MAX_AGE and health checks.
app.conf["CELERY_DB_REUSE_MAX"] = 1_000_000
app.autodiscover_tasks()


@task_prerun.connect
@task_postrun.connect
def _close_old_connections(task=None, **_):
    if task is not None and getattr(task.request, "is_eager", False):
        return  # eager tasks run inside the caller's connection and transaction
    from django.db import close_old_connections

    close_old_connections()
