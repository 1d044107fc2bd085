"""Which worker processes are alive, so that a worker killed with -9 costs seconds, not the
lease (minutes) and Redis's visibility timeout (an hour).

Each Celery worker process writes a WorkerHeartbeat every WORKER_HEARTBEAT_SECONDS with
the label ids whose messages it holds (received from the broker, not finished: running or
prefetched), and stamps its name on each label it claims. The dispatch (`workers_dead`,
called by each sweep) finds workers silent for WORKER_DEAD_AFTER_SECONDS and takes their
work back: running labels get an expired lease (the sweep re-sends them in the same run),
held labels that no one has claimed are marked un-enqueued (sent again as new work).

What this does not cover, and what still does: a message received in the last heartbeat
interval before the kill and not yet claimed is not in any heartbeat; the sweep's count of
lost messages (dispatch._labels_lost) sends it again once the broker's queue is shorter
than the overdue labels, and LABEL_STALE_PENDING_SECONDS is the backstop.

A worker wrongly taken for dead (heartbeats stuck while it still works) costs at most a
second call for its running labels: each attempt writes only while it holds its claim
(fetch._mine), as with an expired lease.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import threading
import time
from datetime import timedelta

from celery.signals import worker_ready
from celery.worker import state as worker_state
from django.conf import settings
from django.db import close_old_connections, connection
from django.utils import timezone

from labelers.models import DispatchHeartbeat, Label, WorkerHeartbeat

logger = logging.getLogger(__name__)

# This process's name on its heartbeat and on the labels it claims: host, pid and a random
# part, so that a worker restarted on the same host (same pid even) is a new name, and its
# predecessor's work is still recognised as abandoned.
WORKER_NAME = f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"
LABEL_TASK = "labelers.tasks.label_fetch"
LABEL_BATCH_TASK = "labelers.tasks.label_fetch_batch"


def labels_held() -> list[int]:
    """Label ids of the label tasks this worker has received and not finished."""
    held = []
    for request in list(worker_state.reserved_requests):
        if request.name == LABEL_TASK and request.args:
            held.append(int(request.args[0]))
        elif request.name == LABEL_BATCH_TASK and request.args:
            held.extend(int(label_id) for label_id in request.args[0])
    return sorted(set(held))


def worker_heartbeat(*, name: str = WORKER_NAME, holding: list[int] | None = None) -> None:
    WorkerHeartbeat.objects.update_or_create(
        name=name,
        defaults={"seen_at": timezone.now(), "holding": holding or []},
    )


def _beat_forever() -> None:
    while True:
        try:
            close_old_connections()
            worker_heartbeat(holding=labels_held())
        except Exception:
            # The database is away: nothing to do but try again. While it is away the
            # dispatch cannot run either, and it declares no one dead right after.
            logger.warning("worker heartbeat not written", exc_info=True)
            connection.close()
        time.sleep(settings.WORKER_HEARTBEAT_SECONDS)


@worker_ready.connect
def _start_heartbeat(sender=None, **_):
    if settings.WORKER_HEARTBEAT_SECONDS <= 0:
        return
    threading.Thread(target=_beat_forever, name="worker-heartbeat", daemon=True).start()


def dispatch_heartbeat(*, now) -> DispatchHeartbeat:
    """Record that the dispatch ran, and since when it has run without a gap."""
    gap = max(5.0, 3 * settings.LABEL_SWEEP_INTERVAL)
    row = DispatchHeartbeat.objects.filter(pk=1).first()
    if row is None:
        return DispatchHeartbeat.objects.create(pk=1, ran_at=now, running_since=now)
    if row.running_since is None or (now - row.ran_at).total_seconds() > gap:
        row.running_since = now
    row.ran_at = now
    DispatchHeartbeat.objects.filter(pk=1).update(ran_at=now, running_since=row.running_since)
    return row


def workers_dead(*, now, dispatch: DispatchHeartbeat) -> int:
    """Take back the work of workers whose heartbeat stopped; returns how many labels."""
    dead_after = timedelta(seconds=settings.WORKER_DEAD_AFTER_SECONDS)
    if dispatch.running_since is None or dispatch.running_since > now - dead_after:
        return 0  # just (re)started: live workers may not have written since
    taken = 0
    for worker in WorkerHeartbeat.objects.filter(seen_at__lt=now - dead_after):
        # An expired lease: the sweep that called this re-sends these labels right away.
        running = Label.objects.filter(status=Label.Status.RUNNING, worker=worker.name).update(
            lease_expires_at=now - timedelta(microseconds=1)
        )
        # Their messages died with the worker; un-enqueued, they go out as new work.
        held = Label.objects.filter(
            pk__in=worker.holding,
            status__in=[Label.Status.PENDING, Label.Status.FAILED_TRANSIENT],
            enqueued_at__isnull=False,
        ).update(enqueued_at=None)
        worker.delete()
        logger.warning(
            "worker %s silent since %s: took back %d running and %d held labels",
            worker.name,
            worker.seen_at.isoformat(),
            running,
            held,
        )
        taken += running + held
    return taken
