"""Reads about labels that pages show."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Count, Min, Q, QuerySet
from django.utils import timezone
from django.utils.timesince import timesince

from labelers.breaker import breaker_status
from labelers.dashboard_rollups import FIGURES as DASHBOARD_FIGURES
from labelers.dashboard_rollups import DayFigures, Figures, daily_figures
from labelers.models import DispatchHeartbeat, Label, Labeler, LabelerVersion, ShadowRun
from labelers.routing import source_routing
from lib.batch import read_together
from lib.days import day_start
from moderation.models import CallbackDelivery, Decision, Item
from moderation.selectors.banks import banks_savings_query
from moderation.selectors.figures import decided_under_versions_count
from moderation.selectors.reviewers import reveals_today, reveals_today_query


def labeling_health() -> dict[str, Any]:
    """Labels that are not done, by status; items not yet routed to labelers ("received");
    whether the circuit breaker holds calls back ("breaker"): what reviewers and admins must
    see is stuck or still to come."""
    return _labeling_health(*read_together(*_labeling_health_queries()))


def _labeling_health_queries() -> tuple[QuerySet, QuerySet]:
    finished = (Label.Status.DONE, Label.Status.SUPERSEDED)
    open_statuses = [s for s in Label.Status.values if s not in finished]
    return (
        Label.objects.filter(status__in=open_statuses)
        .values_list("status")
        .annotate(n=Count("*"))
        .order_by(),
        Item.objects.filter(status=Item.Status.RECEIVED)
        .values_list("status")
        .annotate(n=Count("*"))
        .order_by(),
    )


def _labeling_health(labels: list, received: list) -> dict[str, Any]:
    health: dict[str, Any] = dict(labels)
    if received and received[0][1]:
        health["received"] = received[0][1]
    health["breaker"] = breaker_status()
    return health


def labeling_stalled() -> str | None:
    """Why labeling is not moving, in words, or None: the dispatch (beat's sweep) has not
    run for LABEL_DISPATCH_STALL_SECONDS, or received items have waited that long for it.
    Without this an empty queue reads as "nothing to review" while nothing is labeled."""
    now = timezone.now()
    limit = settings.LABEL_DISPATCH_STALL_SECONDS
    ran_at = DispatchHeartbeat.objects.filter(pk=1).values_list("ran_at", flat=True).first()
    oldest = Item.objects.filter(status=Item.Status.RECEIVED).aggregate(at=Min("received_at"))
    waited = oldest["at"] is not None and (now - oldest["at"]).total_seconds() > limit
    if ran_at is not None and (now - ran_at).total_seconds() > limit:
        return (
            f"Labeling is stalled: the dispatcher last ran {timesince(ran_at, now)} ago; "
            "is beat running?"
        )
    if ran_at is None and oldest["at"] is not None:
        return "Labeling is stalled: the dispatcher has never run; is beat running?"
    if waited:
        return (
            f"Labeling is behind: items have waited {timesince(oldest['at'], now)} to be "
            "sent to the labelers; are the workers consuming the dispatch queue?"
        )
    return None


def source_routing_problem(source_id: int) -> str:
    """Why the source's items would reach no labeler, in words; empty when routing works."""
    if not source_routing(source_id):
        return (
            "no active labeler with a published version is routed to this source: its items go to "
            "review unlabeled"
        )
    return ""


def version_policy_lines(version: LabelerVersion) -> list[str]:
    """What a version sends, as lines to compare: the model, then the criteria text or the
    remote labeler and its version."""
    lines = [f"model: {version.model or 'automatic'}"]
    if version.remote_labeler_id:
        lines += [
            f"remote labeler: {version.remote_labeler_id}",
            f"remote version: {version.remote_version_id or 'latest'}",
        ]
    else:
        lines += version.criteria_text.splitlines()
    return lines


def line_diff(before: list[str], after: list[str]) -> list[tuple[str, str]]:
    """(kind, line) pairs of a unified diff: kind is "add", "remove", "same" or "hunk".
    Plain text: the template escapes it."""
    kinds = {"+": "add", "-": "remove", " ": "same", "@": "hunk"}
    rows = []
    for line in difflib.unified_diff(before, after, lineterm="", n=3):
        if line.startswith(("+++", "---")):
            continue
        rows.append((kinds.get(line[:1], "same"), line[1:] if line[:1] in "+- " else line))
    return rows


def labeler_versions(labeler: Labeler):
    """A labeler's versions, newest first, with how many labels each gave."""
    return labeler.versions.annotate(labels_count=Count("labels")).order_by("-number")


def auto_approve_candidates(*, labeler: Labeler, band: float) -> int:
    """Undecided, unflagged items this labeler answered "0" at or above `band`: at most this
    many would be approved by the system if the band were set (fewer where another labeler
    of the source has no band or is less sure)."""
    return (
        Item.objects.filter(
            status__in=[Item.Status.LABELED, Item.Status.AUDIT],
            labels__labeler_version__labeler=labeler,
            labels__status=Label.Status.DONE,
            labels__label="0",
            labels__confidence__gte=band,
        )
        .values("pk")
        .distinct()
        .count()
    )


def labeler_shadow_runs(labeler: Labeler, *, limit: int = 20):
    """The labeler's latest shadow runs, newest first."""
    return (
        ShadowRun.objects.filter(version__labeler=labeler)
        .select_related("version", "baseline", "source")
        .order_by("-created_at", "-id")[:limit]
    )


# Decided items are read this many at a time when looking for decisions made under older
# versions: a bounded read per step, however many items a source has.
DECIDED_SCAN_BATCH = 1000


def decided_under_older_versions(*, labeler: Labeler) -> list[int]:
    """Items decided (status "decided") of the sources routed to this labeler whose current
    decision was made while an older version of it was in force: the candidates for
    re-review after its criteria changed.

    The decision's labeler_versions is a JSON list, which SQLite cannot search; so items are
    read by id in batches, each with its decisions' (item, labeler_versions) only, and the
    lists are checked here.
    """
    older, source_ids = _older_versions(labeler)
    if not older or not source_ids:
        return []
    decided = Item.objects.filter(status=Item.Status.DECIDED, source_id__in=source_ids)
    found: list[int] = []
    after = 0
    while True:
        batch = list(
            decided.filter(pk__gt=after)
            .order_by("pk")
            .values_list("pk", flat=True)[:DECIDED_SCAN_BATCH]
        )
        if not batch:
            return found
        after = batch[-1]
        # The current decision is the item's latest one that is neither an undo nor undone;
        # ids grow with time, so the last row per item wins.
        current_versions: dict[int, list] = {}
        rows = (
            Decision.objects.filter(item_id__in=batch, undone_by__isnull=True)
            .exclude(action=Decision.Action.UNDO)
            .order_by("id")
            .values_list("item_id", "labeler_versions")
        )
        for item_id, versions in rows:
            current_versions[item_id] = versions or []
        found += [
            item_id for item_id in batch if older.intersection(current_versions.get(item_id, ()))
        ]


def _older_versions(labeler: Labeler) -> tuple[set[int], list[int]]:
    """(the labeler's versions older than its current one, the sources routed to it)."""
    current = labeler.current_version
    if current is None:
        return set(), []
    older = set(labeler.versions.filter(number__lt=current.number).values_list("id", flat=True))
    return older, list(labeler.sources.values_list("id", flat=True))


def decided_under_older_versions_count(*, labeler: Labeler) -> int:
    """len(decided_under_older_versions(labeler=labeler)), read from the daily counts of
    decided items (one row per closed day) instead of every decided item."""
    older, source_ids = _older_versions(labeler)
    return decided_under_versions_count(source_ids=source_ids, versions=older)


# --- The admins' dashboard ------------------------------------------------------------------


@dataclass(frozen=True)
class Period:
    name: str
    label: str
    start: datetime
    end: datetime


def dashboard_periods(now: datetime | None = None) -> list[Period]:
    """Today and the past 7 days as the Django admin's date filters define them (from
    midnight, in the site's time zone, until tomorrow's midnight), so that a figure's link
    to an admin list shows exactly the rows it counted."""
    now = timezone.localtime(now or timezone.now())
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    tomorrow = today + timedelta(days=1)
    return [
        Period("today", "Today", today, tomorrow),
        Period("week", "Past 7 days", today - timedelta(days=7), tomorrow),
    ]


def _counts_by_period(
    rows: QuerySet, field: str, periods: list[Period], kinds: dict[str, Q] | None = None
) -> dict[str, dict[str, int]]:
    """One query: how many rows of each kind (default: all) fall in each period by `field`
    (an indexed date), reading only the index range of the widest period."""
    kinds = kinds or {"all": Q()}
    within = {f"{field}__gte": min(p.start for p in periods), f"{field}__lt": periods[0].end}
    counts = {
        f"{kind}__{p.name}": Count(
            "pk", filter=condition & Q(**{f"{field}__gte": p.start, f"{field}__lt": p.end})
        )
        for kind, condition in kinds.items()
        for p in periods
    }
    found = rows.filter(**within).aggregate(**counts)
    return {kind: {p.name: found[f"{kind}__{p.name}"] for p in periods} for kind in kinds}


def _period_days(period: Period) -> list[date] | None:
    """The UTC days a period is made of; None when it does not start and end at midnight
    UTC (a site time zone other than UTC: the daily counts do not fit, count the rows)."""
    start, end = period.start.astimezone(UTC), period.end.astimezone(UTC)
    if start != day_start(start.date()) or end != day_start(end.date()):
        return None
    return [start.date() + timedelta(days=n) for n in range((end.date() - start.date()).days)]


def dashboard_figures(periods: list[Period], *, first_day: date | None = None) -> Figures | None:
    """The daily figures by source the periods need (from `first_day` on, if earlier), read
    from the daily counts and today's rows (labelers/dashboard_rollups.py); None when the
    periods are not whole UTC days."""
    days = [_period_days(p) for p in periods]
    if any(d is None or not d for d in days):
        return None
    first = min(d[0] for d in days if d)
    if first_day is not None:
        first = min(first, first_day)
    return daily_figures(first)


def dashboard_activity(
    periods: list[Period], figures: Figures | None = None
) -> dict[str, dict[str, int]]:
    """dashboard_activity_raw's figures, from the daily figures (one row per source and
    closed day, today's rows counted)."""
    figures = figures if figures is not None else dashboard_figures(periods)
    if figures is None:
        return dashboard_activity_raw(periods)
    found: dict[str, dict[str, int]] = {name: {} for name in DASHBOARD_FIGURES}
    for period in periods:
        days = set(_period_days(period) or ())
        total = DayFigures()
        for (day, _), counts in figures.items():
            if day in days:
                total.add(counts)
        for name in DASHBOARD_FIGURES:
            found[name][period.name] = getattr(total, name)
    return found


def reviewer_throughput(
    periods: list[Period],
    figures: Figures | None = None,
    names: dict[int, str] | None = None,
) -> list[dict[str, Any]]:
    """reviewer_throughput_raw's rows, from the daily figures (one query for the names,
    unless given: reviewer_names_query's)."""
    figures = figures if figures is not None else dashboard_figures(periods)
    if figures is None:
        return reviewer_throughput_raw(periods)
    counts: dict[int, dict[str, int]] = {}
    for period in periods:
        days = set(_period_days(period) or ())
        for (day, _), day_figures in figures.items():
            if day in days:
                for reviewer_id, n in day_figures.reviewers.items():
                    by_period = counts.setdefault(reviewer_id, {p.name: 0 for p in periods})
                    by_period[period.name] += n
    if names is None:
        names = dict(reviewer_names_query(figures))
    rows = [
        {"reviewer_id": pk, "reviewer__username": names[pk], **by_period}
        for pk, by_period in counts.items()
    ]
    return sorted(rows, key=lambda row: row["reviewer__username"])


def reviewer_names_query(figures: Figures) -> QuerySet:
    """(id, username) of every reviewer with decisions in the figures."""
    ids = {pk for day_figures in figures.values() for pk in day_figures.reviewers}
    return get_user_model().objects.filter(pk__in=sorted(ids)).values_list("pk", "username")


def team_throughput(
    periods: list[Period],
    figures: Figures | None = None,
    reveals: dict[str, int] | None = None,
    names: dict[int, str] | None = None,
) -> list[dict[str, Any]]:
    """Per reviewer, by username: decisions in each period (from the daily figures, as
    reviewer_throughput) and items whose media they revealed today; reviewers who revealed
    media but decided nothing in the periods too (exposure all the same). What the team
    page and the dashboard's reviewers table show. `reveals`, `names`: reveals_today and
    reviewer_names_query's, read already."""
    reveals = dict(reveals_today() if reveals is None else reveals)
    rows = [
        {**row, "reveals": reveals.pop(row["reviewer__username"], 0)}
        for row in reviewer_throughput(periods, figures, names)
    ]
    rows += [
        {
            "reviewer_id": None,
            "reviewer__username": name,
            **{p.name: 0 for p in periods},
            "reveals": n,
        }
        for name, n in reveals.items()
    ]
    return sorted(rows, key=lambda row: row["reviewer__username"])


def dashboard_activity_raw(periods: list[Period]) -> dict[str, dict[str, int]]:
    """Per period: items received, labels given, items flagged, decisions by people and
    automatic ones (undos are not decisions here), counted from the rows (the definition
    the daily figures must equal)."""
    decisions = _counts_by_period(
        Decision.objects.exclude(action=Decision.Action.UNDO),
        "created_at",
        periods,
        kinds={
            "decided_by_people": Q(reviewer__isnull=False),
            "decided_automatically": Q(reviewer__isnull=True),
        },
    )
    done = Label.objects.filter(status=Label.Status.DONE)
    return {
        "received": _counts_by_period(Item.objects.all(), "received_at", periods)["all"],
        "labeled": _counts_by_period(done, "labeled_at", periods)["all"],
        "flagged": _counts_by_period(Item.objects.all(), "flagged_at", periods)["all"],
        **decisions,
    }


def reviewer_throughput_raw(periods: list[Period]) -> list[dict[str, Any]]:
    """Decisions per reviewer in each period (undos left out), by username, counted from the
    rows."""
    start, end = min(p.start for p in periods), periods[0].end
    counts = {
        p.name: Count("pk", filter=Q(created_at__gte=p.start, created_at__lt=p.end))
        for p in periods
    }
    return list(
        Decision.objects.filter(created_at__gte=start, created_at__lt=end, reviewer__isnull=False)
        .exclude(action=Decision.Action.UNDO)
        .values("reviewer_id", "reviewer__username")
        .annotate(**counts)
        .order_by("reviewer__username")
    )


# Statuses in the queue that the dashboard counts apart: an admin's doing (audit samples,
# re-reviews) rather than the labelers'.
SPECIAL_QUEUE_STATUSES: tuple[str, ...] = ("audit", "rereview")


def waiting_by_source_and_status(
    statuses: tuple[str, ...] = SPECIAL_QUEUE_STATUSES,
) -> dict[tuple[int, str], int]:
    """(source id, status) -> items waiting, for the given queue statuses; one query."""
    return {
        (source_id, status): n for source_id, status, n in _waiting_by_source_and_status(statuses)
    }


def _waiting_by_source_and_status(statuses: tuple[str, ...]) -> QuerySet:
    return (
        Item.objects.filter(status__in=statuses)
        .values_list("source_id", "status")
        .annotate(n=Count("pk"))
        .order_by()
    )


def callbacks_by_state() -> dict[str, int]:
    """Deliveries still to send (pending, sending) and given up (failed); delivered ones are
    not counted (nor read: the index holds only these states). Failed ones stay: count(*),
    not count(id), is an index-only scan of callback_open_idx (a few index pages however
    many have failed), where count(id) read every failed delivery's row from the table."""
    return _callbacks_by_state(_callbacks_by_state_query())


CALLBACK_OPEN_STATES = ("pending", "sending", "failed")


def _callbacks_by_state_query() -> QuerySet:
    return (
        CallbackDelivery.objects.filter(state__in=CALLBACK_OPEN_STATES)
        .values_list("state")
        .annotate(n=Count("*"))
        .order_by()
    )


def _callbacks_by_state(rows) -> dict[str, int]:
    return {state: 0 for state in CALLBACK_OPEN_STATES} | dict(rows)


@dataclass
class DashboardCounts:
    """The dashboard's figures that do not come from the daily counts, read together."""

    special: dict[tuple[int, str], int]  # waiting_by_source_and_status
    health: dict[str, Any]  # labeling_health
    callbacks: dict[str, int]  # callbacks_by_state
    reveals: dict[str, int]  # reveals_today
    banks: list[dict]  # banks_savings
    extra: list[list]  # the rows of the caller's own reads, in order


def dashboard_counts(*extra: QuerySet) -> DashboardCounts:
    """The dashboard's other figures (and the caller's own reads, `extra`): labels and items
    stuck, callbacks open, the special queue statuses, media revealed today, the banks'
    savings, each as its own selector counts it, all in one round trip (lib/batch.py)."""
    labels, received, special, callbacks, reveals, banks, *rest = read_together(
        *_labeling_health_queries(),
        _waiting_by_source_and_status(SPECIAL_QUEUE_STATUSES),
        _callbacks_by_state_query(),
        reveals_today_query(),
        banks_savings_query(),
        *extra,
    )
    return DashboardCounts(
        special={(source_id, status): n for source_id, status, n in special},
        health=_labeling_health(labels, received),
        callbacks=_callbacks_by_state(callbacks),
        reveals=dict(reveals),
        banks=banks,
        extra=rest,
    )
