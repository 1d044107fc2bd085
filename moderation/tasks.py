"""Celery tasks of moderation: beat's periodic work and decisions sent back to the products.
With labelers/tasks.py, the only code that sends Celery messages; tasks take ids and call
services and moderation/callbacks/deliveries.py."""

from __future__ import annotations

from collections.abc import Iterable

from celery import shared_task
from django.db import transaction

from config import metrics
from moderation.callbacks import deliveries
from moderation.services.queue import items_sla_refresh


@shared_task(ignore_result=True)
def queue_sla_refresh() -> int:
    """Items cross their source's review SLA as time passes: re-mark them in the queue."""
    return items_sla_refresh()


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def callback_deliver(delivery_id: int) -> str:
    # Retries are not sent from here: the delivery's next_attempt_at is the record, and the
    # sweep sends it when due (a countdown of hours would outlive the broker's visibility
    # timeout and a worker's restart).
    result = deliveries.delivery_attempt(delivery_id=delivery_id).result
    if result != "not-due":  # another worker holds it, or it is already delivered
        metrics.CALLBACKS.labels(outcome=result).inc()
    return result


@shared_task(ignore_result=True)
def callback_sweep() -> int:
    ids = deliveries.deliveries_due()
    callbacks_enqueue(ids)
    return len(ids)


def callbacks_enqueue(delivery_ids: Iterable[int]) -> None:
    """Send the tasks once the deliveries they name are committed."""
    delivery_ids = list(delivery_ids)
    if not delivery_ids:
        return

    def send():
        with callback_deliver.app.producer_or_acquire() as producer:
            for delivery_id in delivery_ids:
                callback_deliver.apply_async((delivery_id,), producer=producer)

    # robust: a broker that is down must not fail the reviewer's request after the decision
    # committed; the sweep sends the delivery once CALLBACK_LOST_AFTER_SECONDS have passed.
    transaction.on_commit(send, robust=True)


def callback_delivery_created(sender, *, delivery_id: int, **_) -> None:
    """Receiver of deliveries.delivery_created (connected in apps.py): services make the
    decision and its delivery, and cannot import this module (its tasks call services)."""
    callbacks_enqueue([delivery_id])


def callbacks_redeliver(*, delivery_ids: list[int]) -> list[int]:
    """An admin's "redeliver": send these deliveries again now."""
    ids = deliveries.deliveries_redeliver(delivery_ids=delivery_ids)
    callbacks_enqueue(ids)
    return ids
