"""One label: claim it, reuse an identical answer (cost guard), call the API, store the
answer, or decide when to try again. Sends no messages: the task acts on the outcome."""

from __future__ import annotations

import base64
import functools
import logging
import operator
import random
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.db.models import F, Q
from django.utils import timezone

from labelers import client as api
from labelers.guarded import BreakerOpen, api_key_refused, label_call, record_refusal
from labelers.liveness import WORKER_NAME
from labelers.models import Label, LabelerVersion
from labelers.throttle import SlotAbandoned
from labelers.verdict import Answer, answer_store, item_refresh
from lib import logs
from lib.prepared import PreparedStatement
from moderation.models import Item

logger = logging.getLogger(__name__)

# Countdowns longer than this are left to the sweep: Redis's visibility timeout is an hour,
# and a message held for longer than that would be handed to a second worker.
MAX_COUNTDOWN_SECONDS = 300
# How often a label looks again whether the identical label it waits for has its answer.
WAIT_FOR_IDENTICAL_SECONDS = 1.0


@dataclass(frozen=True)
class Outcome:
    """What happened to one label ("done", "cached", "retry", ...); `retry_in`: seconds
    after which the caller should send the label's task again (None: nothing to send)."""

    result: str
    retry_in: float | None = None


def _build_request(label: Label) -> api.LabelRequest:
    version = label.labeler_version
    return label_request(
        label.item,
        criteria_text=version.criteria_text,
        labeler_id=version.remote_labeler_id,
        labeler_version_id=version.remote_version_id,
        model=label.model,
    )


def label_request(
    item, *, criteria_text: str, labeler_id: str, labeler_version_id: str, model: str
) -> api.LabelRequest:
    """What is sent for an item's current content under a policy; shared with shadow runs,
    which send a draft's policy without a Label row. Raises OSError if stored media is gone."""
    media = {}
    for field_name in ("content_image", "content_video"):
        stored = getattr(item, field_name)
        if stored:
            with stored.open("rb") as handle:
                data = base64.b64encode(handle.read()).decode()
            media[field_name] = f"data:{getattr(item, field_name + '_type')};base64,{data}"
    return api.LabelRequest(
        content_text=item.content_text,
        criteria_text=criteria_text,
        labeler_id=labeler_id,
        labeler_version_id=labeler_version_id,
        model=model,
        **media,
    )


def backoff_seconds(attempt: int, retry_after: float | None = None) -> float:
    """Exponential with full jitter on top of a floor; Retry-After, when given, is a floor."""
    # Attempts are not bounded (a label keeps retrying while the API answers most calls):
    # bound the exponent so that a float never overflows.
    base = settings.LABEL_BACKOFF_BASE * (2 ** min(max(0, attempt - 1), 30))
    delay = min(settings.LABEL_BACKOFF_CAP, base) * (0.5 + random.random() / 2)
    return max(delay, retry_after or 0.0)


# A label's claim and everything its call needs, in one statement: the claim (a conditional
# UPDATE, so a redelivered message never makes a second call), and in its RETURNING the
# item's content and revision, the version's policy, and two identical labels (same content,
# labeler version and model): one already paid for (the cost guard), and one being paid for
# right now by another worker (single flight: wait for its answer instead); a labeler pinned to
# "latest" on the API side can change there without a new version here, so its answers are
# reused only while they are recent (labeled_at >= the limit). The running twin is looked up
# by content hash only ("+ 0" and "|| ''" keep the planner off the version and status
# indexes): before statistics catch up with a burst of new labels, PostgreSQL took those for
# selective and read every running label of the version, once per claim. The statement sees
# the database as it was when it started: a twin claimed at the same instant by another
# worker is not in it, and on PostgreSQL both would pay. So it also says whether any twin is
# still open (pending, running, to retry); only then (bursts of identical content, rare
# otherwise) are the twins read again after the claim (_twins_now), when any twin claimed
# before this claim committed shows: of two racing claims, at least one sees the other.
# Scalar subqueries
# rather than UPDATE ... FROM: SQLite's RETURNING cannot name a FROM table. Written out: the
# ORM has no UPDATE ... RETURNING, and this runs once per label.
_CLAIM_SQL = """
UPDATE {label}
SET status = {running}, lease_expires_at = %(lease)s, attempts = attempts + 1, worker = %(worker)s
WHERE id IN ({label_ids}) AND (
    (status IN ({pending}, {failed_transient})
     AND (next_attempt_at IS NULL OR next_attempt_at <= %(now)s))
    OR (status = {running} AND lease_expires_at < %(now)s)
)
RETURNING id, item_id, revision, labeler_version_id, attempts, model, content_hash,
    (SELECT revision FROM {item} WHERE id = {label}.item_id),
    (SELECT source_id FROM {item} WHERE id = {label}.item_id),
    (SELECT content_text FROM {item} WHERE id = {label}.item_id),
    (SELECT content_image FROM {item} WHERE id = {label}.item_id),
    (SELECT content_image_type FROM {item} WHERE id = {label}.item_id),
    (SELECT content_video FROM {item} WHERE id = {label}.item_id),
    (SELECT content_video_type FROM {item} WHERE id = {label}.item_id),
    (SELECT labeler_id FROM {version} WHERE id = {label}.labeler_version_id),
    (SELECT criteria_text FROM {version} WHERE id = {label}.labeler_version_id),
    (SELECT remote_labeler_id FROM {version} WHERE id = {label}.labeler_version_id),
    (SELECT remote_version_id FROM {version} WHERE id = {label}.labeler_version_id),
    (SELECT other.id FROM {label} other
     WHERE other.content_hash = {label}.content_hash
       AND other.labeler_version_id = {label}.labeler_version_id
       AND other.model = {label}.model AND other.id <> {label}.id AND other.status = {done}
       AND (other.labeled_at >= %(recent)s OR NOT EXISTS (
           SELECT 1 FROM {version} latest WHERE latest.id = {label}.labeler_version_id
           AND latest.remote_labeler_id <> '' AND latest.remote_version_id IN ('latest', '')))
     LIMIT 1),
    (SELECT other.id FROM {label} other
     WHERE other.content_hash = {label}.content_hash
       AND other.labeler_version_id + 0 = {label}.labeler_version_id
       AND other.model = {label}.model AND other.id <> {label}.id AND other.status || '' = {running}
       AND other.lease_expires_at > %(now)s
     LIMIT 1),
    (SELECT other.id FROM {label} other
     WHERE other.content_hash = {label}.content_hash
       AND other.labeler_version_id + 0 = {label}.labeler_version_id
       AND other.model = {label}.model AND other.id <> {label}.id
       AND other.status || '' IN ({pending}, {running}, {failed_transient})
     LIMIT 1)
"""


# The claim's parameters and their types, for PREPARE (lib/prepared.py); label_0 ... label_n
# follow them.
_CLAIM_PARAMS = (
    ("lease", "timestamptz"),
    ("worker", "text"),
    ("now", "timestamptz"),
    ("recent", "timestamptz"),
)


@functools.cache
def _claim_statement(size: int) -> PreparedStatement:
    """The claim of `size` labels at once (a batch's); one statement per size, built and
    PREPAREd once per process (and session)."""
    # The tables' own names, quoted. Prepared: its plan (fourteen subqueries) cost
    # PostgreSQL more CPU to make than to run, once per label.
    quote = connection.ops.quote_name
    ids = [f"label_{n}" for n in range(size)]
    sql = _CLAIM_SQL.format(
        label=quote(Label._meta.db_table),
        item=quote(Item._meta.db_table),
        version=quote(LabelerVersion._meta.db_table),
        label_ids=", ".join(f"%({name})s" for name in ids),
        # Constants of the code, written into the statement: a prepared statement's plan is
        # made without its values, and with the status a value PostgreSQL could not use the
        # partial index of done labels (it read every label of the version instead).
        **{status.name.lower(): f"'{status.value}'" for status in Label.Status},
    )
    params = _CLAIM_PARAMS + tuple((name, "bigint") for name in ids)
    return PreparedStatement(f"labelers_label_claim{size}", sql, params)


def _claim(label_id: int) -> Label | None:
    """Claim the label and load it with its item and version (one statement), or None if
    it is not there to claim (taken, done, or not due yet). The Label carries `cached_id`
    and `in_flight_id` (its identical labels, or None)."""
    claimed = labels_claim([label_id])
    return claimed[0] if claimed else None


def labels_claim(label_ids: list[int]) -> list[Label]:
    """Claim these labels in one statement (a batch's: one round trip and one commit for
    all), each loaded as _claim loads it; those not there to claim are left out, the rest
    keep the order of `label_ids`. A batch then holds claims it is not working on yet: they
    carry its worker's name, so a worker killed with -9 gives them back with its running
    label (liveness.workers_dead), none of them paid for; a batch that gives up or runs out
    of time gives them back at once (labels_unclaim)."""
    label_ids = list(dict.fromkeys(label_ids))
    if not label_ids:
        return []
    now = timezone.now()
    lease = now + timedelta(seconds=settings.LABEL_LEASE_SECONDS)
    recent = now - timedelta(seconds=settings.LABEL_REMOTE_LATEST_CACHE_SECONDS)
    at = connection.ops.adapt_datetimefield_value
    values = {"lease": at(lease), "worker": WORKER_NAME, "now": at(now), "recent": at(recent)}
    values.update((f"label_{n}", label_id) for n, label_id in enumerate(label_ids))
    rows = _claim_statement(len(label_ids)).fetchall(values)
    order = {label_id: n for n, label_id in enumerate(label_ids)}
    labels = [_claimed(row) for row in sorted(rows, key=lambda row: order[row[0]])]
    mates = {label.pk for label in labels}
    for label in labels:
        label.batch_mates = mates  # type: ignore[attr-defined]
        if label.cached_id is None and label.in_flight_id is None and label.open_twin:  # type: ignore[attr-defined]
            label.cached_id, label.in_flight_id = _twins_now(label)  # type: ignore[attr-defined]
    return labels


def _claimed(row: tuple) -> Label:
    (pk, item_id, revision, version_id, attempts, model, content_hash) = row[:7]
    item_revision, source_id, text, image, image_type, video, video_type = row[7:14]
    labeler_id, criteria_text, remote_labeler_id, remote_version_id = row[14:18]
    label = Label(
        id=pk,
        item_id=item_id,
        revision=revision,
        labeler_version_id=version_id,
        status=Label.Status.RUNNING,
        attempts=attempts,
        model=model,
        content_hash=content_hash,
        worker=WORKER_NAME,
    )
    label.item = Item(
        id=item_id,
        revision=item_revision,
        source_id=source_id,
        content_text=text,
        content_image=image,
        content_image_type=image_type,
        content_video=video,
        content_video_type=video_type,
    )
    label.labeler_version = LabelerVersion(
        id=version_id,
        labeler_id=labeler_id,
        criteria_text=criteria_text,
        remote_labeler_id=remote_labeler_id,
        remote_version_id=remote_version_id,
    )
    label.cached_id, label.in_flight_id = row[18], row[19]  # type: ignore[attr-defined]
    label.open_twin = row[20]  # type: ignore[attr-defined]
    return label


def _twins_now(label: Label) -> tuple[int | None, int | None]:
    """(paid for, being paid for): the label's identical labels read again after its claim
    committed (see _CLAIM_SQL), as the claim statement reads them. Its own batch's labels
    are not being paid for: the batch works them one after the other, and an identical one
    later in it finds this one's answer (label_fetch_claimed looks again)."""
    now = timezone.now()
    identical = Label.objects.filter(
        content_hash=label.content_hash, labeler_version_id=label.labeler_version_id,
        model=label.model,
    ).exclude(pk=label.pk)  # fmt: skip
    version = label.labeler_version
    paid_for = identical.filter(status=Label.Status.DONE)
    if version.remote_labeler_id and version.remote_version_id in ("latest", ""):
        recent = now - timedelta(seconds=settings.LABEL_REMOTE_LATEST_CACHE_SECONDS)
        paid_for = paid_for.filter(labeled_at__gte=recent)
    in_flight = identical.filter(status=Label.Status.RUNNING, lease_expires_at__gt=now).exclude(
        pk__in=getattr(label, "batch_mates", ())
    )
    return (
        paid_for.values_list("pk", flat=True).first(),
        in_flight.values_list("pk", flat=True).first(),
    )


def label_fetch(*, label_id: int) -> Outcome:
    """Fetch one label and store what came of it."""
    if api_key_refused():
        # Do not hammer the API with a key it refused (or with no key at all).
        waiting = Label.objects.filter(
            pk=label_id, status__in=[Label.Status.PENDING, Label.Status.FAILED_TRANSIENT]
        ).update(
            status=Label.Status.WAITING_KEY,
            error="waiting for a valid API key (ZENTROPI_API_KEY)",
            lease_expires_at=None,
        )
        return Outcome("waiting_key" if waiting else "skipped")
    label = _claim(label_id)
    if label is None:
        return Outcome("skipped")
    return label_fetch_claimed(label)


def label_fetch_claimed(label: Label, *, done_before: list[Label] = ()) -> Outcome:  # type: ignore[assignment]
    """Fetch a label claimed by labels_claim and store what came of it. `done_before`: the
    labels of its batch worked before it; one identical to it has its answer by now."""
    try:
        if any(_identical(label, other) for other in done_before):
            label.cached_id, label.in_flight_id = _twins_now(label)  # type: ignore[attr-defined]
        return _fetch_claimed(label)
    except BaseException as exc:
        # The worker gives up on this label (a time limit, a cancelled or killed task, a
        # failure outside the call's own handling): give the claim back now, so the next sweep
        # sends it in seconds instead of leaving it running until its lease runs out.
        _release(label.pk, exc)
        raise


def _identical(label: Label, other: Label) -> bool:
    return (label.content_hash, label.labeler_version_id, label.model) == (
        other.content_hash,
        other.labeler_version_id,
        other.model,
    )


def labels_unclaim(labels: list[Label], *, resent: bool) -> int:
    """Give back the claims a batch holds on labels it has not started (its time is up, or
    it gave up): pending again, the claim not counted as an attempt. `resent`: the caller
    sends them again now; otherwise un-enqueued, the next sweep sends them as new work."""
    if not labels:
        return 0
    now = timezone.now()
    try:
        return _held(labels).update(
            status=Label.Status.PENDING,
            attempts=F("attempts") - 1,
            lease_expires_at=None,
            enqueued_at=now if resent else None,
        )
    except Exception:  # the database is gone too: the leases return them in time
        logger.warning("cannot give back %d claimed labels", len(labels), exc_info=True)
        return 0


def labels_keep(labels: list[Label]) -> set[int]:
    """Renew the leases of a batch's labels not started yet (one UPDATE); the ids still
    held by this batch (a label whose lease ran out may have gone to another attempt)."""
    if not labels:
        return set()
    held = _held(labels)
    lease = timezone.now() + timedelta(seconds=settings.LABEL_LEASE_SECONDS)
    with transaction.atomic():
        held.update(lease_expires_at=lease)
        return set(held.values_list("pk", flat=True))


def _held(labels: list[Label]):
    """The rows of these claimed labels still held by this batch's attempts (_mine's
    condition, for several)."""
    attempts = functools.reduce(
        operator.or_, (Q(pk=label.pk, attempts=label.attempts) for label in labels)
    )
    return Label.objects.filter(attempts, status=Label.Status.RUNNING)


def _release(label_id: int, exc: BaseException) -> None:
    try:
        Label.objects.filter(pk=label_id, status=Label.Status.RUNNING, worker=WORKER_NAME).update(
            status=Label.Status.FAILED_TRANSIENT,
            error=f"the worker gave up on it ({type(exc).__name__}); retrying",
            lease_expires_at=None,
            next_attempt_at=timezone.now(),
            enqueued_at=None,
        )
    except Exception:  # the database is gone too: the lease returns the label in time
        logger.warning("label %s: cannot release its claim", label_id, exc_info=True)


def _fetch_claimed(label: Label) -> Outcome:
    label_id = label.pk
    logs.bind(label_id=label_id, item_id=label.item_id, source_id=label.item.source_id)
    if label.revision != label.item.revision:
        # The product edited the item since this label was made: its content is gone from the
        # item, and the new revision has labels of its own. Nothing to pay for.
        _store(label, status=Label.Status.SUPERSEDED, error="the item was edited")
        return Outcome("superseded")
    if label.cached_id:  # type: ignore[attr-defined]
        cached = Label.objects.get(pk=label.cached_id)  # type: ignore[attr-defined]
        _finish(label, cached.label, cached.confidence, cached.compute_time, 0.0, cache_hit=True)
        return Outcome("cached")
    if label.in_flight_id:  # type: ignore[attr-defined]
        return _wait_for_identical(label, label.in_flight_id)  # type: ignore[attr-defined]
    try:
        # After the cache and the single flight: those need no call, so they go on while
        # the breaker holds calls back. Waiting for a slot can outlast the lease: renew it
        # while waiting, and give the label up (no call) if the sweep has meanwhile handed
        # it to another attempt.
        result = label_call(
            lambda: _build_request(label),
            keep=lambda: _renew_lease(label),
            keep_every=max(0.1, settings.LABEL_LEASE_SECONDS / 4),
        )
    except BreakerOpen as exc:
        return _pause(label, exc.wait)
    except SlotAbandoned:
        logger.info("label %s: lease lost while waiting for a call slot; not calling", label_id)
        return Outcome("skipped")
    except api.AuthenticationError as exc:
        record_refusal(settings.ZENTROPI_API_KEY)
        logger.error("label %s: API key refused; labeling paused until the key is fixed", label_id)
        _store(label, status=Label.Status.WAITING_KEY, error=str(exc))
        return Outcome("waiting_key")
    except api.PermanentLabelError as exc:
        logger.warning("label %s failed for good: %s", label_id, exc)
        with transaction.atomic():
            if _store(label, status=Label.Status.FAILED, error=str(exc)):
                item_refresh(item_id=label.item_id)
        return Outcome("failed")
    except api.TransientLabelError as exc:
        return _schedule_retry(label, exc, breaker_wait=exc.breaker_wait)
    except Exception as exc:
        # A bug or an outage of our own (database, storage): retry like a passing fault,
        # visibly, rather than leave the label running until its lease runs out. It says
        # nothing about the API, so the breaker does not count it.
        logger.exception("label %s: unexpected error", label_id)
        error = api.TransientLabelError(f"unexpected {type(exc).__name__}")
        return _schedule_retry(label, error, breaker_wait=0.0)

    _finish(label, result.label, result.confidence, result.compute_time, result.latency * 1000)
    return Outcome("done")


def _finish(label: Label, answer: str, confidence, compute_time, latency_ms, cache_hit=False):
    """Store an answer and refresh the item it changes, in one commit (labelers.verdict's
    answer_store: one statement for the commonest verdict)."""
    answer_store(
        store=_store_sql(
            label,
            status=Label.Status.DONE,
            label=answer,
            confidence=confidence,
            violation_score=api.violation_score(answer, confidence),
            compute_time=compute_time,
            latency_ms=latency_ms,
            cache_hit=cache_hit,
            labeled_at=timezone.now(),
            error="",
        ),
        item_id=label.item_id,
        answered=Answer(
            source_id=label.item.source_id,
            labeler_id=label.labeler_version.labeler_id,
            version_id=label.labeler_version_id,
            revision=label.revision,
            label=answer,
            confidence=confidence,
        ),
    )


def _mine(target: Label):
    """The row, only while this attempt still holds it: a worker whose lease ran out (and
    whose label another worker has since claimed or finished) must not write over it."""
    return Label.objects.filter(pk=target.pk, status=Label.Status.RUNNING, attempts=target.attempts)


def _store(target: Label, **fields) -> int:
    """Write what came of this attempt into its row, only while the attempt holds it
    (_mine's condition); returns 1, or 0 if another attempt has taken the row. Every outcome
    of a claimed label is stored here (or by _store_sql's statement)."""
    with connection.cursor() as cursor:
        cursor.execute(*_store_sql(target, **fields))
        return cursor.rowcount


def _store_sql(target: Label, **fields) -> tuple[str, list]:
    """_store's UPDATE, ending with its WHERE clause. Written out rather than _mine().update():
    compiling the ORM's UPDATE cost about as much CPU as the round trip, once per label. The
    values are plain (no expressions), prepared by their fields as the ORM would."""
    fields.setdefault("lease_expires_at", None)
    sql, prepares = _store_shape(tuple(fields))
    params = [
        prepare(value, connection) for prepare, value in zip(prepares, fields.values(), strict=True)
    ]
    return sql, [*params, target.pk, Label.Status.RUNNING, target.attempts]


@functools.cache
def _store_shape(names: tuple[str, ...]) -> tuple[str, tuple]:
    """The UPDATE for these fields and each field's value preparation; once per shape."""
    quote = connection.ops.quote_name
    fields = [Label._meta.get_field(name) for name in names]
    columns = ", ".join(f"{quote(field.column)} = %s" for field in fields)  # type: ignore[union-attr]
    sql = (
        f"UPDATE {quote(Label._meta.db_table)} SET {columns}"  # noqa: S608 (field names)
        " WHERE id = %s AND status = %s AND attempts = %s"
    )
    return sql, tuple(field.get_db_prep_save for field in fields)  # type: ignore[union-attr]


def _renew_lease(target: Label) -> bool:
    """Extend this attempt's lease; False if another attempt has taken the row."""
    lease = timedelta(seconds=settings.LABEL_LEASE_SECONDS)
    return bool(_mine(target).update(lease_expires_at=timezone.now() + lease))


def _wait_for_identical(label: Label, in_flight_id: int) -> Outcome:
    """Give the claim back and look again shortly: by then the identical label is done and
    this one is served from it, or it failed and this one calls itself. Waiting is not a
    failed attempt. Two labels claimed at the same instant both wait; the jitter lets one of
    them go first next time."""
    delay = WAIT_FOR_IDENTICAL_SECONDS * (1 + random.random() / 2)
    when = timezone.now() + timedelta(seconds=delay)
    stored = _store(
        label,
        status=Label.Status.PENDING,
        attempts=label.attempts - 1,
        error=f"waiting for identical content being labeled (label {in_flight_id})",
        next_attempt_at=when,
        enqueued_at=when,
    )
    return Outcome("waiting", retry_in=delay if stored else None)


def _pause(label: Label, wait: float) -> Outcome:
    """The breaker is open: give the claim back, not counted as an attempt, and leave the
    label to the sweep once the breaker lets calls through again. Spread over a few seconds
    so that a backlog does not come back at one instant."""
    when = timezone.now() + timedelta(seconds=wait + random.random() * min(10.0, wait))
    _store(
        label,
        status=Label.Status.FAILED_TRANSIENT,
        attempts=label.attempts - 1,
        error=f"the labeling API is failing: paused until {when:%H:%M:%S} UTC",
        next_attempt_at=when,
        enqueued_at=None,
    )
    return Outcome("paused")


# How many labels the breaker's opening pauses at once, and in how many steps of its spread.
PAUSE_SENT_LIMIT = 10_000
PAUSE_SENT_STEPS = 5


def _pause_sent(*, wait: float, now) -> int:
    """The breaker holds calls back for `wait` seconds: pause at once the labels whose message
    is already out and that would come due before then (retries sent a moment ago, the rest
    of the sweep's batch), a few UPDATEs in all, spread as _pause spreads. Their messages then
    find nothing to claim and cost a worker one UPDATE each, instead of a claim, a read and a
    release: a backlog is not worked through one pause at a time while the cool-down runs
    out (when it ran out first, a label queued before the breaker opened went out as the
    probe). The sweep sends them again once they are due, as it does a label _pause gave
    back. Not counted as attempts; labels a worker holds (running) are left to it."""
    until = now + timedelta(seconds=wait)
    due = Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=until)
    sent = Label.objects.filter(
        due,
        status__in=[Label.Status.PENDING, Label.Status.FAILED_TRANSIENT],
        enqueued_at__isnull=False,
    )
    try:
        with transaction.atomic():  # a failure here leaves a caller's transaction usable
            ids = list(sent.order_by("id").values_list("id", flat=True)[:PAUSE_SENT_LIMIT])
            paused = 0
            spread = min(10.0, wait)
            for step in range(PAUSE_SENT_STEPS):
                when = until + timedelta(
                    seconds=spread * (step + random.random()) / PAUSE_SENT_STEPS
                )
                paused += sent.filter(pk__in=ids[step::PAUSE_SENT_STEPS]).update(
                    status=Label.Status.FAILED_TRANSIENT,
                    error=f"the labeling API is failing: paused until {when:%H:%M:%S} UTC",
                    next_attempt_at=when,
                    enqueued_at=None,
                    lease_expires_at=None,
                )
    except Exception:  # bookkeeping only: each message still pauses its own label
        logger.warning("cannot pause the labels sent before the breaker opened", exc_info=True)
        return 0
    if paused:
        logger.info(
            "breaker open: %d labels already sent are paused until it lets calls by", paused
        )
    return paused


def _give_up(label: Label, exc: api.TransientLabelError, *, now) -> bool:
    """A label that keeps failing while the API answers other calls fails for good after
    LABEL_GIVE_UP_ATTEMPTS tries or LABEL_GIVE_UP_HOURS, and goes to a person as "labeling
    failed": an item the API always answers 5xx for is not retried forever, unseen. A 429
    says the API is busy, not that this item is bad, and never ends the retries."""
    if exc.status == 429:
        return False
    too_many = 0 < settings.LABEL_GIVE_UP_ATTEMPTS <= label.attempts
    hours = settings.LABEL_GIVE_UP_HOURS
    if too_many or hours <= 0:
        return too_many
    # Read here, on a failure, rather than with every claim.
    created_at = Label.objects.filter(pk=label.pk).values_list("created_at", flat=True).get()
    return now - created_at >= timedelta(hours=hours)


def _schedule_retry(label: Label, exc: api.TransientLabelError, *, breaker_wait: float) -> Outcome:
    """Retry a passing fault with capped backoff for as long as the API answers most calls;
    once the breaker says the API as a whole is failing, wait for it instead (visibly)."""
    attempts = label.attempts  # already counts this attempt
    now = timezone.now()
    if breaker_wait > 0:
        when = now + timedelta(seconds=breaker_wait + random.random() * min(10.0, breaker_wait))
        _store(
            label,
            status=Label.Status.FAILED_TRANSIENT,
            error=f"{exc}; the labeling API is failing: paused until {when:%H:%M:%S} UTC",
            next_attempt_at=when,
            enqueued_at=None,
        )
        _pause_sent(wait=breaker_wait, now=now)
        return Outcome("failed_transient")
    if _give_up(label, exc, now=now):
        logger.warning("label %s failed for good after %d tries: %s", label.pk, attempts, exc)
        with transaction.atomic():
            if _store(
                label, status=Label.Status.FAILED, error=f"{exc}; gave up after {attempts} tries"
            ):
                item_refresh(item_id=label.item_id)
        return Outcome("failed")
    delay = backoff_seconds(attempts, exc.retry_after)
    when = now + timedelta(seconds=delay)
    if delay > MAX_COUNTDOWN_SECONDS:
        # Too long to hold as a countdown: the sweep sends it when it is due.
        _store(
            label,
            status=Label.Status.PENDING,
            error=str(exc),
            next_attempt_at=when,
            enqueued_at=None,
        )
        return Outcome("retry")
    stored = _store(
        label, status=Label.Status.PENDING, error=str(exc), next_attempt_at=when, enqueued_at=when
    )
    return Outcome("retry", retry_in=delay if stored else None)
