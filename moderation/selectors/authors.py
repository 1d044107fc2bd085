"""Reads about authors: the item page's author panel, the author's page (a keyset-paginated
timeline), the seniors' list of proposed account actions, the author API, and the
account.action.created event products receive."""

from __future__ import annotations

import heapq
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from django.db import connection
from django.db.models import Count, Q, QuerySet, Sum
from django.utils import timezone

from moderation.models import (
    FOR_PRODUCTS,
    REMOVE_ALL_BATCH,
    REVIEWABLE,
    AccountAction,
    AccountActionProposal,
    Appeal,
    Author,
    Decision,
    Item,
    Source,
    Strike,
)
from moderation.selectors.appeals import appeal_event, appeals_decided_after
from moderation.selectors.decisions import decision_event, decision_sequences
from moderation.selectors.statements import (
    appeal_until,
    decision_facts,
    removal_statements,
    statement_of_reasons,
)


def author_counts(author: Author) -> dict[str, int]:
    """Items received, flagged (ever), and removed (the decision they stand on), exactly,
    in one query (the API's figures; the item page's panel caps them)."""
    counts = Item.objects.filter(author=author).aggregate(
        items=Count("id"),
        flagged=Count("id", filter=Q(flagged_at__isnull=False)),
        removed=Count("id", filter=_REMOVED),
    )
    return {name: counts[name] or 0 for name in ("items", "flagged", "removed")}


# An item removed as things stand: the filter of item_author_removed_idx.
_REMOVED = Q(status=Item.Status.DECIDED, decided_action=Decision.Action.REMOVE)


def active_strike_count(
    author: Author, *, source: Source | None = None, now: datetime | None = None
) -> int:
    """`source`: the author's, when the caller has it at hand (saves a query)."""
    now = now or timezone.now()
    window = (source or author.source).strike_window_days
    since = now - timedelta(days=window)
    total = Strike.objects.filter(
        author=author, withdrawn_at__isnull=True, created_at__gt=since
    ).aggregate(total=Sum("weight"))["total"]
    return total or 0


def strike_counts(authors: list[Author], *, now: datetime | None = None) -> dict[int, int]:
    """Active strikes of several authors (a queue page's rows) in one query."""
    now = now or timezone.now()
    conditions = Q()
    for author in authors:
        since = now - timedelta(days=author.source.strike_window_days)
        conditions |= Q(author_id=author.pk, created_at__gt=since)
    if not authors:
        return {}
    rows = (
        Strike.objects.filter(conditions, withdrawn_at__isnull=True)
        .values("author_id")
        .annotate(total=Sum("weight"))
    )
    return {row["author_id"]: row["total"] for row in rows}


def authors_strikes(items: list[Item]) -> None:
    """Give each item of a page its `author_strikes` (None without an author): two
    queries, whatever the page holds."""
    author_ids = {item.author_id for item in items if item.author_id}
    authors = list(Author.objects.filter(pk__in=author_ids).select_related("source"))
    counts = strike_counts(authors)
    for item in items:
        item.author_strikes = counts.get(item.author_id, 0) if item.author_id else None


def author_actions(author: Author, *, limit: int | None = None) -> list[AccountAction]:
    actions = AccountAction.objects.filter(author=author).order_by("-id")
    return list(actions[:limit] if limit else actions)


def _action_dict(action: AccountAction) -> dict[str, Any]:
    return {
        "account_action_id": action.pk,
        "action": action.action,
        "until": action.until.isoformat() if action.until else None,
        "created_at": action.created_at.isoformat(),
        # Set when an appeal overturned it: the action no longer stands.
        "lifted_at": action.lifted_at.isoformat() if action.lifted_at else None,
    }


def author_api_dict(author: Author) -> dict[str, Any]:
    """GET /api/authors/<id>/: the author's counts, active strikes and account actions."""
    return {
        "id": author.external_id,
        "name": author.name,
        "url": author.url,
        **author_counts(author),
        "active_strikes": active_strike_count(author),
        "actions": [_action_dict(action) for action in author_actions(author)],
    }


# The panel's counts stop here ("1,000+"): each is then an index range of at most this many
# entries, so a prolific author's panel costs what a newcomer's does.
PANEL_COUNT_CAP = 1_000


class PanelCount(NamedTuple):
    """A count that stops at PANEL_COUNT_CAP."""

    n: int

    @property
    def capped(self) -> bool:
        return self.n > PANEL_COUNT_CAP

    def __str__(self) -> str:
        return f"{PANEL_COUNT_CAP:,}+" if self.capped else f"{self.n:,}"


@dataclass(frozen=True)
class AuthorPanel:
    author: Author
    account_age: timedelta | None
    items: PanelCount
    flagged: PanelCount
    removed: PanelCount
    active_strikes: int
    actions: list[AccountAction]
    proposals: int
    # More than PANEL_COUNT_CAP strikes stand: active_strikes sums the latest of them only
    # (shown as "N+"; an author that far past every threshold needs no exact figure).
    strikes_capped: bool = False


PANEL_ACTIONS = 5


def author_panel(item: Item) -> AuthorPanel | None:
    """The item page's author panel: one query whatever the author's history, and one more
    for an author with account actions (the author comes with the item)."""
    if item.author is None:
        return None
    return author_panel_for(item.author, source=item.source)


def _sql(rows: QuerySet) -> tuple[str, tuple]:
    sql, params = rows.query.sql_with_params()
    return sql, tuple(params)


def _capped(rows: QuerySet, *order: str) -> tuple[str, tuple]:
    """COUNT(*) over a LIMITed subquery: at most PANEL_COUNT_CAP + 1 rows read. `order`:
    the order of the index to read, where the planner would otherwise pick a scan of the
    table (it expects a prolific author's rows anywhere, and finds them all at its end)."""
    sql, params = _sql(rows.order_by(*order).values("pk")[: PANEL_COUNT_CAP + 1])
    return f"SELECT COUNT(*) FROM ({sql}) AS capped", params  # noqa: S608


# Every figure of the panel in one round trip, written out: the item page runs it on every
# view, and compiling five querysets cost more than running them. Each count reads one
# index range of at most PANEL_COUNT_CAP + 1 entries: item_author_idx (backwards, so the
# planner never scans the table for a prolific author), item_author_flagged_idx,
# item_author_removed_idx; strikes read strike_author_idx backwards, at most as many
# (an author with 10,000 standing strikes made it a scan of the strikes table).
_PANEL_SQL = f"""
SELECT
  (SELECT COUNT(*) FROM (SELECT id FROM {Item._meta.db_table} WHERE author_id = %(author)s
     ORDER BY received_at DESC, id DESC LIMIT %(cap)s) AS capped),
  (SELECT COUNT(*) FROM (SELECT id FROM {Item._meta.db_table} WHERE author_id = %(author)s
     AND flagged_at IS NOT NULL LIMIT %(cap)s) AS capped),
  (SELECT COUNT(*) FROM (SELECT id FROM {Item._meta.db_table} WHERE author_id = %(author)s
     AND status = %(decided)s AND decided_action = %(remove)s LIMIT %(cap)s) AS capped),
  strikes.total, strikes.n,
  (SELECT COUNT(*) FROM {AccountActionProposal._meta.db_table}
     WHERE author_id = %(author)s AND status = %(proposed)s),
  EXISTS (SELECT 1 FROM {AccountAction._meta.db_table} WHERE author_id = %(author)s)
FROM (SELECT SUM(weight) AS total, COUNT(*) AS n FROM (
  SELECT weight FROM {Strike._meta.db_table} WHERE author_id = %(author)s
    AND withdrawn_at IS NULL AND created_at > %(since)s
  ORDER BY created_at DESC, id DESC LIMIT %(cap)s) AS recent) AS strikes
"""  # noqa: S608 (table names from the models, every value a parameter)


def author_panel_for(author: Author, *, source: Source | None = None) -> AuthorPanel:
    """Every figure of the panel in one query, and the latest actions in another when the
    author has any."""
    now = timezone.now()
    window = (source or author.source).strike_window_days
    params = {
        "author": author.pk,
        "cap": PANEL_COUNT_CAP + 1,
        "decided": Item.Status.DECIDED.value,
        "remove": Decision.Action.REMOVE.value,
        "since": connection.ops.adapt_datetimefield_value(now - timedelta(days=window)),
        "proposed": AccountActionProposal.Status.PROPOSED.value,
    }
    with connection.cursor() as cursor:
        cursor.execute(_PANEL_SQL, params)
        n_items, n_flagged, n_removed, strikes, n_strikes, proposals, acted = cursor.fetchone()
    return AuthorPanel(
        author=author,
        account_age=now - author.account_created_at if author.account_created_at else None,
        items=PanelCount(n_items),
        flagged=PanelCount(n_flagged),
        removed=PanelCount(n_removed),
        active_strikes=strikes or 0,
        strikes_capped=n_strikes > PANEL_COUNT_CAP,
        # Most authors never had an action: then no second query.
        actions=author_actions(author, limit=PANEL_ACTIONS) if acted else [],
        proposals=proposals or 0,
    )


# --- The author's page: a timeline, newest first, keyset-paginated ---------------------------

TIMELINE_PAGE = 50


@dataclass(frozen=True)
class TimelineEntry:
    kind: str  # item, strike, action, proposal, appeal
    at: datetime
    pk: int
    obj: Any

    @property
    def key(self) -> tuple[datetime, int, int]:
        return (self.at, _RANK[self.kind], self.pk)


# Within one instant, entries sort by kind (a removal's strike after its item's receipt...).
_RANK = {"item": 0, "strike": 1, "proposal": 2, "action": 3, "appeal": 4}
_STREAMS: dict[str, tuple[type, str]] = {
    "item": (Item, "received_at"),
    "strike": (Strike, "created_at"),
    "proposal": (AccountActionProposal, "proposed_at"),
    "action": (AccountAction, "created_at"),
    "appeal": (Appeal, "received_at"),
}


def timeline_cursor(entry: TimelineEntry) -> str:
    return f"{entry.at.isoformat()}~{_RANK[entry.kind]}~{entry.pk}"


def _parse_cursor(value: str | None) -> tuple[datetime, int, int] | None:
    if not value:
        return None
    try:
        at, rank, pk = value.split("~")
        moment = datetime.fromisoformat(at)
        if moment.tzinfo is None:
            return None
        return moment, int(rank), int(pk)
    except ValueError:
        return None


def _before(kind: str, time_field: str, cursor: tuple[datetime, int, int] | None) -> Q:
    """Entries of one stream that sort after the cursor (older), as a condition on its
    index (author, time, id)."""
    if cursor is None:
        return Q()
    at, rank, pk = cursor
    own = _RANK[kind]
    older = Q(**{f"{time_field}__lt": at})
    if own < rank:
        return older | Q(**{time_field: at})
    if own == rank:
        return older | Q(**{time_field: at, "pk__lt": pk})
    return older


def author_timeline(
    author: Author, *, after: str | None = None, size: int = TIMELINE_PAGE
) -> tuple[list[TimelineEntry], str | None]:
    """One page of the author's timeline, newest first, and the cursor of the next page.

    Each stream (items, strikes, proposals, actions, appeals) reads at most size + 1 rows from its
    own index, past the cursor: an author with 100,000 items opens as fast as one with ten,
    at any depth."""
    cursor = _parse_cursor(after)
    streams = []
    for kind, (model, time_field) in _STREAMS.items():
        rows: QuerySet = model.objects.filter(author=author).filter(
            _before(kind, time_field, cursor)
        )
        if kind == "item":
            rows = rows.only(
                "id",
                "external_id",
                "status",
                "violation_score",
                "received_at",
                "content_text",
                "author_id",
                "source_id",
                "revision",
            )
        elif kind == "proposal":
            rows = rows.select_related("decided_by")
        elif kind == "action":
            rows = rows.select_related("created_by")
        elif kind == "appeal":
            rows = rows.select_related("decided_by", "account_action")
        rows = rows.order_by(f"-{time_field}", "-id")[: size + 1]
        streams.append([TimelineEntry(kind, getattr(row, time_field), row.pk, row) for row in rows])
    merged = list(
        heapq.merge(*streams, key=lambda entry: entry.key, reverse=True)
    )  # each stream is sorted newest first already
    page = merged[:size]
    _attach_decisions(page)
    following = timeline_cursor(page[-1]) if len(merged) > size else None
    return page, following


def _attach_decisions(page: list[TimelineEntry]) -> None:
    """The decisions of the page's items and strikes, in one query."""
    items = [entry.obj for entry in page if entry.kind == "item"]
    strikes = [entry.obj for entry in page if entry.kind == "strike"]
    ids = {item.pk for item in items} | {strike.item_id for strike in strikes}
    by_item: dict[int, list[Decision]] = {}
    for decision in (
        Decision.objects.filter(item_id__in=ids).select_related("reviewer").order_by("id")
    ):
        by_item.setdefault(decision.item_id, []).append(decision)
    for item in items:
        item.timeline_decisions = by_item.get(item.pk, [])
    by_id = {d.pk: d for decisions in by_item.values() for d in decisions}
    for strike in strikes:
        strike.timeline_decision = by_id.get(strike.decision_id)


def author_open_items(author: Author) -> QuerySet[Item]:
    """The author's items waiting for a person (the queue's statuses and escalated ones)."""
    return Item.objects.filter(author=author, status__in=REVIEWABLE).order_by("id")


class OpenBatch(NamedTuple):
    """What "remove all" acts on: (id, revision) of the oldest REMOVE_ALL_BATCH open items;
    when there are more, how many in all (counted up to PANEL_COUNT_CAP), else None."""

    items: list[tuple[int, int]]
    total: PanelCount | None


def author_open_batch(author: Author) -> OpenBatch:
    items = list(author_open_items(author).values_list("id", "revision")[:REMOVE_ALL_BATCH])
    if len(items) < REMOVE_ALL_BATCH:
        return OpenBatch(items, None)
    sql, params = _capped(author_open_items(author))
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return OpenBatch(items, PanelCount(cursor.fetchone()[0]))


# --- Proposals: the seniors' "Accounts" list ---------------------------------------------------


def proposals_open(
    *, source_ids: frozenset[int] | None = None, author: Author | None = None
) -> list[AccountActionProposal]:
    """Proposals waiting for a senior, oldest first, each with `strikes_now`: the author's
    active strikes as they stand (strikes lapse and are withdrawn while a proposal waits;
    one below its threshold is marked, and confirming it needs saying so)."""
    rows = AccountActionProposal.objects.filter(
        status=AccountActionProposal.Status.PROPOSED
    ).select_related("author__source", "source")
    if source_ids is not None:
        rows = rows.filter(source_id__in=source_ids)
    if author is not None:
        rows = rows.filter(author=author)
    proposals = list(rows.order_by("id"))
    counts = strike_counts(list({p.author_id: p.author for p in proposals}.values()))
    for proposal in proposals:
        proposal.strikes_now = counts.get(proposal.author_id, 0)
        proposal.lapsed = proposal.strikes_now < proposal.threshold
    return proposals


# --- account.action.created ---------------------------------------------------------------------


def account_action_event(action: AccountAction) -> dict[str, Any]:
    """An account action as products receive it (callback `data`, the feed's events)."""
    return {
        "account_action_id": action.pk,
        "author_id": action.author.external_id,
        "action": action.action,
        "until": action.until.isoformat() if action.until else None,
        "active_strikes": action.active_strikes,
        "decision_ids": list(action.decision_ids),
        "created_at": action.created_at.isoformat(),
        "statement_of_reasons": account_statement_of_reasons(action),
    }


def account_statement_of_reasons(action: AccountAction) -> dict[str, Any]:
    """What the product shows its user (as the EU's DSA asks), in the shape every statement
    has (moderation/selectors/statements.py): the reason and the policy behind it, the facts
    relied on (the removals, each with its reason, strikes and what flagged the item),
    whether detection and decision were automatic, and how to appeal until when."""
    source = action.source
    decisions = list(
        Decision.objects.filter(pk__in=action.decision_ids)
        .select_related("item", "reason_choice")
        .order_by("id")
    )
    facts = decision_facts(decisions)
    weights = dict(
        Strike.objects.filter(decision_id__in=action.decision_ids).values_list(
            "decision_id", "weight"
        )
    )
    length = f" until {action.until:%Y-%m-%d %H:%M} UTC" if action.until else ""
    return statement_of_reasons(
        reason=f"{action.get_action_display()}: {action.active_strikes} active strikes",
        policy=(
            f"Each removal counts strikes by its reason for {source.strike_window_days} days; "
            f"{_threshold_text(source)}."
        ),
        action=f"{action.get_action_display()}{length}",
        facts=[{**facts[d.pk], "strikes": weights.get(d.pk, 0)} for d in decisions],
        # The strike count proposed it; a person confirmed it.
        automated_detection=True,
        automated_decision=False,
        appeal_until=appeal_until(source, action.created_at),
        appeal_how=(
            f"appeal with the account_action_id (POST /webhooks/{source.slug}/appeals/), "
            f"within {source.appeal_window_days} days of the action"
        ),
    )


def _threshold_text(source: Source) -> str:
    parts = []
    for entry in source.account_thresholds or []:
        if isinstance(entry, dict) and {"strikes", "action"} <= set(entry):
            days = f" {entry['days']} days" if entry.get("days") else ""
            parts.append(f"{entry['strikes']} active strikes: {entry['action']}{days}")
    return "; ".join(parts) if parts else "no thresholds are set"


# --- The decisions feed's account actions ---------------------------------------------------------


def account_actions_after(*, source: Source, since: int, size: int) -> list[AccountAction]:
    """The source's account actions after a cursor (an action id), oldest first: at most
    size + 1, so the feed knows whether more wait."""
    return list(
        AccountAction.objects.filter(source=source, pk__gt=since)
        .select_related("author", "source")
        .order_by("pk")[: size + 1]
    )


def events_page(
    *, source: Source, since: int, since_action: int, size: int, since_appeal: int = 0
) -> tuple[list[dict], tuple[int, int, int], bool]:
    """The decisions feed with every event type (`?events=all`): decision.created,
    account.action.created and appeal.decided after the cursor, oldest first, as {type,
    data}; the next cursor (last decision id, last action id, last appeal feed position) and
    whether more wait.

    Each kind is its own keyset (ids and appeal feed positions commit in order per source,
    see decisions_page), and a page takes a prefix of each, so no event is skipped or
    repeated."""
    decisions = list(
        # Escalations stay inside the team, as in decisions_page.
        Decision.objects.filter(FOR_PRODUCTS, item__source=source, pk__gt=since)
        .select_related("item__author", "reviewer", "reason_choice")
        .annotate(item_sequence=decision_sequences())
        .order_by("pk")[: size + 1]
    )
    statements = removal_statements(decisions[:size], source=source)
    actions = account_actions_after(source=source, since=since_action, size=size)
    appeals = appeals_decided_after(source=source, since=since_appeal, size=size)
    entries = heapq.merge(
        [(d.created_at, 0, d.pk, d) for d in decisions],
        [(a.created_at, 1, a.pk, a) for a in actions],
        [(a.decided_at, 2, a.feed_position, a) for a in appeals],
        key=lambda entry: entry[:3],
    )
    merged = list(entries)
    page = merged[:size]
    events = []
    last_decision, last_action, last_appeal = since, since_action, since_appeal
    for _, kind, pk, obj in page:
        if kind == 0:
            data = decision_event(
                obj, include_reviewer=source.callback_include_reviewer, statements=statements
            )
            events.append({"type": "decision.created", "data": data})
            last_decision = pk
        elif kind == 1:
            events.append({"type": "account.action.created", "data": account_action_event(obj)})
            last_action = pk
        else:
            events.append({"type": "appeal.decided", "data": appeal_event(obj)})
            last_appeal = pk
    return events, (last_decision, last_action, last_appeal), len(merged) > size


# --- Repeat offenders: authors by active strikes and open items, per source ----------------------

OVERVIEW_SORTS = ("strikes", "open")


@dataclass(frozen=True)
class AuthorRow:
    author: Author
    active_strikes: int
    open_items: int


def authors_overview(
    *, source_ids: frozenset[int] | None = None, sort: str = "strikes", limit: int = 100
) -> list[AuthorRow]:
    """The authors with the most active strikes (or open items), so a lead handles a repeat
    offender's items together: two grouped queries per source, each read from an index."""
    now = timezone.now()
    sources = Source.objects.order_by("pk")
    if source_ids is not None:
        sources = sources.filter(pk__in=source_ids)
    strikes: dict[int, int] = {}
    open_items: dict[int, int] = {}
    for source in sources:
        since = now - timedelta(days=source.strike_window_days)
        for row in (
            Strike.objects.filter(
                author__source=source, withdrawn_at__isnull=True, created_at__gt=since
            )
            .values("author_id")
            .annotate(total=Sum("weight"))
        ):
            strikes[row["author_id"]] = row["total"]
        for row in (
            Item.objects.filter(source=source, author__isnull=False, status__in=REVIEWABLE)
            .values("author_id")
            .annotate(total=Count("id"))
        ):
            open_items[row["author_id"]] = row["total"]
    ids = set(strikes) | set(open_items)
    if sort == "open":
        ranked = sorted(ids, key=lambda pk: (-open_items.get(pk, 0), -strikes.get(pk, 0), pk))
    else:
        ranked = sorted(ids, key=lambda pk: (-strikes.get(pk, 0), -open_items.get(pk, 0), pk))
    ranked = ranked[:limit]
    authors = Author.objects.select_related("source").in_bulk(ranked)
    return [
        AuthorRow(authors[pk], strikes.get(pk, 0), open_items.get(pk, 0))
        for pk in ranked
        if pk in authors
    ]
