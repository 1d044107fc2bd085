"""The Celery app: settings from Django, tasks discovered in the apps, connection upkeep."""

import logging
import os
import signal
import threading
import time

from celery import Celery
from celery.concurrency.thread import TaskPool as ThreadsPool
from celery.signals import after_setup_logger, task_postrun, task_prerun, worker_ready
from celery.worker import state as worker_state
from django.conf import settings
from django.db import close_old_connections
from prometheus_client import start_http_server

from lib import (
    broker,  # noqa: F401 - registers the atomic filesystem transport
    logs,
    pool,
)
from lib.broker import queue_depth

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
logger = logging.getLogger(__name__)

app = Celery("modqueue")
app.config_from_object("django.conf:settings", namespace="CELERY")
# Celery's Django fixup closes every database connection before and after each task unless
# this is set; reconnecting cost ~17 ms a task (a quarter of the labeling throughput). Let
# Django decide instead, as it does for web requests: CONN_MAX_AGE and health checks.
app.conf["CELERY_DB_REUSE_MAX"] = 1_000_000
app.autodiscover_tasks()


_checked = threading.local()


@after_setup_logger.connect
def _keep_the_apps_log_level(logger=None, loglevel=None, **_):
    """A worker's `--loglevel` sets the root logger's level; let it set Celery's own lines
    only (the `celery` logger), and keep the app's at LOG_LEVEL as in the web process."""
    if logger is not None:
        logger.setLevel(settings.LOG_LEVEL)
    if loglevel:
        logging.getLogger("celery").setLevel(loglevel)


@task_prerun.connect
def _bind_task_to_logs(task_id=None, task=None, **_):
    """Every line a task logs carries its id (eager tasks log as part of their caller)."""
    if task is not None and getattr(task.request, "is_eager", False):
        return
    logs.clear()
    logs.bind(task_id=task_id, task=getattr(task, "name", None))


@task_postrun.connect
def _unbind_task_from_logs(task=None, **_):
    if task is not None and getattr(task.request, "is_eager", False):
        return
    logs.clear()
    pool.task_ended()


# A health check is a round trip: once a second per thread, it was one query in four at one
# label a second per thread. A connection that dies meanwhile fails one task, which the
# label's lease and the sweep retry.
CONNECTION_CHECK_SECONDS = 5.0


@task_prerun.connect
def _close_old_connections(task=None, **_):
    """Django's per-request connection upkeep (CONN_MAX_AGE, health checks), at most every
    CONNECTION_CHECK_SECONDS per worker thread."""
    if task is not None and getattr(task.request, "is_eager", False):
        return  # eager tasks run inside the caller's connection and transaction
    now = time.monotonic()
    if now - getattr(_checked, "at", 0.0) < CONNECTION_CHECK_SECONDS:
        return
    _checked.at = now
    close_old_connections()


# A worker that reconnected to its broker can stop fetching messages while staying alive (a
# known Celery + Redis bug: celery/celery#8030, #8091, #10205): work then waits in the queue
# beside an idle worker until someone restarts it. The watchdog does that: a worker with no
# task running for WORKER_WEDGED_SECONDS while its queues hold messages shuts down (warm),
# and its supervisor (compose's restart policy, systemd, dev.py run) starts it again.
WORKER_WEDGED_SECONDS = float(os.environ.get("WORKER_WEDGED_SECONDS", "30"))


def _activity_seen() -> tuple[int, int]:
    """(tasks running now, tasks started so far) as this worker's main process sees them.

    The watchdog runs in the main process, and judges from what Celery's consumer records
    there for every pool (celery.worker.state: a request is accepted, then ready). Under the
    default prefork pool task_prerun/task_postrun fire in the child processes, so counting
    with those, the main process saw no task at all and shut a busy worker down."""
    return len(worker_state.active_requests), worker_state.all_total_count[0]


def wedged(*, running: int, idle_seconds: float, waiting: int, limit: float) -> bool:
    """Idle for longer than `limit` while messages wait: the worker is not fetching."""
    return limit > 0 and running == 0 and idle_seconds > limit and waiting > 0


def _messages_waiting(queues) -> int:
    with app.connection_for_read() as connection:
        return sum(queue_depth(connection, name) for name in queues)


def _watch(queues) -> None:
    started = _activity_seen()[1]
    last = time.monotonic()
    while True:
        time.sleep(max(1.0, WORKER_WEDGED_SECONDS / 4))
        running, seen = _activity_seen()
        if running or seen != started:
            started, last = seen, time.monotonic()
            continue
        idle = time.monotonic() - last
        if idle <= WORKER_WEDGED_SECONDS:
            continue
        try:
            waiting = _messages_waiting(queues)
        except Exception:
            logger.info("wedge watchdog: the broker cannot say what waits", exc_info=True)
            continue
        if wedged(running=running, idle_seconds=idle, waiting=waiting, limit=WORKER_WEDGED_SECONDS):
            logger.error(
                "worker idle for %.0f s while %d messages wait: it stopped fetching; "
                "shutting down so that its supervisor restarts it",
                idle,
                waiting,
            )
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(60)
            os._exit(1)  # the warm shutdown hung as well


@worker_ready.connect
def _serve_metrics(sender=None, **_):
    """A worker's own counters (labels by outcome, API calls and latency) for Prometheus to
    scrape on WORKER_METRICS_PORT; the threads pool keeps them all in this one process."""
    if port := settings.WORKER_METRICS_PORT:
        start_http_server(port, addr=settings.WORKER_METRICS_ADDR)
        logger.info("worker metrics on %s:%s", settings.WORKER_METRICS_ADDR, port)


@worker_ready.connect
def _note_a_threads_pool(sender=None, **_):
    """A batch of labels hands its rest back when threads of this pool wait (lib.pool)."""
    if sender is not None and isinstance(sender.pool, ThreadsPool):
        pool.threads_pool_ready(sender.pool.limit)


@worker_ready.connect
def _start_watchdog(sender=None, **_):
    if WORKER_WEDGED_SECONDS <= 0 or sender is None:
        return
    queues = [queue.name for queue in sender.task_consumer.queues]
    threading.Thread(target=_watch, args=(queues,), name="wedge-watchdog", daemon=True).start()
