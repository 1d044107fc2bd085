"""Reads shared by reviewer pages and the item API."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import NamedTuple

from django.conf import settings
from django.db import connection
from django.db.models import BooleanField, Count, Exists, F, OuterRef, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.db.models.functions import TruncWeek
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from config.cache import TTLCache
from moderation.filters import STATUSES, QueueFilter
from moderation.models import (
    IN_QUEUE,
    QUEUE_FAILED,
    Decision,
    DecisionReason,
    GoldenAnswer,
    GoldenItem,
    Item,
    MediaReveal,
    ReviewerSettings,
    Source,
    free_for,
    hash_token,
    queue_key_ranges,
    shift_start,
)

# Every webhook needs its source: cached per process (an unknown slug too, so a flood of
# 404s costs no queries); saves clear it (apps.py).
source_cache: TTLCache[Source | None] = TTLCache(seconds=2.0)


def source_for_intake(slug: str) -> Source | None:
    return source_cache.get(slug, lambda: Source.objects.filter(slug=slug).first())


def source_for_token(token: str) -> Source | None:
    if not token:
        return None
    return Source.objects.filter(api_token_hash=hash_token(token), active=True).first()


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


def _filter_q(filters: QueueFilter, *, allowed: frozenset[int] | None, prefix: str = "") -> Q:
    """Every filter but the status and the score, as a condition on items (reached through
    `prefix`, e.g. "item__" from decisions); `allowed`: the reviewer's sources (None: all)."""
    q = Q()
    if allowed is not None:
        q &= Q(**{f"{prefix}source_id__in": sorted(allowed)})
    if filters.source:
        q &= Q(**{f"{prefix}source_id": filters.source})
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
        _filter_q(filters, allowed=allowed), queue_key__isnull=False
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
        .filter(~Exists(later), _filter_q(filters, allowed=allowed, prefix="item__"))
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
_WAITING = (
    f"FROM {connection.ops.quote_name(Item._meta.db_table)} WHERE source_id = %s "
    f"AND status IN ({', '.join(['%s'] * len(IN_QUEUE))})"
)
_SLA_WAITING = f"SELECT COUNT(*) FROM (SELECT 1 {_WAITING} LIMIT %s) AS capped"  # noqa: S608
_SLA_PAST = f"SELECT COUNT(*) FROM (SELECT 1 {_WAITING} AND sla_breached = %s LIMIT %s) AS c"  # noqa: S608
_SLA_OLDEST = (
    f"SELECT waiting_since {_WAITING} AND sla_breached = %s ORDER BY waiting_since LIMIT 1"  # noqa: S608
)


class SourceSla(NamedTuple):
    source: Source
    waiting: QueueCount
    oldest_since: datetime | None  # when the longest-waiting item's content arrived
    sla_minutes: int | None
    past_sla: QueueCount


def queue_sla(*, reviewer) -> list[SourceSla]:
    """Per source the reviewer may see: items waiting in the queue, the oldest one's arrival,
    the source's SLA and how many waiting items are past it (marked by the SLA sweep). Each
    figure is one range of the (source, sla_breached, waiting_since) index."""
    allowed = reviewer_source_ids(reviewer)

    def load() -> list[SourceSla]:
        sources = Source.objects.order_by("name")
        if allowed is not None:
            sources = sources.filter(pk__in=allowed)
        return sources_sla(list(sources))

    return queue_figures_cache.get(("sla", allowed), load)  # type: ignore[return-value]


def sources_sla(sources: list[Source]) -> list[SourceSla]:
    """The SLA figures of these sources (the queue's header, the admin's list of sources), in
    one query."""
    parts = []
    for source in sources:
        waiting, cap = (source.pk, *IN_QUEUE), QUEUE_COUNT_CAP + 1
        parts += [
            (_SLA_WAITING, (*waiting, cap)),
            (_SLA_PAST, (*waiting, True, cap)),
            # The oldest is breached if any is; each look is the start of one index range.
            (_SLA_OLDEST, (*waiting, True)),
            (_SLA_OLDEST, (*waiting, False)),
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


def item_api_dict(item: Item) -> dict:
    """The item as the API shows it: its current revision's state and decision, and every
    revision's labels and decisions as history."""
    labels = item.labels.select_related("labeler_version__labeler").order_by("revision", "id")
    decisions = list(item.decisions.all())
    undone = {d.undoes_id for d in decisions if d.undoes_id}
    current = [
        d
        for d in decisions
        if d.revision == item.revision and d.action != "undo" and d.pk not in undone
    ]
    return {
        "id": item.pk,
        "external_id": item.external_id,
        "revision": item.revision,
        "status": item.status,
        "received_at": item.received_at.isoformat(),
        "revised_at": item.revised_at.isoformat() if item.revised_at else None,
        "violation_score": item.violation_score,
        "labels": [
            {
                "revision": lb.revision,
                "labeler": lb.labeler_version.labeler.slug,
                "labeler_version": lb.labeler_version.number,
                "status": lb.status,
                "label": lb.label or None,
                "confidence": lb.confidence,
                "model": lb.model,
                "labeled_at": lb.labeled_at.isoformat() if lb.labeled_at else None,
            }
            for lb in labels
        ],
        "decision": _decision_dict(current[-1], undone=False) if current else None,
        "decisions": [_decision_dict(d, undone=d.pk in undone) for d in decisions],
        "revisions": [
            {
                "revision": revision.number,
                "received_at": revision.received_at.isoformat(),
                "status": revision.status,
                "violation_score": revision.violation_score,
            }
            for revision in item.revisions.all()
        ],
    }


def _decision_dict(decision, *, undone: bool) -> dict:
    return {
        "revision": decision.revision,
        "action": decision.action,
        "reason": decision.reason,
        "undone": undone,
        "created_at": decision.created_at.isoformat(),
    }


def can_review(user) -> bool:
    """Reviewers (the `review_item` permission, e.g. the reviewer group) and admins."""
    return user.is_authenticated and (user.is_staff or user.has_perm("moderation.review_item"))


def can_review_escalated(user) -> bool:
    """Senior reviewers (`review_escalated`, e.g. the senior group) and admins."""
    return user.is_authenticated and (user.is_staff or user.has_perm("moderation.review_escalated"))


def reviewer_source_ids(user) -> frozenset[int] | None:
    """The sources a reviewer may review; None means all (admins, and reviewers with no
    source restriction)."""
    if user.is_staff:
        return None
    ids = frozenset(
        ReviewerSettings.sources.through.objects.filter(
            reviewersettings__user_id=user.pk
        ).values_list("source_id", flat=True)
    )
    return ids or None


def reviewer_settings(user) -> ReviewerSettings:
    """The reviewer's settings; the defaults (blur on, no budget) until they change one."""
    return ReviewerSettings.objects.filter(user_id=user.pk).first() or ReviewerSettings(user=user)


# What a reviewer can decide, in the order of the page's buttons, with their keys.
DECIDABLE = ("approve", "remove", "escalate")
ACTION_KEYS = {"approve": "a", "remove": "r", "escalate": "e"}


@dataclass(frozen=True)
class ActionChoice:
    value: str
    label: str
    key: str
    reasons: list[DecisionReason]
    reason_required: bool


def decision_actions() -> list[ActionChoice]:
    """The decision buttons with the active reasons of each (the first nine get digits)."""
    reasons: dict[str, list[DecisionReason]] = {action: [] for action in DECIDABLE}
    for reason in DecisionReason.objects.filter(active=True):
        if reason.action in reasons:
            reasons[reason.action].append(reason)
    labels = dict(Decision.Action.choices)
    return [
        ActionChoice(
            value=action,
            label=labels[action],
            key=ACTION_KEYS[action],
            reasons=reasons[action][:9],
            reason_required=action != Decision.Action.APPROVE,
        )
        for action in DECIDABLE
    ]


def escalated_items(*, reviewer) -> QuerySet[Item]:
    """Escalated items a senior may take, sorted like the main queue."""
    items = Item.objects.filter(status=Item.Status.ESCALATED)
    allowed = reviewer_source_ids(reviewer)
    if allowed is not None:
        items = items.filter(source_id__in=allowed)
    # The queue key: served by item_queue_escalated_idx, past-SLA items first in their band.
    return items.select_related("source", "claimed_by").order_by("queue_key", "id")


def decisions_by(
    *, reviewer, before: int | None = None, size: int = 50
) -> tuple[list[Decision], int | None]:
    """The reviewer's own decisions, newest first, by keyset on id."""
    decisions = Decision.objects.filter(reviewer=reviewer).select_related("item__source")
    if before is not None:
        decisions = decisions.filter(pk__lt=before)
    page = list(decisions.order_by("-pk")[: size + 1])
    return page[:size], (page[size - 1].pk if len(page) > size else None)


@dataclass(frozen=True)
class Exposure:
    reveals_today: int
    reveals_shift: int
    shift_minutes: int
    budget_reveals: int | None
    budget_minutes: int | None

    @property
    def over_budget(self) -> bool:
        """A wellness prompt, never a score: the workspace proposes a break."""
        return bool(
            (self.budget_reveals and self.reveals_shift >= self.budget_reveals)
            or (self.budget_minutes and self.shift_minutes >= self.budget_minutes)
        )


def exposure(user) -> Exposure:
    settings_row = ReviewerSettings.objects.filter(user_id=user.pk).first()
    now = timezone.now()
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    reveals = MediaReveal.objects.filter(reviewer_id=user.pk, revealed_at__gte=midnight)
    shift_from = shift_start(settings_row)
    first_activity = (
        Decision.objects.filter(reviewer_id=user.pk, created_at__gte=shift_from)
        .order_by("created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    started = first_activity or now
    return Exposure(
        reveals_today=reveals.count(),
        reveals_shift=reveals.filter(revealed_at__gte=shift_from).count(),
        shift_minutes=int((now - started).total_seconds() // 60),
        budget_reveals=settings_row.exposure_budget_reveals if settings_row else None,
        budget_minutes=settings_row.exposure_budget_minutes if settings_row else None,
    )


def team_exposure() -> list[dict]:
    """Per reviewer, today: decisions made and media revealed (for leads and admins)."""
    midnight = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    decided = dict(
        # System decisions (auto-approvals) have no reviewer: not anyone's throughput.
        Decision.objects.filter(created_at__gte=midnight, reviewer__isnull=False)
        .values_list("reviewer__username")
        .annotate(n=Count("id"))
    )
    revealed = dict(
        MediaReveal.objects.filter(revealed_at__gte=midnight)
        .values_list("reviewer__username")
        .annotate(n=Count("id"))
    )
    return [
        {"reviewer": name, "decisions": decided.get(name, 0), "reveals": revealed.get(name, 0)}
        for name in sorted(set(decided) | set(revealed))
    ]


def decision_event(decision: Decision, *, include_reviewer: bool) -> dict:
    """A decision as products receive it, in a callback's `data` and in the decisions feed.
    The reviewer's identity only when an admin allowed it for the source."""
    item = decision.item
    event = {
        "decision_id": decision.pk,
        "item_id": item.pk,
        "external_id": item.external_id,
        "revision": decision.revision,
        "action": decision.action,
        "reason": decision.reason,
        "decided_at": decision.created_at.isoformat(),
        # An undo names the decision it reverses; the item is undecided again.
        "undoes": decision.undoes_id,
        # Made by the system (a labeler's auto-approve band), not by a person.
        "automatic": decision.reviewer_id is None,
    }
    if include_reviewer:
        reviewer = decision.reviewer
        # None for a decision no person made (an automatic one).
        event["reviewer"] = reviewer and {"id": reviewer.pk, "username": reviewer.get_username()}
    return event


DECISIONS_PAGE_SIZE = 100
DECISIONS_PAGE_MAX = 1000


def decisions_page(*, source: Source, since: int, size: int) -> tuple[list[dict], int, bool]:
    """The source's decisions after the cursor (a decision id), oldest first; the next cursor
    and whether more wait. Keyset by id: decision_record takes the source's row lock before
    it inserts, so a source's decision ids commit in order and a reader that has seen id N
    will never see a smaller one appear later (no skips), and `id > cursor` never repeats."""
    rows = list(
        Decision.objects.filter(item__source=source, pk__gt=since)
        .select_related("item", "reviewer")
        .order_by("pk")[: size + 1]
    )
    page = rows[:size]
    events = [
        decision_event(decision, include_reviewer=source.callback_include_reviewer)
        for decision in page
    ]
    cursor = page[-1].pk if page else since
    return events, cursor, len(rows) > size


# --- Golden items ----------------------------------------------------------------------------

# Golden items ride along with the main queue only: the failed and escalated queues are
# small, and a decided item there would stand out.
GOLDEN_QUEUES = ("undecided", "mine")


def golden_share(user) -> float:
    """The share of this reviewer's "next" items that are golden: their own setting, else the
    site's REVIEW_GOLDEN_SHARE."""
    own = (
        ReviewerSettings.objects.filter(user_id=user.pk)
        .values_list("golden_share", flat=True)
        .first()
    )
    share = own if own is not None else settings.REVIEW_GOLDEN_SHARE
    return min(1.0, max(0.0, share))


def golden_due(user, *, draw: Callable[[], float] = random.random) -> bool:
    """Whether this "next" should be a golden item: true with the reviewer's share as its
    probability. `draw` returns a number in [0, 1) (tests pass a seeded one); a share of 0
    never draws, 1 always does."""
    share = golden_share(user)
    return share > 0 and draw() < share


def golden_next(
    *, reviewer, filters: QueueFilter, exclude_item_ids: Iterable[int] = ()
) -> GoldenItem | None:
    """A golden item to serve to this reviewer under the queue's filters: active, its item
    still decided at the revision the expected action is about, of a source they may review,
    never served to them before, and not an item they decided themselves (they would know
    the answer). Oldest first, so every golden item gets answers."""
    if filters.status not in GOLDEN_QUEUES:
        return None
    allowed = reviewer_source_ids(reviewer)
    served = GoldenAnswer.objects.filter(golden_id=OuterRef("pk"), reviewer_id=reviewer.pk)
    decided_by_them = Decision.objects.filter(item_id=OuterRef("item_id"), reviewer_id=reviewer.pk)
    candidates = GoldenItem.objects.filter(
        _filter_q(filters, allowed=allowed, prefix="item__"),
        active=True,
        item__status=Item.Status.DECIDED,
        item__revision=F("revision"),
    ).filter(~Exists(served), ~Exists(decided_by_them))
    if filters.score_min is not None:
        candidates = candidates.filter(item__violation_score__gte=filters.score_min)
    if filters.score_max is not None:
        candidates = candidates.filter(item__violation_score__lte=filters.score_max)
    exclude = list(exclude_item_ids)
    if exclude:
        candidates = candidates.exclude(item_id__in=exclude)
    return candidates.select_related("item").order_by("created_at", "id").first()


# How long a golden item served and not answered keeps its disguise for the reviewer. A real
# waiting item left that long would have been decided by someone else meanwhile, so seeing
# it decided then gives nothing away; without a limit, an item once served and left (a
# closed tab) would stay "waiting" on that reviewer's page for good.
GOLDEN_OPEN_FOR = timedelta(days=1)


def golden_answer_open(*, reviewer, item: Item, now: datetime | None = None) -> GoldenAnswer | None:
    """The golden answer this reviewer owes on this item (skipped ones too: they may come
    back to it), while the item still stands as it did when it was made golden and for
    GOLDEN_OPEN_FOR after it was served; their item page then shows it as an undecided
    queue item. None once answered, once that time is up, or if the item changed since
    (an undo, a re-review, an edit): then it is an ordinary item again."""
    if item.status != Item.Status.DECIDED:
        return None
    now = now or timezone.now()
    return (
        GoldenAnswer.objects.filter(
            reviewer_id=reviewer.pk,
            golden__item_id=item.pk,
            golden__revision=item.revision,
            answered_at__isnull=True,
            served_at__gt=now - GOLDEN_OPEN_FOR,
        )
        .select_related("golden")
        .first()
    )


def golden_shown_status(item: Item) -> str:
    """The queue status a golden item is shown with: where it stood before its first decision
    on this revision (flagged, failed, audit ...), so the page reads like any waiting item."""
    before: str | None = (
        Decision.objects.filter(item_id=item.pk, revision=item.revision)
        .order_by("created_at", "id")
        .values_list("status_before", flat=True)
        .first()
    )
    if before in (Item.Status.RECEIVED, Item.Status.LABELING, Item.Status.LABELED):
        # Decided without entering the queue (the system's auto-approval): unflagged items
        # reach a reviewer only as audit samples, so that is what it reads as.
        return str(Item.Status.AUDIT)
    return before if before in IN_QUEUE else str(Item.Status.FLAGGED)


def item_current_decision(item: Item) -> Decision | None:
    """The decision a decided item stands on: its latest (an undo would have reopened it)."""
    if item.status != Item.Status.DECIDED:
        return None
    return item.decisions.order_by("-created_at", "-id").first()


@dataclass(frozen=True)
class GoldenWeek:
    starts: datetime
    answered: int
    correct: int

    @property
    def share(self) -> float | None:
        return self.correct / self.answered if self.answered else None


@dataclass(frozen=True)
class GoldenAgreement:
    reviewer_id: int
    reviewer: str
    answered: int
    correct: int
    weeks: list[GoldenWeek]
    # Served and skipped (or released): counted apart, since many skips would leave the
    # share correct resting on the items the reviewer chose to answer.
    skipped: int = 0

    @property
    def share(self) -> float | None:
        return self.correct / self.answered if self.answered else None

    @property
    def wrong(self) -> int:
        return self.answered - self.correct


def golden_agreement(*, weeks: int = 8, now: datetime | None = None) -> list[GoldenAgreement]:
    """Per reviewer with answers or skips: golden items answered, how many matched the
    expected action, and the same per week (weeks start on Monday, UTC) for the last `weeks`
    weeks, oldest first; and how many they skipped. Answers to items no longer golden
    (unmarked) do not count."""
    now = now or timezone.now()
    this_week = (now - timedelta(days=now.weekday())).replace(
        hour=0, minute=0, second=0, microsecond=0
    )
    starts = [this_week - timedelta(weeks=n) for n in range(weeks - 1, -1, -1)]
    active = GoldenAnswer.objects.filter(golden__active=True)
    answers = active.filter(answered_at__isnull=False)
    correct = Count("id", filter=Q(correct=True))
    skip = Q(answered_at__isnull=True, action=GoldenAnswer.SKIP)
    totals = (
        active.filter(Q(answered_at__isnull=False) | skip)
        .values("reviewer_id", "reviewer__username")
        .annotate(
            answered=Count("id", filter=Q(answered_at__isnull=False)),
            correct=correct,
            skipped=Count("id", filter=skip),
        )
        .order_by("reviewer__username")
    )
    per_week: dict[tuple[int, datetime], tuple[int, int]] = {
        (row["reviewer_id"], row["week"]): (row["answered"], row["correct"])
        for row in answers.filter(answered_at__gte=starts[0])
        .annotate(week=TruncWeek("answered_at", tzinfo=UTC))
        .values("reviewer_id", "week")
        .annotate(answered=Count("id"), correct=correct)
        .order_by()
    }
    return [
        GoldenAgreement(
            reviewer_id=row["reviewer_id"],
            reviewer=row["reviewer__username"],
            answered=row["answered"],
            correct=row["correct"],
            weeks=[
                GoldenWeek(start, *per_week.get((row["reviewer_id"], start), (0, 0)))
                for start in starts
            ],
            skipped=row["skipped"],
        )
        for row in totals
    ]


def golden_wrong_answers(*, reviewer_id: int) -> QuerySet[GoldenAnswer]:
    """A reviewer's answers that missed the expected action, newest first (for leads)."""
    return (
        GoldenAnswer.objects.filter(reviewer_id=reviewer_id, correct=False, golden__active=True)
        .select_related("golden__item__source")
        .order_by("-answered_at", "-id")
    )
