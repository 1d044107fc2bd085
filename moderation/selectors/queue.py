"""The review queue: its pages (keyset by queue key), the next item, tab counts, the
escalated queue, and the SLA figures per source."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, time, timedelta
from typing import NamedTuple

from django.conf import settings
from django.db import connection
from django.db.models import BooleanField, Exists, OuterRef, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from lib.cache import TTLCache
from moderation.filters import STATUSES, QueueFilter
from moderation.models import (
    IN_QUEUE,
    QUEUE_FAILED,
    Decision,
    Item,
    Report,
    Source,
    free_for,
    queue_key_ranges,
)
from moderation.permissions import reviewer_source_ids

# Counts stop here: the tabs and the SLA header say "10,000+" rather than count a million
# rows on every page view.
QUEUE_COUNT_CAP = 10_000
# The tab counts and the SLA header are the queue page's only reads that grow with the queue
# (up to the cap): reviewers reload the queue all day, so each process keeps them for a few
# seconds per scope and filter. The page's items are never cached.
queue_figures_cache: TTLCache[object] = TTLCache(seconds=5.0, maxsize=2_000)


class QueueCount(NamedTuple):
    """A count that stops at QUEUE_COUNT_CAP."""

    n: int

    @property
    def capped(self) -> bool:
        return self.n > QUEUE_COUNT_CAP

    def __str__(self) -> str:
        return f"{QUEUE_COUNT_CAP:,}+" if self.capped else f"{self.n:,}"


def _capped_count_sql(items: QuerySet) -> tuple[str, tuple]:
    """COUNT(*) over a LIMITed subquery: an index range of at most CAP + 1 entries."""
    sql, params = items.order_by().values("pk")[: QUEUE_COUNT_CAP + 1].query.sql_with_params()
    # The inner SQL is the ORM's, with its values as parameters.
    return f"SELECT COUNT(*) FROM ({sql}) AS capped", params  # noqa: S608


def _scalars(parts: list[tuple[str, tuple]]) -> list:
    """Several scalar subqueries in one round trip: a page shows about twenty figures, and
    twenty round trips cost more than the figures."""
    if not parts:
        return []
    sql = "SELECT " + ", ".join(f"({part})" for part, _ in parts)
    params = tuple(param for _, part_params in parts for param in part_params)
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return list(cursor.fetchone())


def _as_datetime(value) -> datetime | None:
    """A datetime read by raw SQL: SQLite gives naive UTC (a datetime, or text)."""
    parsed = value if value is None or isinstance(value, datetime) else parse_datetime(value)
    if parsed is not None and timezone.is_naive(parsed):
        parsed = timezone.make_aware(parsed, UTC)
    return parsed


def _status_items(status: str) -> QuerySet[Item]:
    """The items of a queue status; each condition is one of the partial indexes' own."""
    if status == "failed":
        return Item.objects.filter(status__in=QUEUE_FAILED)
    if status == "escalated":
        return Item.objects.filter(status=Item.Status.ESCALATED)
    return Item.objects.filter(status__in=IN_QUEUE)


def queue_filter_q(filters: QueueFilter, *, allowed: frozenset[int] | None, prefix: str = "") -> Q:
    """Every filter but the status and the score, as a condition on items (reached through
    `prefix`, e.g. "item__" from decisions); `allowed`: the reviewer's sources (None: all)."""
    q = Q()
    if allowed is not None:
        q &= Q(**{f"{prefix}source_id__in": sorted(allowed)})
    if filters.source:
        q &= Q(**{f"{prefix}source_id": filters.source})
    if filters.author:
        q &= Q(**{f"{prefix}author_id": filters.author})
    if filters.labeler:
        # The labels model belongs to labelers, which moderation does not import.
        label_model = Item._meta.get_field("labels").related_model
        q &= Exists(
            label_model.objects.filter(
                item_id=OuterRef(f"{prefix}pk"), labeler_version__labeler_id=filters.labeler
            )
        )
    if filters.received_from:
        since = datetime.combine(filters.received_from, time.min, tzinfo=UTC)
        q &= Q(**{f"{prefix}received_at__gte": since})
    if filters.received_to:
        until = datetime.combine(filters.received_to + timedelta(days=1), time.min, tzinfo=UTC)
        q &= Q(**{f"{prefix}received_at__lt": until})
    if filters.media == "image":
        q &= ~Q(**{f"{prefix}content_image": ""})
    elif filters.media == "video":
        q &= ~Q(**{f"{prefix}content_video": ""})
    elif filters.media == "text":
        q &= Q(**{f"{prefix}content_image": "", f"{prefix}content_video": ""})
    if filters.reported:
        q &= Q(**{f"{prefix}report_score__isnull": False})
    if filters.report_reason:
        q &= Exists(
            Report.objects.filter(item_id=OuterRef(f"{prefix}pk"), reason=filters.report_reason)
        )
    if filters.q:
        # Prefix on external_id, contains on the text: both served by trigram indexes on
        # PostgreSQL (migration 0007).
        q &= Q(**{f"{prefix}external_id__startswith": filters.q}) | Q(
            **{f"{prefix}content_text__icontains": filters.q}
        )
    return q


def _row_after(table: str, columns: tuple[str, str], op: str, values: tuple) -> RawSQL:
    """`(a, b) > (x, y)` as a row comparison: the planner range-scans an index on (a, b),
    which it does not for `a > x OR (a = x AND b > y)`. SQLite has row values too."""
    quote = connection.ops.quote_name
    first, second = (f"{quote(table)}.{quote(column)}" for column in columns)
    assert op in ("<", ">")
    # Column names come from the models, the values are parameters.
    sql = f"({first}, {second}) {op} (%s, %s)"
    return RawSQL(sql, values, output_field=BooleanField())  # noqa: S611


def queue_items(*, reviewer, filters: QueueFilter) -> list[QuerySet[Item]]:
    """The queue (or the failed or escalated queue), filtered, in review order: one query per
    range of the sort key, to be read one after the other (see _queue_items); not "mine"."""
    return _queue_items(allowed=reviewer_source_ids(reviewer), filters=filters)


def _queue_items(*, allowed: frozenset[int] | None, filters: QueueFilter) -> list[QuerySet[Item]]:
    items = _status_items(filters.status).filter(
        queue_filter_q(filters, allowed=allowed), queue_key__isnull=False
    )
    if filters.score_min is None and filters.score_max is None:
        return [items.order_by("queue_key", "id")]
    # The score bounds as ranges of the sort key, so that the index reads only what is in
    # them (an ordered range scan each, not a bitmap to sort) and counts never leave the
    # index. The ranges hold exactly the scores within the bounds (models.queue_key_ranges;
    # up to the key's float rounding, ~1e-14), so the score itself is not filtered again.
    return [
        items.filter(queue_key__gte=low, queue_key__lte=high).order_by("queue_key", "id")
        for low, high in queue_key_ranges(filters.score_min, filters.score_max)
    ]


def _read_in_order(parts: list[QuerySet[Item]], limit: int) -> list[Item]:
    """Up to `limit` items from key ranges that follow each other: the later ranges are read
    only if the earlier ones run out."""
    found: list[Item] = []
    for part in parts:
        found += part[: limit - len(found)]
        if len(found) >= limit:
            break
    return found


def _my_decisions(
    *, reviewer, filters: QueueFilter, allowed: frozenset[int] | None
) -> QuerySet[Decision]:
    """Decisions by this reviewer that are still their item's latest (an undo hands the item
    back, so it is not "decided by me"), newest first."""
    later = Decision.objects.filter(item_id=OuterRef("item_id"), id__gt=OuterRef("id"))
    decisions = (
        Decision.objects.filter(reviewer_id=reviewer.pk)
        .exclude(action=Decision.Action.UNDO)
        .filter(~Exists(later), queue_filter_q(filters, allowed=allowed, prefix="item__"))
    )
    if filters.score_min is not None:
        decisions = decisions.filter(item__violation_score__gte=filters.score_min)
    if filters.score_max is not None:
        decisions = decisions.filter(item__violation_score__lte=filters.score_max)
    return decisions.order_by("-created_at", "-id")


def _parse_cursor(status: str, after: str | None) -> tuple | None:
    if not after:
        return None
    key, _, last_id = after.rpartition("_")
    try:
        if status == "mine":
            return datetime.fromisoformat(key), int(last_id)
        return float(key), int(last_id)
    except ValueError:
        return None  # a mangled link shows the first page


def queue_page(
    *, reviewer, filters: QueueFilter, after: str | None = None, size: int | None = None
) -> tuple[list[Item], str | None]:
    """One page of the queue and the cursor of the next (None on the last page).

    Keyset pagination on (queue_key, id) by a row comparison, so page 10,000 is one index
    range like page 1. "mine" pages go by the reviewer's decisions, newest first; each item
    carries that decision as `my_decision`.
    """
    size = size or settings.QUEUE_PAGE_SIZE
    cursor = _parse_cursor(filters.status, after)
    if filters.status == "mine":
        decisions = _my_decisions(
            reviewer=reviewer, filters=filters, allowed=reviewer_source_ids(reviewer)
        ).select_related("item__source", "item__claimed_by")
        if cursor is not None:
            # A raw parameter: stored as the database keeps datetimes (naive UTC on SQLite).
            created_at = Decision._meta.get_field("created_at").get_db_prep_value(
                cursor[0], connection
            )
            decisions = decisions.filter(
                _row_after(
                    Decision._meta.db_table, ("created_at", "id"), "<", (created_at, cursor[1])
                )
            )
        rows = list(decisions[: size + 1])
        page = []
        for decision in rows[:size]:
            decision.item.my_decision = decision
            page.append(decision.item)
        last = rows[size - 1] if len(rows) > size else None
        return page, f"{last.created_at.isoformat()}_{last.id}" if last else None
    parts = [
        part.select_related("source", "claimed_by")
        for part in queue_items(reviewer=reviewer, filters=filters)
    ]
    if cursor is not None:
        after_cursor = _row_after(Item._meta.db_table, ("queue_key", "id"), ">", cursor)
        parts = [part.filter(after_cursor) for part in parts]
    found = _read_in_order(parts, size + 1)
    last_item = found[size - 1] if len(found) > size else None
    following = f"{last_item.queue_key!r}_{last_item.id}" if last_item else None
    return found[:size], following


def escalations_attach(items: list[Item]) -> None:
    """Each escalated item of a page carries the escalation that put it there (who, why,
    when, their note) as `escalation`: the seniors' list shows it. One query per page."""
    waiting = [item for item in items if item.status == Item.Status.ESCALATED]
    latest: dict[int, Decision] = {}
    for decision in (
        Decision.objects.filter(item__in=waiting, action=Decision.Action.ESCALATE)
        .select_related("reviewer")
        .order_by("created_at", "id")
    ):
        latest[decision.item_id] = decision
    for item in waiting:
        item.escalation = latest.get(item.pk)


def queue_next(*, reviewer, filters: QueueFilter, exclude_ids: Iterable[int] = ()) -> Item | None:
    """The top item of the (filtered) queue nobody else holds a live claim on; `exclude_ids`
    (e.g. the item just skipped) are passed over. "mine" has no next: it reviews the queue."""
    if filters.status == "mine":
        filters = filters.with_status("undecided")
    free = free_for(reviewer, timezone.now())
    exclude = list(exclude_ids)
    parts = [
        part.filter(free).exclude(pk__in=exclude) if exclude else part.filter(free)
        for part in queue_items(reviewer=reviewer, filters=filters)
    ]
    found = _read_in_order(parts, 1)
    return found[0] if found else None


class NothingNext(NamedTuple):
    """Why "next" found nothing: of the items waiting under the filters, how many others
    hold, how many this reviewer skipped; and how many wait with no filter at all."""

    waiting: int
    held_by_others: int
    skipped: int
    waiting_unfiltered: int


def queue_nothing_next(
    *, reviewer, filters: QueueFilter, exclude_ids: Iterable[int] = ()
) -> NothingNext:
    """For the message after an empty "next" (a few capped counts, only then)."""
    if filters.status == "mine":
        filters = filters.with_status("undecided")
    free = free_for(reviewer, timezone.now())
    exclude = list(exclude_ids)

    def count(parts: list[QuerySet[Item]]) -> int:
        return sum(part.order_by()[: QUEUE_COUNT_CAP + 1].count() for part in parts)

    parts = queue_items(reviewer=reviewer, filters=filters)
    unfiltered = QueueFilter(status=filters.status)
    return NothingNext(
        waiting=count(parts),
        held_by_others=count([part.exclude(free) for part in parts]),
        skipped=count([part.filter(free, pk__in=exclude) for part in parts]) if exclude else 0,
        waiting_unfiltered=count(queue_items(reviewer=reviewer, filters=unfiltered)),
    )


def queue_counts(
    *, reviewer, filters: QueueFilter, statuses: Iterable[str] = tuple(STATUSES)
) -> dict[str, QueueCount]:
    """Per status tab, how many items the other filters leave, capped at QUEUE_COUNT_CAP;
    at most a few seconds old."""
    statuses = tuple(statuses)
    allowed = reviewer_source_ids(reviewer)
    # "Decided by me" is the reviewer's own; the other tabs depend only on the scope.
    key = ("counts", allowed, filters, statuses, reviewer.pk if "mine" in statuses else None)
    return queue_figures_cache.get(  # type: ignore[return-value]
        key, lambda: _queue_counts(reviewer, filters, statuses, allowed)
    )


def _queue_counts(reviewer, filters, statuses, allowed) -> dict[str, QueueCount]:
    parts = []
    for status in statuses:
        status_filters = filters.with_status(status)
        if status == "mine":
            ranges: list[QuerySet] = [
                _my_decisions(reviewer=reviewer, filters=status_filters, allowed=allowed)
            ]
        else:
            ranges = list(_queue_items(allowed=allowed, filters=status_filters))
        parts.append([_capped_count_sql(items) for items in ranges])
    figures = iter(_scalars([sql for status_parts in parts for sql in status_parts]))
    return {
        status: QueueCount(min(QUEUE_COUNT_CAP + 1, sum(next(figures) for _ in status_parts)))
        for status, status_parts in zip(statuses, parts, strict=True)
    }


# The SLA header's figures, written out rather than built by the ORM: four per source on
# every page view, and compiling sixteen querysets cost more than running them. Only
# constants go into the text; the values are parameters.
def _sla_sql(statuses: tuple[str, ...]) -> tuple[str, str, str]:
    waiting = (
        f"FROM {connection.ops.quote_name(Item._meta.db_table)} WHERE source_id = %s "
        f"AND status IN ({', '.join(['%s'] * len(statuses))})"
    )
    return (
        f"SELECT COUNT(*) FROM (SELECT 1 {waiting} LIMIT %s) AS capped",  # noqa: S608
        f"SELECT COUNT(*) FROM (SELECT 1 {waiting} AND sla_breached = %s LIMIT %s) AS c",  # noqa: S608
        f"SELECT waiting_since {waiting} AND sla_breached = %s ORDER BY waiting_since LIMIT 1",  # noqa: S608
    )


# The escalated queue's header counts escalated items, the review queue's its own.
ESCALATED = (str(Item.Status.ESCALATED),)
_SLA_SQL = {IN_QUEUE: _sla_sql(IN_QUEUE), ESCALATED: _sla_sql(ESCALATED)}


class SourceSla(NamedTuple):
    source: Source
    waiting: QueueCount
    oldest_since: datetime | None  # when the longest-waiting item's content arrived
    sla_minutes: int | None
    past_sla: QueueCount


def queue_sla(*, reviewer, escalated: bool = False) -> list[SourceSla]:
    """Per source the reviewer may see: items waiting in the queue (or, `escalated`, in the
    seniors' queue), the oldest one's arrival, the source's SLA and how many waiting items
    are past it (marked by the SLA sweep). Each figure is one range of the (source,
    sla_breached, waiting_since) index."""
    allowed = reviewer_source_ids(reviewer)
    statuses = ESCALATED if escalated else IN_QUEUE

    def load() -> list[SourceSla]:
        sources = Source.objects.order_by("name")
        if allowed is not None:
            sources = sources.filter(pk__in=allowed)
        return sources_sla(list(sources), statuses=statuses)

    return queue_figures_cache.get(("sla", allowed, statuses), load)  # type: ignore[return-value]


def sources_sla(sources: list[Source], *, statuses: tuple[str, ...] = IN_QUEUE) -> list[SourceSla]:
    """The SLA figures of these sources (the queue's header, the admin's list of sources), in
    one query."""
    waiting_sql, past_sql, oldest_sql = _SLA_SQL[statuses]
    parts = []
    for source in sources:
        waiting, cap = (source.pk, *statuses), QUEUE_COUNT_CAP + 1
        parts += [
            (waiting_sql, (*waiting, cap)),
            (past_sql, (*waiting, True, cap)),
            # The oldest is breached if any is; each look is the start of one index range.
            (oldest_sql, (*waiting, True)),
            (oldest_sql, (*waiting, False)),
        ]
    figures = _scalars(parts)
    rows = []
    for n, source in enumerate(sources):
        waiting_n, past_n, oldest_breached, oldest_fresh = figures[4 * n : 4 * n + 4]
        rows.append(
            SourceSla(
                source=source,
                waiting=QueueCount(waiting_n),
                oldest_since=_as_datetime(oldest_breached or oldest_fresh),
                sla_minutes=source.review_sla_minutes,
                past_sla=QueueCount(past_n),
            )
        )
    return rows


def escalated_items(*, reviewer) -> QuerySet[Item]:
    """Escalated items a senior may take, sorted like the main queue."""
    items = Item.objects.filter(status=Item.Status.ESCALATED)
    allowed = reviewer_source_ids(reviewer)
    if allowed is not None:
        items = items.filter(source_id__in=allowed)
    # The queue key: served by item_queue_escalated_idx, past-SLA items first in their band.
    return items.select_related("source", "claimed_by").order_by("queue_key", "id")
