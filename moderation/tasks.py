"""Celery tasks of moderation: beat's periodic work and decisions sent back to the products.
With labelers/tasks.py, the only code that sends Celery messages; tasks take ids and call
services and moderation/callbacks/deliveries.py. Each task keeps its name on the wire
(`name=`), so queued messages and beat's schedule still match; in code it has a `_task`
suffix."""

from __future__ import annotations

import functools
from collections.abc import Iterable

from celery import shared_task
from celery.contrib.django.task import DjangoTask
from django.db import transaction

from lib import metrics
from moderation.callbacks import deliveries
from moderation.services.erasures import erasure_run, erasures_due
from moderation.services.figures import decided_rollups_refresh, queue_snapshot_take
from moderation.services.queue import items_sla_refresh
from moderation.services.retention import retention_purge
from moderation.services.routing import items_reroute_waiting


class SentAfterCommitTask(DjangoTask):
    """`delay_on_commit` that never fails the request whose transaction committed: a broker
    that is down is logged, not raised (robust); the sweep sends the work once it is found
    lost (CALLBACK_LOST_AFTER_SECONDS)."""

    def delay_on_commit(self, *args, **kwargs) -> None:
        transaction.on_commit(functools.partial(self.delay, *args, **kwargs), robust=True)


@shared_task(name="moderation.tasks.queue_sla_refresh", ignore_result=True)
def queue_sla_refresh_task() -> int:
    """Items cross their source's review SLA as time passes: re-mark them in the queue."""
    return items_sla_refresh()


@shared_task(base=SentAfterCommitTask, name="moderation.tasks.items_reroute", ignore_result=True)
def items_reroute_task(after_id: int = 0) -> int | None:
    """After a routing rule changed: the waiting items, routed again one batch at a time
    (each batch sends the next)."""
    last = items_reroute_waiting(after_id=after_id)
    if last is not None:
        items_reroute_task.delay(last)
    return last


@shared_task(
    base=SentAfterCommitTask,
    name="moderation.tasks.callback_deliver",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
)
def callback_deliver_task(delivery_id: int) -> str:
    """Send one decision's callback. Started by decision_create once the decision commits
    (`delay_on_commit`), and by the sweep for retries and lost messages."""
    # Retries are not sent from here: the delivery's next_attempt_at is the record, and the
    # sweep sends it when due (a countdown of hours would outlive the broker's visibility
    # timeout and a worker's restart).
    result = deliveries.delivery_attempt(delivery_id=delivery_id).result
    if result != "not-due":  # another worker holds it, or it is already delivered
        metrics.CALLBACKS.labels(outcome=result).inc()
    return result


@shared_task(name="moderation.tasks.callback_sweep", ignore_result=True)
def callback_sweep_task() -> int:
    ids = deliveries.deliveries_due()
    callbacks_enqueue(ids)
    return len(ids)


def callbacks_enqueue(delivery_ids: Iterable[int]) -> None:
    """Send the tasks once the deliveries they name are committed, over one connection."""
    delivery_ids = list(delivery_ids)
    if not delivery_ids:
        return

    def send():
        with callback_deliver_task.app.producer_or_acquire() as producer:
            for delivery_id in delivery_ids:
                callback_deliver_task.apply_async((delivery_id,), producer=producer)

    # robust: a broker that is down must not fail the reviewer's request after the decision
    # committed; the sweep sends the delivery once CALLBACK_LOST_AFTER_SECONDS have passed.
    transaction.on_commit(send, robust=True)


def callbacks_redeliver(*, delivery_ids: list[int]) -> list[int]:
    """An admin's "redeliver": send these deliveries again now."""
    ids = deliveries.deliveries_redeliver(delivery_ids=delivery_ids)
    callbacks_enqueue(ids)
    return ids


@shared_task(name="moderation.tasks.decided_rollups", ignore_result=True, time_limit=600)
def decided_rollups_task() -> int:
    """Count the closed days of decided items not counted yet, and recount changed ones."""
    return decided_rollups_refresh()


@shared_task(name="moderation.tasks.queue_snapshot", ignore_result=True, time_limit=300)
def queue_snapshot_task() -> int:
    """This hour's snapshot of every source's queue (the dashboard's queue charts)."""
    return queue_snapshot_take()


@shared_task(name="moderation.tasks.retention_purge", ignore_result=True)
def retention_purge_task() -> int:
    """Beat's retention purge: content past its source's retention period, in batches; the
    next run goes on where a full run stopped."""
    return retention_purge().purged


@shared_task(
    base=SentAfterCommitTask,
    name="moderation.tasks.erasure_run",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
)
def erasure_run_task(erasure_pk: int) -> str:
    """Do a product's erasure (started once the request commits, and by the sweep)."""
    result = erasure_run(erasure_pk=erasure_pk)
    if result == "more":
        erasure_run_task.delay(erasure_pk)
    return result


@shared_task(name="moderation.tasks.erasure_sweep", ignore_result=True)
def erasure_sweep_task() -> int:
    """Erasures whose message was lost or whose worker died are sent again."""
    ids = erasures_due()
    for erasure_pk in ids:
        erasure_run_task.delay(erasure_pk)
    return len(ids)
