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
    Queue,
    Report,
    Source,
    free_for,
    queue_key_ranges,
    search_indexed_q,
)
from moderation.permissions import (
    QueueScope,
    queue_value,
    reviewer_queue_ids,
    reviewer_source_ids,
)
from moderation.routing import queues_teams

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


def queue_scope_q(queues: QueueScope, prefix: str = "") -> Q:
    """Items in these queues (Item.queue values, None the default queue); None: all."""
    if queues is None:
        return Q()
    q = Q(**{f"{prefix}queue_id__in": sorted(value for value in queues if value is not None)})
    if None in queues:
        q |= Q(**{f"{prefix}queue__isnull": True})
    return q


def filter_scope(filters: QueueFilter, queues: QueueScope) -> QueueScope:
    """The reviewer's queues narrowed to the filter's queue tab (empty if not theirs)."""
    if filters.queue is None:
        return queues
    value = queue_value(filters.queue)
    if queues is not None and value not in queues:
        return frozenset()
    return frozenset({value})


def queue_filter_q(
    filters: QueueFilter,
    *,
    allowed: frozenset[int] | None,
    prefix: str = "",
    queues: QueueScope = None,
) -> Q:
    """Every filter but the status and the score, as a condition on items (reached through
    `prefix`, e.g. "item__" from decisions); `allowed`: the reviewer's sources (None: all);
    `queues`: the reviewer's queues (None: all)."""
    q = queue_scope_q(filter_scope(filters, queues), prefix)
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
        # PostgreSQL, which hold the statuses searched and edited items (search_indexed_q):
        # a query that names no status ("decided by me") names that condition instead.
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


def queue_items(
    *,
    reviewer,
    filters: QueueFilter,
    languages: tuple[str, ...] = (),
    within: QueueScope = None,
) -> list[list[QuerySet[Item]]]:
    """The queue (or the failed or escalated queue), filtered, in review order, as streams
    to merge (one per team queue of the reviewer; one in all for a reviewer of every queue),
    each a list of ranges of the sort key to be read one after the other (see
    _queue_items); not "mine". `languages`: only items in these languages; `within`: only
    these of the reviewer's queues (Item.queue values; None: all of theirs)."""
    queues = reviewer_queue_ids(reviewer)
    if within is not None:
        queues = within if queues is None else queues & within
    return _queue_items(
        allowed=reviewer_source_ids(reviewer),
        filters=filters,
        queues=queues,
        languages=languages,
    )


def _queue_items(
    *,
    allowed: frozenset[int] | None,
    filters: QueueFilter,
    queues: QueueScope = None,
    languages: tuple[str, ...] = (),
) -> list[list[QuerySet[Item]]]:
    scope = filter_scope(filters, queues)
    if languages and scope is None:
        # Per queue and language: each one range of item_queue_language_idx.
        scope = frozenset(None if is_default else pk for pk, _, is_default in queues_teams())
        scope |= {None}
    items = _status_items(filters.status).filter(
        queue_filter_q(filters, allowed=allowed), queue_key__isnull=False
    )
    if filters.score_min is None and filters.score_max is None:
        ranges = [items]
    else:
        # The score bounds as ranges of the sort key, so that the index reads only what is
        # in them (an ordered range scan each, not a bitmap to sort) and counts never leave
        # the index. The ranges hold exactly the scores within the bounds
        # (models.queue_key_ranges; up to the key's float rounding, ~1e-14), so the score
        # itself is not filtered again.
        ranges = [
            items.filter(queue_key__gte=low, queue_key__lte=high)
            for low, high in queue_key_ranges(filters.score_min, filters.score_max)
        ]
    if scope is None:
        return [[part.order_by("queue_key", "id") for part in ranges]]
    # One stream per queue (and language): a reviewer's three queues are three ranges of
    # item_queue_team_idx (item_queue_language_idx), never a filter over the whole queue.
    # Each is ordered by that index's whole key (its leading columns are constant within
    # the stream): ordered by (queue_key, id) alone, the planner may walk item_queue_idx and
    # filter, which reads the whole rest of the queue when the queue is small (2.8 s at 1M).
    keys: list[Q] = []
    for value in sorted(scope, key=lambda value: (value is not None, value or 0)):
        in_queue = Q(queue__isnull=True) if value is None else Q(queue_id=value)
        keys += [in_queue & Q(language=language) for language in languages] or [in_queue]
    order = (
        ("queue_id", "language", "queue_key", "id")
        if languages
        else ("queue_id", "queue_key", "id")
    )
    return [[part.filter(key).order_by(*order) for part in ranges] for key in keys]


def _read_in_order(streams: list[list[QuerySet[Item]]], limit: int) -> list[Item]:
    """Up to `limit` items in queue order: each stream's key ranges follow each other (the
    later ranges are read only if the earlier ones run out); the streams are merged."""
    found: list[Item] = []
    for parts in streams:
        taken: list[Item] = []
        for part in parts:
            taken += part[: limit - len(taken)]
            if len(taken) >= limit:
                break
        found += taken
    if len(streams) > 1:
        found.sort(key=lambda item: (item.queue_key, item.pk))
    return found[:limit]


def _my_decisions(
    *, reviewer, filters: QueueFilter, allowed: frozenset[int] | None
) -> QuerySet[Decision]:
    """Decisions by this reviewer that are still their item's latest (an undo hands the item
    back, so it is not "decided by me"), newest first."""
    later = Decision.objects.filter(item_id=OuterRef("item_id"), id__gt=OuterRef("id"))
    decisions = (
        Decision.objects.filter(reviewer_id=reviewer.pk)
        .exclude(action=Decision.Action.UNDO)
        .filter(
            ~Exists(later),
            queue_filter_q(
                filters, allowed=allowed, prefix="item__", queues=reviewer_queue_ids(reviewer)
            ),
        )
    )
    if filters.q:
        # Always true of an item whose latest decision is this reviewer's (it is decided,
        # escalated, back in a queue, erased, or edited since), and what lets the search
        # read the partial trigram indexes instead of every item's text.
        decisions = decisions.filter(search_indexed_q("item__"))
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
    streams = [
        [part.select_related("source", "claimed_by") for part in parts]
        for parts in queue_items(reviewer=reviewer, filters=filters)
    ]
    if cursor is not None:
        after_cursor = _row_after(Item._meta.db_table, ("queue_key", "id"), ">", cursor)
        streams = [[part.filter(after_cursor) for part in parts] for parts in streams]
    found = _read_in_order(streams, size + 1)
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


def queue_next(
    *,
    reviewer,
    filters: QueueFilter,
    exclude_ids: Iterable[int] = (),
    languages: tuple[str, ...] = (),
    within: QueueScope = None,
) -> Item | None:
    """The top item of the reviewer's (filtered) queues nobody else holds a live claim on,
    by SLA and score (the sort key); with `languages` (those the reviewer reads), the top
    item in one of them first, and only then any. `exclude_ids` (e.g. the item just
    skipped) are passed over; `within`: only these of their queues. "mine" has no next: it
    reviews the queue."""
    if filters.status == "mine":
        filters = filters.with_status("undecided")
    free = free_for(reviewer, timezone.now())
    exclude = list(exclude_ids)
    for only in (languages, ()) if languages else ((),):
        streams = [
            [
                part.filter(free).exclude(pk__in=exclude) if exclude else part.filter(free)
                for part in parts
            ]
            for parts in queue_items(
                reviewer=reviewer, filters=filters, languages=only, within=within
            )
        ]
        found = _read_in_order(streams, 1)
        if found:
            return found[0]
    return None


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

    parts = [part for stream in queue_items(reviewer=reviewer, filters=filters) for part in stream]
    unfiltered = QueueFilter(status=filters.status)
    return NothingNext(
        waiting=count(parts),
        held_by_others=count([part.exclude(free) for part in parts]),
        skipped=count([part.filter(free, pk__in=exclude) for part in parts]) if exclude else 0,
        waiting_unfiltered=count(
            [
                part
                for stream in queue_items(reviewer=reviewer, filters=unfiltered)
                for part in stream
            ]
        ),
    )


def queue_counts(
    *, reviewer, filters: QueueFilter, statuses: Iterable[str] = tuple(STATUSES)
) -> dict[str, QueueCount]:
    """Per status tab, how many items the other filters leave, capped at QUEUE_COUNT_CAP;
    at most a few seconds old."""
    statuses = tuple(statuses)
    allowed = reviewer_source_ids(reviewer)
    queues = reviewer_queue_ids(reviewer)
    # "Decided by me" is the reviewer's own; the other tabs depend only on the scope.
    key = (
        "counts",
        allowed,
        queues,
        filters,
        statuses,
        reviewer.pk if "mine" in statuses else None,
    )
    return queue_figures_cache.get(  # type: ignore[return-value]
        key, lambda: _queue_counts(reviewer, filters, statuses, allowed, queues)
    )


def _queue_counts(reviewer, filters, statuses, allowed, queues) -> dict[str, QueueCount]:
    parts = []
    for status in statuses:
        status_filters = filters.with_status(status)
        if status == "mine":
            ranges: list[QuerySet] = [
                _my_decisions(reviewer=reviewer, filters=status_filters, allowed=allowed)
            ]
        else:
            ranges = [
                part
                for stream in _queue_items(allowed=allowed, filters=status_filters, queues=queues)
                for part in stream
            ]
        parts.append([_capped_count_sql(items) for items in ranges])
    figures = iter(_scalars([sql for status_parts in parts for sql in status_parts]))
    return {
        status: QueueCount(min(QUEUE_COUNT_CAP + 1, sum(next(figures) for _ in status_parts)))
        for status, status_parts in zip(statuses, parts, strict=True)
    }


# The SLA header's figures, written out rather than built by the ORM: four per source on
# every page view, and compiling sixteen querysets cost more than running them. Only
# constants go into the text; the values are parameters. `in_queue`: one team queue's part
# (a reviewer served only some queues), "queue_id = %s" or "queue_id IS NULL" (the default).
def _sla_sql(statuses: tuple[str, ...], in_queue: str = "") -> tuple[str, str, str]:
    waiting = (
        f"FROM {connection.ops.quote_name(Item._meta.db_table)} WHERE "
        f"{in_queue + ' AND ' if in_queue else ''}source_id = %s "
        f"AND status IN ({', '.join(['%s'] * len(statuses))})"
    )
    return (
        f"SELECT COUNT(*) FROM (SELECT 1 {waiting} LIMIT %s) AS capped",  # noqa: S608
        f"SELECT COUNT(*) FROM (SELECT 1 {waiting} AND sla_breached = %s LIMIT %s) AS c",  # noqa: S608
        f"SELECT waiting_since {waiting} AND sla_breached = %s ORDER BY waiting_since LIMIT 1",  # noqa: S608
    )


# The escalated queue's header counts escalated items, the review queue's its own.
ESCALATED = (str(Item.Status.ESCALATED),)
_SLA_SQL: dict[tuple[tuple[str, ...], str], tuple[str, str, str]] = {
    (statuses, in_queue): _sla_sql(statuses, in_queue)
    for statuses in (IN_QUEUE, ESCALATED)
    for in_queue in ("", "queue_id = %s", "queue_id IS NULL")
}


class SourceSla(NamedTuple):
    source: Source
    waiting: QueueCount
    oldest_since: datetime | None  # when the longest-waiting item's content arrived
    sla_minutes: int | None
    past_sla: QueueCount


def queue_sla(*, reviewer, escalated: bool = False) -> list[SourceSla]:
    """Per source the reviewer may see: items waiting in the queue (or, `escalated`, in the
    seniors' queue), the oldest one's arrival, the source's SLA and how many waiting items
    are past it (marked by the SLA sweep). Only the queues the reviewer is served count: a
    reviewer of two team queues is not told of items waiting in a third. Each figure is one
    range of the (source, sla_breached, waiting_since) index, or per visible queue one of
    (queue, source, sla_breached, waiting_since)."""
    allowed = reviewer_source_ids(reviewer)
    queues = reviewer_queue_ids(reviewer)
    statuses = ESCALATED if escalated else IN_QUEUE

    def load() -> list[SourceSla]:
        sources = Source.objects.order_by("name")
        if allowed is not None:
            sources = sources.filter(pk__in=allowed)
        return sources_sla(list(sources), statuses=statuses, queues=queues)

    return queue_figures_cache.get(  # type: ignore[return-value]
        ("sla", allowed, queues, statuses), load
    )


def sources_sla(
    sources: list[Source], *, statuses: tuple[str, ...] = IN_QUEUE, queues: QueueScope = None
) -> list[SourceSla]:
    """The SLA figures of these sources (the queue's header, the admin's list of sources), in
    one query; `queues`: only the items of these queues (Item.queue values; None: all)."""
    # Each part: the SQL's queue condition and its parameters.
    scopes: list[tuple[str, tuple]] = (
        [("", ())]
        if queues is None
        else [
            ("queue_id IS NULL", ()) if value is None else ("queue_id = %s", (value,))
            for value in sorted(queues, key=lambda value: (value is not None, value or 0))
        ]
    )
    parts = []
    cap = QUEUE_COUNT_CAP + 1
    for source in sources:
        for in_queue, queue_params in scopes:
            waiting_sql, past_sql, oldest_sql = _SLA_SQL[(statuses, in_queue)]
            waiting = (*queue_params, source.pk, *statuses)
            parts += [
                (waiting_sql, (*waiting, cap)),
                (past_sql, (*waiting, True, cap)),
                # The oldest is breached if any is; each look is the start of one index range.
                (oldest_sql, (*waiting, True)),
                (oldest_sql, (*waiting, False)),
            ]
    figures = iter(_scalars(parts))
    rows = []
    for source in sources:
        waiting_n = past_n = 0
        since: list[datetime] = []
        for _ in scopes:
            waiting_part, past_part, *oldest = (next(figures) for _ in range(4))
            waiting_n += waiting_part
            past_n += past_part
            since += [found for value in oldest if (found := _as_datetime(value)) is not None]
        rows.append(
            SourceSla(
                source=source,
                waiting=QueueCount(min(waiting_n, cap)),
                oldest_since=min(since) if since else None,
                sla_minutes=source.review_sla_minutes,
                past_sla=QueueCount(min(past_n, cap)),
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


class QueueFigures(NamedTuple):
    """A team queue's tab and dashboard row: items waiting, past their SLA, the oldest."""

    queue: Queue
    waiting: QueueCount
    past_sla: QueueCount
    oldest_since: datetime | None


def reviewer_queues(reviewer) -> list[Queue]:
    """The queues a reviewer is served, default first, then by name."""
    scope = reviewer_queue_ids(reviewer)
    queues = list(Queue.objects.select_related("team").order_by("-is_default", "name"))
    if scope is None:
        return queues
    return [queue for queue in queues if (None if queue.is_default else queue.pk) in scope]


def queues_figures(queues: list[Queue]) -> list[QueueFigures]:
    """Per queue: waiting (capped), past SLA (capped), the oldest arrival; each figure one
    range of item_queue_sla_idx, all in one round trip, a few seconds old at most."""
    key = ("queues", tuple((queue.pk, queue.is_default) for queue in queues))
    return queue_figures_cache.get(key, lambda: _queues_figures(queues))  # type: ignore[return-value]


def _queues_figures(queues: list[Queue]) -> list[QueueFigures]:
    parts = []
    for queue in queues:
        items = Item.objects.filter(status__in=IN_QUEUE)
        items = items.filter(queue__isnull=True) if queue.is_default else items.filter(queue=queue)
        parts += [
            _capped_count_sql(items),
            _capped_count_sql(items.filter(sla_breached=True)),
        ]
        for breached in (True, False):
            sql, params = (
                items.filter(sla_breached=breached)
                .order_by("waiting_since")
                .values("waiting_since")[:1]
                .query.sql_with_params()
            )
            parts.append((sql, params))
    figures = _scalars(parts)
    rows = []
    for n, queue in enumerate(queues):
        waiting, past, *oldest = figures[4 * n : 4 * n + 4]
        since = [found for value in oldest if (found := _as_datetime(value)) is not None]
        rows.append(
            QueueFigures(
                queue=queue,
                waiting=QueueCount(waiting),
                past_sla=QueueCount(past),
                oldest_since=min(since) if since else None,
            )
        )
    return rows
