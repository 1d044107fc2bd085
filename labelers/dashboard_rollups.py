"""The dashboard's activity figures per source and closed UTC day (DashboardRollup), so the
dashboard reads O(days × sources) rows, not O(items).

How they stay exact (the same scheme as the quality page's, labelers/quality/rollups.py):
- A day is counted once it is over (plus a grace for late commits), by a beat task
  (dashboard_rollups_refresh) that reads only that day's rows through the range indexes
  the dashboard already used (received_at, labeled_at of done labels, flagged_at,
  decisions' created_at). Today is counted by the same task up to a moment ago (`through`,
  the grace before its run) into a partial row, recounted on each run: the page counts
  live only the rows stored after it (minutes of rows, whatever the volume), and any day
  of the window not counted yet.
- What the figures count is fixed once the day is over, with one exception: an edit clears
  its item's flag (flagged_at), taking it out of the day it was flagged on. The edit writes a
  ChangedFlaggedDay row in its transaction (moderation/services/figures.py); until the task
  has recounted that day, the dashboard counts it live (never stale, only slower).
  Everything else is append-only: items keep received_at, done labels stay done with their
  labeled_at, decisions are never changed or deleted (an undo is a decision of its own,
  never counted here), reviewers with decisions cannot be deleted (PROTECT).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from django.db import transaction
from django.db.models import Count, IntegerField, Min, Value
from django.db.models.functions import TruncDate
from django.utils import timezone

from labelers.models import DashboardRollup, Label
from lib.batch import read_together
from lib.days import day_chunks, day_start, days_from
from moderation.models import ChangedFlaggedDay, Decision, Item, Source

COMMIT_GRACE = timedelta(minutes=15)
DAYS_PER_STATEMENT = 7
CHANGED_DAYS_PER_RUN = 10_000
FIGURES = ("received", "labeled", "flagged", "decided_by_people", "decided_automatically")


@dataclass
class DayFigures:
    received: int = 0
    labeled: int = 0
    flagged: int = 0
    decided_by_people: int = 0
    decided_automatically: int = 0
    # reviewer id -> people's decisions
    reviewers: Counter[int] = field(default_factory=Counter)

    def add(self, other: DayFigures) -> None:
        for name in FIGURES:
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.reviewers.update(other.reviewers)

    @property
    def flag_rate(self) -> float | None:
        """Items flagged that day per item received that day (None: none received)."""
        return self.flagged / self.received if self.received else None


def _day(field_name: str) -> TruncDate:
    return TruncDate(field_name, tzinfo=UTC)


# (day, source id) -> figures; source None: labels counted live, whose source is not read
# (the charts do not show labels, and the join would cost today's labels' items).
Figures = dict[tuple[date, int | None], DayFigures]


def counted_from_rows(start: datetime, end: datetime, *, label_sources: bool) -> Figures:
    """The figures of [start, end) from the rows themselves, by UTC day and source: four
    grouped statements, each one range of an index the dashboard already used."""
    found: Figures = {}

    def at(day: date, source_id: int | None) -> DayFigures:
        return found.setdefault((day, source_id), DayFigures())

    received = (
        Item.objects.filter(received_at__gte=start, received_at__lt=end)
        .annotate(day=_day("received_at"))
        .values_list("day", "source_id")
        .annotate(n=Count("pk"))
        .order_by()
    )
    flagged = (
        Item.objects.filter(flagged_at__gte=start, flagged_at__lt=end)
        .annotate(day=_day("flagged_at"))
        .values_list("day", "source_id")
        .annotate(n=Count("pk"))
        .order_by()
    )
    labels = Label.objects.filter(
        status=Label.Status.DONE, labeled_at__gte=start, labeled_at__lt=end
    ).annotate(day=_day("labeled_at"))
    labeled = (
        labels.values_list("day", "item__source_id").annotate(n=Count("pk")).order_by()
        if label_sources
        else labels.values_list("day")
        .annotate(source_id=Value(None, output_field=IntegerField()), n=Count("pk"))
        .order_by()
    )
    decisions = (
        Decision.objects.filter(created_at__gte=start, created_at__lt=end)
        .exclude(action=Decision.Action.UNDO)
        .annotate(day=_day("created_at"))
        .values_list("day", "item__source_id", "reviewer_id")
        .annotate(n=Count("pk"))
        .order_by()
    )
    # One round trip (lib/batch.py): each a range of its index, a few rows each.
    received_rows, flagged_rows, labeled_rows, decision_rows = read_together(
        received, flagged, labeled, decisions
    )
    for day, source_id, n in received_rows:
        at(day, source_id).received += n
    for day, source_id, n in flagged_rows:
        at(day, source_id).flagged += n
    for day, source_id, n in labeled_rows:
        at(day, source_id).labeled += n
    for day, source_id, reviewer_id, n in decision_rows:
        figures = at(day, source_id)
        if reviewer_id is None:
            figures.decided_automatically += n
        else:
            figures.decided_by_people += n
            figures.reviewers[reviewer_id] += n
    return found


def daily_figures(first_day: date, *, now: datetime | None = None) -> Figures:
    """The figures of every UTC day from `first_day` to today (today's until now): counted
    days from their rollups, today's counted part from its partial rollup, and the rest
    (today since the task last ran, days not counted or changed since) from their rows.
    Two reads of O(days × sources) rows, plus four grouped counts per live run (one, of the
    minutes since the task last counted today, in the steady state)."""
    now = now or timezone.now()
    today = now.astimezone(UTC).date()
    # Read first: a change committed after this read is newer than the rows read below (a
    # batch's statements run in turn, in this order).
    stale_days, rows = read_together(
        ChangedFlaggedDay.objects.filter(day__gte=first_day, day__lte=today)
        .values_list("day", flat=True)
        .distinct(),
        DashboardRollup.objects.filter(day__gte=first_day, day__lte=today).values_list(
            "day", "through", "source_id", *FIGURES, "reviewers"
        ),
    )
    stale = set(stale_days)
    by_day: dict[date, list] = {}
    for row in rows:
        if row[0] not in stale:
            by_day.setdefault(row[0], []).append(row)
    found: Figures = {}
    # Where each day's counted part ends (the next midnight for a whole day).
    counted_until: dict[date, datetime] = {}
    for day, day_rows in by_day.items():
        throughs = {through for _, through, *_ in day_rows}
        if len(throughs) != 1:
            continue  # not counted in one statement: count the day from its rows
        (through,) = throughs
        counted_until[day] = through or day_start(day + timedelta(days=1))
        for _, _, source_id, *figures, reviewers in day_rows:
            found[(day, source_id)] = DayFigures(
                **dict(zip(FIGURES, figures, strict=True)),
                reviewers=Counter({int(k): v for k, v in reviewers.items()}),
            )
    live: list[tuple[datetime, datetime]] = []
    for n in range((today - first_day).days + 1):
        day = first_day + timedelta(days=n)
        start = counted_until.get(day, day_start(day))
        end = day_start(day + timedelta(days=1))
        if start >= end:
            continue
        if live and live[-1][1] == start:
            live[-1] = (live[-1][0], end)
        else:
            live.append((start, end))
    for start, end in live:
        for key, figures in counted_from_rows(start, end, label_sources=False).items():
            found.setdefault(key, DayFigures()).add(figures)
    return found


def dashboard_rollups_refresh(*, now: datetime | None = None) -> int:
    """Count every closed day not counted yet, recount the days whose flags an edit changed
    since, each from that day's rows only; then today up to a moment ago (a partial row,
    recounted each run: the page counts only what came after it). Returns how many closed
    days were counted. Idempotent; the beat runs it every few minutes."""
    now = now or timezone.now()
    # Rows stored before `through` have surely committed: a row stored at 23:59:59 may
    # commit a moment after midnight.
    through = now - COMMIT_GRACE
    today = through.astimezone(UTC).date()
    changes = list(
        ChangedFlaggedDay.objects.order_by("id").values_list("id", "day")[:CHANGED_DAYS_PER_RUN]
    )
    first = Item.objects.aggregate(first=Min("received_at"))["first"]
    counted = 0
    if first is not None:
        first_day = first.astimezone(UTC).date()
        whole = set(
            DashboardRollup.objects.filter(day__gte=first_day, through__isnull=True)
            .values_list("day", flat=True)
            .distinct()
        )
        due = days_from(first_day, today) - whole
        due |= {day for _, day in changes if day < today}
        for start, stop in day_chunks(due, DAYS_PER_STATEMENT):
            counted += _count_days(start, stop)
        if first_day <= today:
            _count_days(today, today + timedelta(days=1), through=through)
    # Today's changes are in the partial count just made (read after them).
    ChangedFlaggedDay.objects.filter(id__in=[pk for pk, _ in changes]).delete()
    return counted


def _count_days(start: date, stop: date, *, through: datetime | None = None) -> int:
    """Count the days [start, stop) (or, `through`, the one day `start` until then): a row
    per source and day, zeros included (a day with rows is a counted day)."""
    end = through or day_start(stop)
    found = counted_from_rows(day_start(start), end, label_sources=True)
    sources = set(Source.objects.values_list("pk", flat=True))
    days = [start + timedelta(days=n) for n in range((stop - start).days)]
    rows = []
    for day in days:
        for source_id in sorted(sources):
            figures = found.get((day, source_id), DayFigures())
            rows.append(
                DashboardRollup(
                    day=day,
                    through=through,
                    source_id=source_id,
                    **{name: getattr(figures, name) for name in FIGURES},
                    reviewers={str(k): v for k, v in sorted(figures.reviewers.items())},
                    computed_at=timezone.now(),
                )
            )
    with transaction.atomic():
        DashboardRollup.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["day", "source"],
            update_fields=["through", *FIGURES, "reviewers", "computed_at"],
        )
    return len(days)
