"""Celery tasks, and the only code that sends Celery messages. Tasks take ids and call
fetch/dispatch; what those return says what to send next. Each task keeps its name on the
wire (`name=`), so queued messages and beat's schedule still match; in code it has a
`_task` suffix."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from celery import shared_task
from django.conf import settings
from django.db import transaction

from labelers import dispatch, fetch, shadow
from labelers.dashboard_rollups import dashboard_rollups_refresh
from labelers.guarded import api_key_refusals_forget
from labelers.models import Label, Reevaluation, RelabelRun, ShadowRun
from labelers.quality.rollups import quality_rollups_refresh
from lib import metrics, pool
from lib.broker import queue_depth
from lib.cache import TTLCache
from moderation.services.verdicts import bank_hashes_retro_match

logger = logging.getLogger(__name__)

# A first run counts every past day of every version; later runs, a day and the changes.
QUALITY_ROLLUPS_TIME_LIMIT = 600


@shared_task(
    name="labelers.tasks.label_fetch",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
)
def label_fetch_task(label_id: int) -> str:
    return _outcome(label_id, fetch.label_fetch(label_id=label_id))


def _outcome(label_id: int, outcome: fetch.Outcome) -> str:
    metrics.LABELS.labels(outcome=outcome.result).inc()
    if outcome.result == "cached":
        metrics.CACHE_HITS.inc()
    if outcome.retry_in is not None:
        labels_enqueue([label_id], countdown=outcome.retry_in)
    return outcome.result


@shared_task(
    name="labelers.tasks.label_fetch_batch",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    # One label's limits, plus the time after which the batch takes no new label.
    time_limit=settings.CELERY_TASK_TIME_LIMIT + int(settings.LABEL_BATCH_SECONDS),
    soft_time_limit=settings.CELERY_TASK_SOFT_TIME_LIMIT + int(settings.LABEL_BATCH_SECONDS),
)
def label_fetch_batch_task(label_ids: list[int]) -> int:
    """Label a few labels one after another: one message and one claim for the batch (a
    label another worker took meanwhile is not claimed). The batch holds the claims of the
    labels it has not started yet: their leases are renewed while it works, and it gives
    them back at once when it runs out of time or gives up."""
    if fetch.api_key_refused():
        for label_id in label_ids:  # each waits for the key (fetch.label_fetch)
            _outcome(label_id, fetch.label_fetch(label_id=label_id))
        return len(label_ids)
    started = kept = time.monotonic()
    labels = fetch.labels_claim(label_ids)
    for _ in range(len(label_ids) - len(labels)):
        metrics.LABELS.labels(outcome="skipped").inc()
    keep_every = max(0.1, settings.LABEL_LEASE_SECONDS / 4)
    lost: set[int] = set()
    position = 0
    try:
        while position < len(labels):
            label, rest = labels[position], labels[position:]
            now = time.monotonic()
            if position and now - started > settings.LABEL_BATCH_SECONDS:
                # Slow calls or throttle waits: the rest goes back in line rather than hold
                # this task past its time limit.
                _hand_back(rest)
                return position
            if len(rest) > 1 and pool.threads_idle(IDLE_THREADS_SECONDS):
                # The end of a backlog: threads beside this one would sit idle while this
                # batch's last labels wait for it. Each goes back as a message of its own.
                _hand_back(rest[1:], size=1)
                del labels[position + 1 :]
                rest = rest[:1]
            if now - kept > keep_every:
                # Slow calls: the leases of the labels still waiting in this batch run out
                # unless renewed; one whose lease ran out anyway may be another attempt's now.
                held = fetch.labels_keep(rest)
                lost.update(waiting.pk for waiting in rest if waiting.pk not in held)
                kept = now
            if label.pk in lost:
                metrics.LABELS.labels(outcome="skipped").inc()
            else:
                _outcome(label.pk, fetch.label_fetch_claimed(label, done_before=labels[:position]))
            position += 1
    except BaseException:
        # Given up (a time limit, a crash in the task): label_fetch_claimed released the
        # label it was working; those not started are given back too, and their message is
        # acked with this failure. Un-enqueued, the next sweep sends them at once. A label
        # already stored or released is no longer running: the give-back leaves it be.
        fetch.labels_unclaim(labels[position:], resent=False)
        raise
    return len(labels)


def _hand_back(labels: list[Label], *, size: int | None = None) -> None:
    """A batch gives back claims it has not started and sends them again, `size` to a
    message (labels_enqueue's)."""
    fetch.labels_unclaim(labels, resent=True)
    labels_enqueue([label.pk for label in labels], size=size)


# While the broker holds work, a thread that finishes a task waits only for its next message
# (milliseconds); waiting this long, the broker has none for it.
IDLE_THREADS_SECONDS = 0.2


@shared_task(name="labelers.tasks.label_sweep", ignore_result=True)
def label_sweep_task() -> int:
    messages = labels_queued()
    # At most this many labels wait in the broker (batches may be partial): the dispatch
    # counts a lost message only once the overdue labels outnumber that, never too soon.
    queued = None if messages is None else messages * max(1, settings.LABEL_BATCH_SIZE)
    ids = dispatch.dispatch_sweep(broker_queued=queued)
    labels_enqueue(ids)
    relabel_runs_enqueue(dispatch.relabel_runs_lost())
    shadow_runs_enqueue(shadow.shadow_runs_lost())
    return len(ids)


LABELS_QUEUE = "labels"
# One broker round trip per sweep at most: the sweep runs every second, and an admin action
# may call it too.
_queued_cache: TTLCache[int | None] = TTLCache(seconds=1.0)


def labels_queued(queue: str = LABELS_QUEUE) -> int | None:
    """How many label messages wait in the broker (not those a worker has taken), or None
    when the broker cannot say: the dispatch then sends no bulk work and leaves lost
    messages to the stale timeout. A message may carry up to LABEL_BATCH_SIZE labels."""

    def ask() -> int | None:
        try:
            with label_fetch_task.app.connection_for_write() as connection:
                return queue_depth(connection, queue)
        except Exception:
            logger.warning("cannot count the broker's labels queue", exc_info=True)
            return None

    return _queued_cache.get(queue, ask)


def labels_enqueue(
    label_ids: Iterable[int], *, countdown: float | None = None, size: int | None = None
) -> None:
    """Send the tasks once the rows they name are committed, over one broker connection:
    `size` labels to a message (LABEL_BATCH_SIZE unless said)."""
    batches = labels_batches(list(label_ids), size=size)
    if not batches:
        return

    def send():
        with label_fetch_task.app.producer_or_acquire() as producer:
            for batch in batches:
                if len(batch) == 1:
                    task, args = label_fetch_task, (batch[0],)
                else:
                    task, args = label_fetch_batch_task, (batch,)
                task.apply_async(args, countdown=countdown, producer=producer)

    transaction.on_commit(send)


def labels_batches(label_ids: list[int], *, size: int | None = None) -> list[list[int]]:
    """The labels `size` to a message (LABEL_BATCH_SIZE unless said), in order."""
    size = max(1, size or settings.LABEL_BATCH_SIZE)
    return [label_ids[start : start + size] for start in range(0, len(label_ids), size)]


def labels_resume_waiting_key() -> int:
    """An admin says the key is fixed: forget refusals and put waiting work back in line."""
    api_key_refusals_forget()
    return label_sweep_task()


# A relabel run over millions of items takes longer than a label's time limit; its claim
# (relabel_run_execute) keeps a redelivered message from running it twice.
RELABEL_TIME_LIMIT = 6 * 3600


@shared_task(
    name="labelers.tasks.relabel_run",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    time_limit=RELABEL_TIME_LIMIT,
    soft_time_limit=RELABEL_TIME_LIMIT - 60,
)
def relabel_run_task(run_id: int) -> int:
    """Add a run's labels in the background; the sweep sends them behind fresh work."""
    run = dispatch.relabel_run_execute(run_id=run_id)
    return run.created if run is not None else 0


def relabel_runs_enqueue(run_ids: Iterable[int]) -> None:
    _runs_enqueue(relabel_run_task, run_ids)


def _runs_enqueue(task, run_ids: Iterable[int]) -> None:
    """One message per run (relabel or shadow), sent once the runs are committed."""
    run_ids = list(run_ids)
    if run_ids:
        transaction.on_commit(lambda: [task.apply_async((pk,)) for pk in run_ids])


def relabel_start(**selection) -> RelabelRun:
    """Create a relabel run (queued) and send it to a worker once committed."""
    run = dispatch.relabel_run_create(**selection)
    relabel_runs_enqueue([run.pk])
    return run


def relabel_items_start(*, item_ids: list[int], created_by=None) -> list[RelabelRun]:
    """Relabel selected items, each with its own source's routing, in the background."""
    runs = dispatch.relabel_runs_for_items(item_ids=item_ids, created_by=created_by)
    relabel_runs_enqueue(run.pk for run in runs)
    return runs


def relabel_version_start(
    *, version, since, undecided_only: bool, created_by=None
) -> list[RelabelRun]:
    """Relabel recent (or recent undecided) items of the routed sources with a version."""
    runs = dispatch.relabel_runs_for_version(
        version=version, since=since, undecided_only=undecided_only, created_by=created_by
    )
    relabel_runs_enqueue(run.pk for run in runs)
    return runs


@shared_task(
    name="labelers.tasks.items_reevaluate",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
)
def items_reevaluate_task(reevaluation_id: int) -> int:
    return dispatch.reevaluation_run(reevaluation_id=reevaluation_id)


def reevaluation_start(*, reason: str, labeler=None, source=None, created_by=None) -> Reevaluation:
    """Record a re-evaluation and send it to a worker once committed (never in a request)."""
    reevaluation = dispatch.reevaluation_create(
        reason=reason, labeler=labeler, source=source, created_by=created_by
    )
    transaction.on_commit(lambda: items_reevaluate_task.delay(reevaluation.pk))
    return reevaluation


# A shadow run makes its calls one after another, so a large sample takes long; its claim
# keeps a redelivered message from running it twice. It goes to the dispatch queue, as relabel
# runs do: behind a label backlog, the sweep would send a queued run again every minute.
SHADOW_TIME_LIMIT = 6 * 3600


@shared_task(
    name="labelers.tasks.shadow_run",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
    time_limit=SHADOW_TIME_LIMIT,
    soft_time_limit=SHADOW_TIME_LIMIT - 60,
)
def shadow_run_task(run_id: int) -> int:
    """Answer a shadow run's sample in the background (never in a request)."""
    run = shadow.shadow_run_execute(run_id=run_id)
    return run.done if run is not None else 0


def shadow_runs_enqueue(run_ids: Iterable[int]) -> None:
    _runs_enqueue(shadow_run_task, run_ids)


def shadow_run_start(
    *, version, source, sample_size: int, decided_only: bool, created_by=None
) -> ShadowRun:
    """Create a shadow run (queued, its sample fixed) and send it once committed."""
    run = shadow.shadow_run_create(
        version=version,
        source=source,
        sample_size=sample_size,
        decided_only=decided_only,
        created_by=created_by,
    )
    shadow_runs_enqueue([run.pk])
    return run


def shadow_run_resume(*, run: ShadowRun) -> bool:
    """Put a failed run back in the queue and send it; only its missing items are asked."""
    resumed = shadow.shadow_run_resume(run=run)
    if resumed:
        shadow_runs_enqueue([run.pk])
    return resumed


# Here rather than in moderation/tasks.py: acting on a match makes decisions, and
# moderation's decisions service imports moderation.tasks (its callbacks), so a task there
# could not import it without a cycle.
@shared_task(
    name="labelers.tasks.bank_retro_match",
    acks_late=True,
    reject_on_worker_lost=True,
    ignore_result=True,
)
def bank_retro_match_task(bank_hash_ids: list[int]) -> int:
    """Match newly banked hashes against recent items (idempotent: a match is recorded and
    acted on once)."""
    return bank_hashes_retro_match(bank_hash_ids=bank_hash_ids, days=settings.BANK_RETRO_DAYS)


def bank_retro_start(bank_hash_ids: list[int]) -> None:
    """Send the retroactive match of new hashes once they are committed."""
    if bank_hash_ids:
        ids = list(bank_hash_ids)
        transaction.on_commit(lambda: bank_retro_match_task.delay(ids))


@shared_task(
    name="labelers.tasks.quality_rollups",
    ignore_result=True,
    time_limit=QUALITY_ROLLUPS_TIME_LIMIT,
    soft_time_limit=QUALITY_ROLLUPS_TIME_LIMIT - 30,
)
def quality_rollups_task() -> int:
    """Count the closed days not counted yet and recount those changed since (idempotent:
    a run that overlaps another writes the same rows)."""
    return quality_rollups_refresh()


@shared_task(
    name="labelers.tasks.dashboard_rollups",
    ignore_result=True,
    time_limit=QUALITY_ROLLUPS_TIME_LIMIT,
    soft_time_limit=QUALITY_ROLLUPS_TIME_LIMIT - 30,
)
def dashboard_rollups_task() -> int:
    """The dashboard's daily figures: closed days not counted yet, and days whose flags an
    edit changed since (idempotent)."""
    return dashboard_rollups_refresh()
