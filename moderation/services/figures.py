"""Figures kept per day are counted once a day is over; a change to what they count after
that makes days stale. This is the one door through which moderation says so, in the
caller's transaction (a rolled-back decision leaves nothing stale):

- ChangedItem: an item whose decisions or flag changed; the labelers' quality counts
  (labelers/quality/rollups.py) recount the days its labels were given.
- ChangedDecidedDay: the day an item counted as decided on, when it is decided again, sent
  for re-review or edited; its DecidedRollup is recounted (decided_rollups_refresh).
- ChangedFlaggedDay: the day an item was flagged on, when an edit clears its flag; the
  dashboard's DashboardRollup of that day is recounted (labelers/dashboard_rollups.py).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from django.db import transaction
from django.db.models import Count, JSONField, Min, OuterRef, Q, Subquery
from django.db.models.functions import TruncDate
from django.utils import timezone

from lib.days import day_chunks, day_start, days_from
from moderation.models import (
    IN_QUEUE,
    ChangedDecidedDay,
    ChangedFlaggedDay,
    ChangedItem,
    DecidedRollup,
    Decision,
    Item,
    QueueSnapshot,
    Source,
)

# A day is counted once everything stored in it has surely committed.
COMMIT_GRACE = timedelta(minutes=15)
DAYS_PER_STATEMENT = 7


def item_figures_changed(
    *, item_id: int, decided_at: datetime | None = None, unflagged: datetime | None = None
) -> None:
    """`decided_at`: when the item counted as decided before this change, if it did;
    `unflagged`: when it had been flagged, if this change clears its flag."""
    ChangedItem.objects.create(item_id=item_id)
    if decided_at is not None:
        ChangedDecidedDay.objects.create(day=decided_at.astimezone(UTC).date())
    if unflagged is not None:
        ChangedFlaggedDay.objects.create(day=unflagged.astimezone(UTC).date())


def current_versions() -> Subquery:
    """The labeler versions of the item's current decision: its latest that is neither an
    undo nor undone (selectors.decided_under_older_versions' reading, in SQL)."""
    return Subquery(
        Decision.objects.filter(item_id=OuterRef("pk"), undone_by__isnull=True)
        .exclude(action=Decision.Action.UNDO)
        .order_by("-id")
        .values("labeler_versions")[:1],
        output_field=JSONField(),
    )


def decided_counts(items) -> dict[date | None, list[list]]:
    """Decided items of `items` by the day they were decided: [[source, versions, n], ...]."""
    rows = (
        items.filter(status=Item.Status.DECIDED)
        .annotate(day=TruncDate("decided_at"), versions=current_versions())
        .values("day", "source_id", "versions")
        .annotate(n=Count("id"))
        .order_by()
    )
    found: dict[date | None, dict[tuple, int]] = {}
    for row in rows:
        key = (row["source_id"], tuple(sorted(row["versions"] or [])))
        by_key = found.setdefault(row["day"], {})
        by_key[key] = by_key.get(key, 0) + row["n"]
    return {
        day: [[source, list(versions), n] for (source, versions), n in sorted(by_key.items())]
        for day, by_key in found.items()
    }


def decided_rollups_refresh(*, now: datetime | None = None) -> int:
    """Count every closed day of decisions not counted yet, and recount the days marked
    changed since; each from that day's decided items only (the decided_at index)."""
    now = now or timezone.now()
    today = (now - COMMIT_GRACE).astimezone(UTC).date()
    changes = list(ChangedDecidedDay.objects.order_by("id").values_list("id", "day")[:10_000])
    first = (
        Item.objects.filter(status=Item.Status.DECIDED, decided_at__isnull=False)
        .order_by("decided_at")
        .values_list("decided_at", flat=True)
        .first()
    )
    counted = 0
    if first is not None:
        stored = set(DecidedRollup.objects.values_list("day", flat=True))
        first_day = first.astimezone(UTC).date()
        due = days_from(first_day, today) - stored
        due |= {day for _, day in changes if day < today}
        for start, stop in day_chunks(due, DAYS_PER_STATEMENT):
            counted += _count_days(start, stop)
    ChangedDecidedDay.objects.filter(id__in=[pk for pk, _ in changes]).delete()
    return counted


def _count_days(start: date, stop: date) -> int:
    """Count the days [start, stop) in one statement over their range."""
    found = decided_counts(
        Item.objects.filter(decided_at__gte=day_start(start), decided_at__lt=day_start(stop))
    )
    days = [start + timedelta(days=n) for n in range((stop - start).days)]
    rows = [
        DecidedRollup(day=day, counts=found.get(day, []), computed_at=timezone.now())
        for day in days
    ]
    with transaction.atomic():
        DecidedRollup.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["day"],
            update_fields=["counts", "computed_at"],
        )
    return len(rows)


def queue_snapshot_take(*, now: datetime | None = None) -> int:
    """The queue of every source as it stands (waiting, past the SLA, the oldest one's wait),
    stored as this hour's snapshot: what the dashboard's charts of queue depth and oldest
    wait read for past days. One grouped count over the queue's items; run hourly by beat
    (again within the hour: the newer figures win). Returns how many sources it saw."""
    now = now or timezone.now()
    hour = now.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    found = {
        row["source_id"]: row
        for row in Item.objects.filter(status__in=IN_QUEUE)
        .values("source_id")
        .annotate(
            waiting=Count("pk"),
            past_sla=Count("pk", filter=Q(sla_breached=True)),
            oldest=Min("waiting_since"),
        )
        .order_by()
    }
    rows = []
    for source_id in Source.objects.order_by("pk").values_list("pk", flat=True):
        row = found.get(source_id, {})
        oldest = row.get("oldest")
        rows.append(
            QueueSnapshot(
                hour=hour,
                source_id=source_id,
                waiting=row.get("waiting", 0),
                past_sla=row.get("past_sla", 0),
                oldest_wait=None if oldest is None else max(0, int((now - oldest).total_seconds())),
                taken_at=now,
            )
        )
    QueueSnapshot.objects.bulk_create(
        rows,
        update_conflicts=True,
        unique_fields=["hour", "source"],
        update_fields=["waiting", "past_sla", "oldest_wait", "taken_at"],
    )
    return len(rows)
