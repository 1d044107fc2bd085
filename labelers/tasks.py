"""Celery tasks, and the only code that sends Celery messages. Tasks take ids and call
fetch/dispatch; what those return says what to send next."""

from __future__ import annotations

from collections.abc import Iterable

from celery import shared_task
from django.db import transaction

from labelers import dispatch, fetch
from labelers.models import Reevaluation, RelabelRun


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def label_fetch(label_id: int) -> str:
    outcome = fetch.label_fetch(label_id=label_id)
    if outcome.retry_in is not None:
        labels_enqueue([label_id], countdown=outcome.retry_in)
    return outcome.result


@shared_task(ignore_result=True)
def label_sweep() -> int:
    ids = dispatch.labels_due()
    labels_enqueue(ids)
    return len(ids)


def labels_enqueue(label_ids: Iterable[int], *, countdown: float | None = None) -> None:
    """Send the tasks once the rows they name are committed, over one broker connection."""
    label_ids = list(label_ids)
    if not label_ids:
        return

    def send():
        with label_fetch.app.producer_or_acquire() as producer:
            for label_id in label_ids:
                label_fetch.apply_async((label_id,), countdown=countdown, producer=producer)

    transaction.on_commit(send)


def labels_resume_waiting_key() -> int:
    """An admin says the key is fixed: forget refusals and put waiting work back in line."""
    fetch.api_key_refusals_forget()
    return label_sweep()


def relabel_start(*, batch_size: int = 1000, progress=None, **selection) -> RelabelRun:
    """Create a relabel run and send its labels, batch by batch as they are committed."""
    run = dispatch.relabel_run_create(**selection)
    for ids in dispatch.relabel_batches(run, batch_size=batch_size, progress=progress):
        labels_enqueue(ids)
    return run


@shared_task(acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def items_reevaluate(reevaluation_id: int) -> int:
    return dispatch.reevaluation_run(reevaluation_id=reevaluation_id)


def reevaluation_start(*, reason: str, labeler=None, source=None, created_by=None) -> Reevaluation:
    """Record a re-evaluation and send it to a worker once committed (never in a request)."""
    reevaluation = dispatch.reevaluation_create(
        reason=reason, labeler=labeler, source=source, created_by=created_by
    )
    transaction.on_commit(lambda: items_reevaluate.delay(reevaluation.pk))
    return reevaluation
