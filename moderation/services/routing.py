"""Routing items to team queues (the rules' changes: moderation/services/routing_rules.py).

An item is routed when it enters review and again whenever its facts change (a new label
or verdict, a report, an edit, a new strike of its author): the first enabled rule whose
conditions all hold sends it to that rule's queue, no match to the default queue. Only
undecided items nobody holds are moved: a reviewer's claimed item stays where they took it.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.db.models import Q
from django.utils import timezone

from moderation.models import (
    REVIEWABLE,
    Item,
)
from moderation.routing import (
    RuleSet,
    items_facts,
    queue_row,
    queue_rows,
    route_facts,
    rule_set,
)

# Items of an author re-routed after a new strike: their open items, at most this many
# (an author with more has them re-routed as their other facts change).
AUTHOR_REROUTE_LIMIT = 200
# What routing reads of an item's row (not its text or metadata).
_ROUTING_FIELDS = (
    "id",
    "source_id",
    "author_id",
    "queue_id",
    "revision",
    "violation_score",
    "content_image",
    "content_video",
    "language",
)
# Waiting items re-routed per batch after a rule change (the task goes on until done).
REROUTE_BATCH = 500


def _movable(now) -> Q:
    """Undecided items that nobody holds a live claim on."""
    return Q(status__in=REVIEWABLE) & (Q(claimed_by__isnull=True) | Q(claim_expires_at__lt=now))


def item_route(*, item_id: int) -> bool:
    """Route one item by the rules; True if it moved. No rules: nothing to do (no query)."""
    return bool(items_route(item_ids=[item_id]))


def items_route(
    *, item_ids: Iterable[int], rules: RuleSet | None = None, rerouting: bool = False
) -> int:
    """Route these items (those still movable); returns how many moved. `rerouting`: after
    a rule change (with no rules left, items in team queues go back to the default one)."""
    rules = rules or rule_set()
    ids = list(item_ids)
    if not ids:
        return 0
    now = timezone.now()
    if not rules.rules and not rerouting:
        # Every item belongs in the default queue, where it already is: when the last rule
        # went, the change re-routed the waiting items (items_reroute_waiting). No query.
        return 0
    if not rules.rules:
        return Item.objects.filter(_movable(now), pk__in=ids, queue__isnull=False).update(
            queue=None
        )
    items = Item.objects.filter(_movable(now), pk__in=ids).only(*_ROUTING_FIELDS)
    if "strikes" in rules.needs:
        items = items.select_related("source").only(*_ROUTING_FIELDS, "source__strike_window_days")
    loaded = list(items)
    if not loaded:
        return 0
    # The facts of all of them, the extra ones in one query; the rules matched in memory.
    facts = items_facts(loaded, needs=rules.needs)
    moved = 0
    for item in loaded:
        queue_id, _ = route_facts(rules, facts[item.pk])
        if queue_id == item.queue_id:
            continue
        # Conditional: a reviewer who claimed it meanwhile keeps it where it was.
        moved += Item.objects.filter(_movable(timezone.now()), pk=item.pk).update(queue=queue_id)
    return moved


def item_queue_audit_share(*, item_id: int, violation_score: float | None) -> float | None:
    """The audit share of the queue this item would be routed to with this violation score,
    when that queue has one of its own; None: the labelers' shares decide. No query unless
    some queue has an audit share and rules route items out of the default queue."""
    rows = queue_rows()
    if all(row.audit_share is None for row in rows):
        return None
    rules = rule_set()
    queue_value = None
    if rules.rules:
        item = Item.objects.filter(pk=item_id).only(*_ROUTING_FIELDS)
        if "strikes" in rules.needs:
            item = item.select_related("source").only(
                *_ROUTING_FIELDS, "source__strike_window_days"
            )
        found = item.first()
        if found is None:
            return None
        found.violation_score = violation_score
        queue_value, _ = route_facts(rules, items_facts([found], needs=rules.needs)[found.pk])
    row = queue_row(queue_value)
    return None if row is None else row.audit_share


def author_items_route(*, author_id: int) -> int:
    """A new strike: the author's waiting items, when a rule counts strikes."""
    rules = rule_set()
    if "strikes" not in rules.needs:
        return 0
    ids = list(
        Item.objects.filter(author_id=author_id, status__in=REVIEWABLE)
        .order_by("id")
        .values_list("id", flat=True)[:AUTHOR_REROUTE_LIMIT]
    )
    return items_route(item_ids=ids, rules=rules)


def items_reroute_waiting(*, after_id: int = 0, batch: int = REROUTE_BATCH) -> int | None:
    """One batch of waiting items re-routed after a rule change; the last id done, or None
    when none are left."""
    ids = list(
        Item.objects.filter(status__in=REVIEWABLE, pk__gt=after_id)
        .order_by("id")
        .values_list("id", flat=True)[:batch]
    )
    if not ids:
        return None
    items_route(item_ids=ids, rerouting=True)
    return ids[-1]
