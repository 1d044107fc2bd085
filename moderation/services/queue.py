"""The review queue's sort key and score, and the review SLA that moves past-SLA items ahead."""

from __future__ import annotations

from datetime import timedelta
from itertools import product

from django.db.models import Case, F, FloatField, Value, When
from django.utils import timezone

from moderation.models import (
    AUDIT_QUEUE_SCORE,
    IN_QUEUE,
    QUEUE_BANDS,
    REVIEWABLE,
    Item,
    Queue,
    Source,
    queue_key,
)


def queue_score_for(
    *, status: str, violation_score: float | None, report_score: float | None = None
) -> float | None:
    """The review queue's sort score of an item in `status`: its violation score while
    flagged or escalated; 1.0 when no labeler could judge it, so it sits with the most likely
    violations; none outside the queue. An item with open reports waits at the higher of
    that and its report score (a reported item that no labeler flagged: its report score)."""
    score = _status_score(status=status, violation_score=violation_score)
    if report_score is None or status not in REVIEWABLE:
        return score
    return max(score or 0.0, report_score)


def _status_score(*, status: str, violation_score: float | None) -> float | None:
    if status in (Item.Status.FAILED, Item.Status.UNROUTED):
        return 1.0
    if status == Item.Status.AUDIT:
        return AUDIT_QUEUE_SCORE
    if status in (Item.Status.FLAGGED, Item.Status.ESCALATED, Item.Status.REREVIEW):
        return violation_score if violation_score is not None else 1.0
    if status == Item.Status.REPORTED:
        return violation_score
    return None


def _sql_in(expression: str, values) -> str:
    # Status names are the model's own constants, never input.
    return f"{expression} IN ({', '.join(repr(str(value)) for value in values)})"


def queue_score_sql(*, status: str, violation_score: str, report_score: str) -> str:
    """queue_score_for as a PostgreSQL expression over these SQL expressions, for the
    report intake's one statement (moderation/services/reports.py); report_score never NULL.
    Built from the same constants; moderation/tests/test_reports_sql.py holds the two equal."""
    judged = (Item.Status.FLAGGED, Item.Status.ESCALATED, Item.Status.REREVIEW)
    status_score = (
        f"CASE WHEN {_sql_in(status, (Item.Status.FAILED, Item.Status.UNROUTED))} THEN 1.0"
        f" WHEN {status} = '{Item.Status.AUDIT}' THEN {float(AUDIT_QUEUE_SCORE)!r}"
        f" WHEN {_sql_in(status, judged)}"
        f" THEN COALESCE({violation_score}, 1.0)"
        f" WHEN {status} = '{Item.Status.REPORTED}' THEN {violation_score} END"
    )
    return (
        f"(CASE WHEN {_sql_in(status, REVIEWABLE)}"
        f" THEN GREATEST(COALESCE({status_score}, 0.0), {report_score})"
        f" ELSE {status_score} END)::float8"
    )


def queue_key_sql(*, score: str, breached: str) -> str:
    """models.queue_key as a PostgreSQL expression (the band as queue_band rounds it)."""
    band = f"LEAST({QUEUE_BANDS - 1}, trunc(round(({score} * {QUEUE_BANDS})::numeric, 9)))"
    return f"(-(4.0 * {band} + CASE WHEN {breached} THEN 2.0 ELSE 0.0 END + {score}))::float8"


def queue_key_expression(score: float | None):
    """The queue key for `score` as an UPDATE expression: the row's own SLA flag decides."""
    if score is None:
        return Value(None, output_field=FloatField())
    return Case(
        When(sla_breached=True, then=Value(queue_key(score, breached=True))),
        default=Value(queue_key(score, breached=False)),
        output_field=FloatField(),
    )


def queue_key_sync(item: Item) -> None:
    """Whatever a write did to queue_score, the sort key follows (call before save)."""
    item.queue_key = queue_key(item.queue_score, breached=item.sla_breached)


ESCALATED = Item.Status.ESCALATED

# A breach moves an item ahead of the unbreached items of its score band: exactly this
# much on the key (see models.queue_key).
_BREACH_SHIFT = 2.0


def items_sla_refresh(*, now=None) -> int:
    """Mark the waiting items that crossed their source's review SLA since the last run (the
    queue shows them first within their score band), and unmark those no longer past it (an
    admin lengthened or removed the SLA). Returns how many items changed.

    An item's wait starts when its current content arrived (waiting_since; an edit restarts
    it). Each UPDATE is one range of the index on (source, sla_breached, waiting_since), so
    a run costs the items that change, not the queue's length; beat runs it every minute.
    """
    now = now or timezone.now()
    changed = 0
    sources = Source.objects.values_list("id", "review_sla_minutes")
    # A team queue with an SLA of its own holds its items to it (item_queue_sla_idx), not to
    # their sources' SLAs.
    own_sla = dict(
        Queue.objects.filter(sla_minutes__isnull=False, is_default=False).values_list(
            "id", "sla_minutes"
        )
    )
    for queue_id, sla_minutes in own_sla.items():
        waiting = Item.objects.filter(queue_id=queue_id, status__in=IN_QUEUE)
        changed += _sla_mark(waiting, now - timedelta(minutes=sla_minutes))
    # The queue's statuses match the index's condition; escalated items are few.
    for (source_id, sla_minutes), statuses in product(sources, (IN_QUEUE, (ESCALATED,))):
        waiting = Item.objects.filter(source_id=source_id, status__in=statuses)
        if own_sla and statuses == IN_QUEUE:
            waiting = waiting.exclude(queue_id__in=list(own_sla))
        if sla_minutes:
            cutoff = now - timedelta(minutes=sla_minutes)
            crossed = waiting.filter(sla_breached=False, waiting_since__lt=cutoff)
            back = waiting.filter(sla_breached=True, waiting_since__gte=cutoff)
            changed += crossed.update(sla_breached=True, queue_key=F("queue_key") - _BREACH_SHIFT)
        else:
            back = waiting.filter(sla_breached=True)
        changed += back.update(sla_breached=False, queue_key=F("queue_key") + _BREACH_SHIFT)
    return changed


def _sla_mark(waiting, cutoff) -> int:
    crossed = waiting.filter(sla_breached=False, waiting_since__lt=cutoff)
    back = waiting.filter(sla_breached=True, waiting_since__gte=cutoff)
    return crossed.update(
        sla_breached=True, queue_key=F("queue_key") - _BREACH_SHIFT
    ) + back.update(sla_breached=False, queue_key=F("queue_key") + _BREACH_SHIFT)
