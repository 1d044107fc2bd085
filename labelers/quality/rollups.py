"""A version's quality counts per closed UTC day (QualityRollup), so the quality page reads
O(days) rows, not O(labels).

How it stays exact without touching the label path:
- A day is counted once it is over, by a beat task (quality_rollups_refresh) that reads
  only that day's labels (the labeled_at index). Today, still open, is counted live from
  its own rows, as is a window's partial first day.
- A label's counts depend on things that change after its day: its item's effective
  decision (a decision, an undo, a re-review, an appeal overturned) and whether its item is
  flagged (flagged, or unflagged by an edit). Where moderation makes those changes it writes
  a ChangedItem row (moderation/services/figures.py). The task recounts the days those
  items' labels were given and deletes the rows it handled; until it has, the page counts
  those days live (so a figure is never stale, only slower for a moment).
- Flags are counted at the labeler's minimum confidence; a row counted at another one is
  not used (counted live) and the task recounts it.
- Labels not done (pending, failures) carry no day: they are always counted live (few,
  through the status index).
"""

from __future__ import annotations

from collections.abc import Generator
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache

from django.db import transaction
from django.db.models import (
    BooleanField,
    Case,
    CharField,
    Count,
    Exists,
    F,
    FloatField,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Concat, Floor, TruncDate
from django.utils import timezone

from labelers.models import Label, LabelerVersion, QualityRollup
from labelers.quality.figures import HUMAN_LABEL, DayCounts
from lib.batch import read_together
from lib.days import day_chunks, day_runs, day_start, days_from
from moderation.models import ChangedItem, Decision

# Days counted per statement when the task catches up (a first run over months of labels).
DAYS_PER_STATEMENT = 7
# Changed items handled per run: a bounded read; the rest wait for the next run.
CHANGED_ITEMS_PER_RUN = 10_000
COMMIT_GRACE = timedelta(minutes=15)
NOT_DONE = [status for status in Label.Status.values if status != Label.Status.DONE]


def _effective_decision() -> Subquery:
    """The label's item revision's effective decision as "action:status_before": the latest
    by people that is not an undo and was not undone by one (figures.effective_decisions,
    in SQL)."""
    people = Decision.objects.filter(reviewer__isnull=False)
    undone = people.filter(undoes_id=OuterRef("pk"))
    return Subquery(
        people.filter(item_id=OuterRef("item_id"), revision=OuterRef("revision"))
        .exclude(action=Decision.Action.UNDO)
        .filter(~Exists(undone))
        .order_by("-created_at", "-id")
        .annotate(found=Concat("action", Value(":"), "status_before", output_field=CharField()))
        .values("found")[:1]
    )


def done_counts(labels: QuerySet, *, min_confidence: float | None) -> dict[date, DayCounts]:
    """The done labels of `labels`, counted by the UTC day they were answered: two grouped
    statements (the labels with their decision; the latencies), read together."""
    return _done_counts(*read_together(*_done_count_queries(labels, min_confidence)))


@lru_cache(maxsize=16)
def _done_count_templates(min_confidence: float | None) -> tuple[QuerySet, QuerySet]:
    """_done_count_queries over every label, built once per process and minimum confidence:
    a page filters them to its windows (built anew, the two cost ~1.7 ms of CPU a window)."""
    return _done_count_queries(Label.objects.all(), min_confidence)


def _done_count_queries(
    labels: QuerySet, min_confidence: float | None
) -> tuple[QuerySet, QuerySet]:
    flag = Q(label="1")
    if min_confidence is not None:
        flag &= Q(confidence_or_0__gte=min_confidence)  # flags(): None counts as 0.0
    done = labels.filter(status=Label.Status.DONE).annotate(
        day=TruncDate("labeled_at"), confidence_or_0=Coalesce(F("confidence"), Value(0.0))
    )
    groups = (
        done.annotate(
            flag=Case(
                When(flag, then=Value(True)), default=Value(False), output_field=BooleanField()
            ),
            one=Case(
                When(label="1", then=F("confidence_or_0")), default=None, output_field=FloatField()
            ),
            item_flagged=Case(
                When(item__flagged_at__isnull=False, then=Value(True)),
                default=Value(False),
                output_field=BooleanField(),
            ),
            effective=_effective_decision(),
        )
        .values("day", "flag", "one", "item_flagged", "effective", "cache_hit")
        .annotate(n=Count("id"), attempts=Coalesce(Sum("attempts"), 0))
        .order_by()
    )
    latencies = (
        done.filter(cache_hit=False, latency_ms__isnull=False)
        .annotate(ms=Floor("latency_ms"))
        .values("day", "ms")
        .annotate(n=Count("id"))
        .order_by()
    )
    return groups, latencies


def _done_counts(groups: list[dict], latencies: list[dict]) -> dict[date, DayCounts]:
    days: dict[date, DayCounts] = {}
    for group in groups:
        counts = days.get(group["day"])
        if counts is None:  # not setdefault: five Counters made per group
            counts = days[group["day"]] = DayCounts()
        n = group["n"]
        action, _, status_before = (group["effective"] or "").partition(":")
        decided = action if action in HUMAN_LABEL else None
        audit = decided is not None and status_before == "audit"
        counts.cells[(bool(group["flag"]), bool(group["item_flagged"]), decided, audit)] += n
        if group["cache_hit"]:
            counts.cache_hits += n
        else:
            counts.calls += group["attempts"]
        if group["one"] is not None:
            counts.ones[group["one"]] += n
            if decided is not None:
                counts.decided_ones[(group["one"], decided == Decision.Action.REMOVE)] += n
    for group in latencies:
        counts = days.get(group["day"])
        if counts is None:
            counts = days[group["day"]] = DayCounts()
        counts.latencies[int(group["ms"])] += group["n"]
    return days


def open_counts(labels: QuerySet) -> DayCounts:
    """Labels not done (waiting, failed, superseded): their failures, calls, cache hits."""
    return _open_counts(list(_open_counts_query(labels)))


def _open_counts_query(labels: QuerySet) -> QuerySet:
    return (
        # Listed, not "not done": a range of the status index each.
        labels.filter(status__in=NOT_DONE)
        .values("status", "cache_hit")
        .annotate(n=Count("id"), attempts=Coalesce(Sum("attempts"), 0))
        .order_by()
    )


def _open_counts(groups: list[dict]) -> DayCounts:
    counts = DayCounts()
    for group in groups:
        counts.failures[group["status"]] += group["n"]
        if group["cache_hit"]:
            counts.cache_hits += group["n"]
        else:
            counts.calls += group["attempts"]
    return counts


def _changed_days(version_id: int, item_ids: list[int], *, before: datetime | None) -> set[date]:
    """Days (before `before`; None: today too) on which the version labeled one of the
    changed items."""
    return set(_changed_days_query(version_id, item_ids, before=before))


def _changed_days_query(
    version_id: int, item_ids: list[int], *, before: datetime | None
) -> QuerySet:
    labels = Label.objects.filter(
        labeler_version_id=version_id, status=Label.Status.DONE, item_id__in=item_ids
    )
    if before is not None:
        labels = labels.filter(labeled_at__lt=before)
    # No changed items: no SQL at all (read_together skips an empty IN).
    return labels.annotate(day=TruncDate("labeled_at")).values_list("day", flat=True).distinct()


Counts = tuple[dict[date, DayCounts], DayCounts]
# A reading in steps: it yields the querysets it needs next and is sent their rows.
Steps = Generator[list[QuerySet], list[list], Counts]


def read_in_steps(readings: list[Steps]) -> list[Counts]:
    """Several readings in steps (version_counts_steps), each step of all of them read in one
    round trip (lib/batch.py): a page with two versions makes two round trips, not four."""
    results: list[Counts | None] = [None] * len(readings)
    wanted = {n: next(reading) for n, reading in enumerate(readings)}
    while wanted:
        rows = read_together(*(qs for querysets in wanted.values() for qs in querysets))
        asked, wanted = wanted, {}
        for n, querysets in asked.items():
            mine, rows = rows[: len(querysets)], rows[len(querysets) :]
            try:
                wanted[n] = readings[n].send(mine)
            except StopIteration as done:
                results[n] = done.value
    return [result for result in results if result is not None]


def version_counts_steps(
    version_id: int,
    *,
    min_confidence: float | None,
    since: datetime | None,
    now: datetime | None = None,
    changed_items: list[int] | None = None,
) -> Steps:
    """The version's labels answered since `since` (None: ever): the done ones' cells by
    day (the chart), and every label of the window counted together.

    Closed days come from their rollups: each day's small counts, and the histograms of the
    whole run of counted days as the difference of two running totals. Counted live: the
    window's partial first day, today, days not counted yet, and counted days that are
    stale (a changed item not recounted yet, another minimum confidence): for those, their
    stored histograms are taken out of the difference and their live counts put in. The
    first day after the counted run (today, in the steady state) is read from its partial
    count (the task counts it up to a moment before it runs) when that one is not stale:
    only the labels answered since are counted live. `changed_items`: ChangedItem's items,
    read before the call (else read here).

    Two round trips (lib/batch.py): what is stored (the window's days, its partial counts,
    the running totals at yesterday and before the window: the run's ends in the steady
    state), the labels still open and the changed items' days; then what those decide (the
    run's other ends, stale days' histograms, the labels counted live)."""
    now = now or timezone.now()
    today = now.astimezone(UTC).date()
    labels = Label.objects.filter(labeler_version_id=version_id)
    rest = (
        labels
        if since is None
        else labels.filter(Q(labeled_at__gte=since) | Q(labeled_at__isnull=True))
    )
    # Read first: few (the task deletes those it handled every few minutes).
    if changed_items is None:
        changed_items = list(ChangedItem.objects.values_list("item_id", flat=True).distinct())
    rollups = QualityRollup.objects.filter(version_id=version_id)
    whole = rollups.filter(day__lt=today, through__isnull=True)
    partials = rollups.filter(through__isnull=False)
    first_full: date | None = None
    ends_asked = [today - timedelta(days=1)]
    if since is not None:
        since_day = since.astimezone(UTC).date()
        first_full = since_day if day_start(since_day) == since else since_day + timedelta(days=1)
        whole = whole.filter(day__gte=first_full)
        partials = partials.filter(day__gte=first_full)
        ends_asked.append(first_full - timedelta(days=1))
    stored_rows, partial_rows, open_rows, changed_days, end_rows = yield [
        whole.values_list("day", "min_confidence", "counts"),
        partials.values_list("day", "through", "min_confidence", "counts", "histograms"),
        _open_counts_query(rest),
        _changed_days_query(version_id, changed_items, before=None),
        rollups.filter(day__in=ends_asked, through__isnull=True).values_list("day", "running"),
    ]
    stored = {day: (mc, counts) for day, mc, counts in stored_rows}
    if first_full is None:
        first_full = min(stored, default=today)
    # The run of counted days from the first: its histograms are running[last] - running[before].
    last = first_full - timedelta(days=1)
    while last + timedelta(days=1) in stored:
        last += timedelta(days=1)
    changed = set(changed_days)
    stale = {
        day
        for day, (mc, _) in stored.items()
        if day <= last and (day in changed or mc != min_confidence)
    }
    days: dict[date, DayCounts] = {
        day: DayCounts.from_json(counts)
        for day, (_, counts) in stored.items()
        if day <= last and day not in stale
    }
    total = _open_counts(open_rows)
    for counts in days.values():
        total.add(counts)
    after_run = max(first_full, last + timedelta(days=1))
    live_from = day_start(after_run)
    partial = None
    if after_run <= today and after_run not in changed:
        partial = next((row[1:] for row in partial_rows if row[0] == after_run), None)
        if partial is not None and not (partial[1] == min_confidence and partial[0] > live_from):
            partial = None
    # Counted live: before the first full day (from `since`), stale days, days after the
    # counted run (after the partial count, when there is one), today on.
    live: list[tuple[datetime | None, datetime | None]] = [(since, day_start(first_full))]
    live += [(day_start(a), day_start(b)) for a, b in day_runs(stale)]
    live.append((partial[0] if partial is not None else live_from, None))
    ends = [first_full - timedelta(days=1), last] if last >= first_full else []
    running = dict(end_rows)
    second: list[QuerySet] = [
        rollups.filter(
            day__in=[day for day in ends if day not in ends_asked], through__isnull=True
        ).values_list("day", "running"),
        rollups.filter(day__in=stale, through__isnull=True).values_list("histograms", flat=True),
    ]
    groups, latencies = _done_count_templates(min_confidence)
    for start, end in live:
        window = Q(labeler_version_id=version_id)
        if start is not None:
            window &= Q(labeled_at__gte=start)
        if end is not None:
            if start is not None and start >= end:
                continue
            window &= Q(labeled_at__lt=end)
        # Filters on the label's own columns: WHERE, before the grouping.
        second += [groups.filter(window), latencies.filter(window)]
    more_ends, stale_histograms, *live_rows = yield second
    running.update(dict(more_ends))
    if ends:
        total.add(DayCounts.from_json(running[last]))
        if first_full - timedelta(days=1) in running:
            total.subtract_histograms(DayCounts.from_json(running[first_full - timedelta(days=1)]))
        for histograms in stale_histograms:
            total.subtract_histograms(DayCounts.from_json(histograms))
    if partial is not None:
        counted = DayCounts.from_json({**partial[2], **partial[3]})
        days.setdefault(after_run, DayCounts()).add(counted)
        total.add(counted)
    for groups, latencies in zip(live_rows[::2], live_rows[1::2], strict=True):
        for day, counts in _done_counts(groups, latencies).items():
            days.setdefault(day, DayCounts()).add(counts)
            total.add(counts)
    return days, total


def quality_rollups_refresh(*, now: datetime | None = None) -> int:
    """Count every closed day not counted yet (or counted at another minimum confidence),
    and recount the days of items changed since: each day from its own labels only. Returns
    how many days were (re)counted. Idempotent; the beat runs it every few minutes."""
    now = now or timezone.now()
    # A day is counted once every label stored in it has surely committed: a label stored
    # at 23:59:59 may commit a moment after midnight.
    through = now - COMMIT_GRACE
    today = through.astimezone(UTC).date()
    # Read before counting: a change committed meanwhile is left for the next run.
    changes = list(
        ChangedItem.objects.order_by("id").values_list("id", "item_id")[:CHANGED_ITEMS_PER_RUN]
    )
    changed_items = sorted({item_id for _, item_id in changes})
    counted = 0
    versions = LabelerVersion.objects.exclude(state=LabelerVersion.State.DRAFT).select_related(
        "labeler"
    )
    for version in versions:
        min_confidence = version.labeler.min_confidence
        first = Label.objects.filter(
            labeler_version_id=version.pk, status=Label.Status.DONE
        ).aggregate(first=Min("labeled_at"))["first"]
        if first is None:
            continue
        stored = dict(
            QualityRollup.objects.filter(version_id=version.pk, through__isnull=True).values_list(
                "day", "min_confidence"
            )
        )
        due = {
            day
            for day in days_from(first.astimezone(UTC).date(), today)
            if day not in stored or stored[day] != min_confidence
        }
        if changed_items:
            due |= _changed_days(version.pk, changed_items, before=day_start(today))
        # One commit per version: a page never reads a day counted anew with running
        # totals not yet brought up to date.
        with transaction.atomic():
            for start, stop in day_chunks(due, DAYS_PER_STATEMENT):
                counted += _count_days(version.pk, start, stop, min_confidence)
            if due:
                _running_refresh(version.pk, min(due))
            # Today until a moment ago (every label stored before then has committed),
            # after the changes read above: the page counts only the labels answered since.
            _count_days(
                version.pk, today, today + timedelta(days=1), min_confidence, through=through
            )
    ChangedItem.objects.filter(id__in=[pk for pk, _ in changes]).delete()
    return counted


def _count_days(
    version_id: int,
    start: date,
    stop: date,
    min_confidence: float | None,
    *,
    through: datetime | None = None,
) -> int:
    """Count the days [start, stop); `through`: the one day `start` until then only (a
    partial row, never part of the running totals' chain)."""
    labels = Label.objects.filter(
        labeler_version_id=version_id,
        status=Label.Status.DONE,
        labeled_at__gte=day_start(start),
        labeled_at__lt=through or day_start(stop),
    )
    found = done_counts(labels, min_confidence=min_confidence)
    rows = []
    for n in range((stop - start).days):
        counts = found.get(start + timedelta(days=n), DayCounts())
        rows.append(
            QualityRollup(
                version_id=version_id,
                day=start + timedelta(days=n),
                through=through,
                min_confidence=min_confidence,
                counts=counts.figures_json(),
                histograms=counts.histograms_json(),
                computed_at=timezone.now(),
            )
        )
    with transaction.atomic():
        QualityRollup.objects.bulk_create(
            rows,
            update_conflicts=True,
            unique_fields=["version", "day"],
            update_fields=["through", "min_confidence", "counts", "histograms", "computed_at"],
        )
    return len(rows)


def _running_refresh(version_id: int, start: date) -> None:
    """Running histograms from `start` on: the day before's plus each day's own."""
    before = (
        QualityRollup.objects.filter(version_id=version_id, day=start - timedelta(days=1))
        .values_list("running", flat=True)
        .first()
    )
    running = DayCounts.from_json(before or {})
    rows = list(
        QualityRollup.objects.filter(version_id=version_id, day__gte=start)
        .order_by("day")
        .only("id", "day", "histograms")
    )
    for row in rows:
        running.add(DayCounts.from_json(row.histograms))
        row.running = running.histograms_json()
    with transaction.atomic():
        QualityRollup.objects.bulk_update(rows, ["running"], batch_size=100)
