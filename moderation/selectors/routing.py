"""The routing page's reads: queues and rules in order, the rules' history, and the preview
of a rule change against recent items (how many would move from which queue to which)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from django.db.models import Case, Count, IntegerField, QuerySet, Value, When
from django.utils import timezone

from moderation.models import Item, Queue, RoutingChange, RoutingRule
from moderation.routing import CompiledRule, rule_q, rule_set

PREVIEW_DAYS = 7
PREVIEW_DAYS_MAX = 90
PREVIEW_EXAMPLES = 3
PREVIEW_PAIRS_WITH_EXAMPLES = 6
# The default queue's number in the preview's CASE (items in it have no queue).
_DEFAULT = 0


def routing_rules() -> QuerySet[RoutingRule]:
    return RoutingRule.objects.select_related("queue").order_by("position", "id")


def routing_queues() -> QuerySet[Queue]:
    return Queue.objects.select_related("team").order_by("-is_default", "name")


def routing_history(*, limit: int = 50) -> QuerySet[RoutingChange]:
    """The latest changes, newest first, with who made them."""
    return RoutingChange.objects.select_related("actor").order_by("-id")[:limit]


@dataclass(frozen=True)
class Move:
    source: Queue | None  # None: a queue gone since (never: queues are protected)
    target: Queue | None
    count: int
    examples: list[Item]


@dataclass(frozen=True)
class Preview:
    days: int
    total: int  # items received in the window
    moves: list[Move]

    @property
    def moved(self) -> int:
        return sum(move.count for move in self.moves)


def _case(rules: tuple[CompiledRule, ...], now) -> Case | Value:
    whens = [
        When(rule_q(rule.conditions, now=now), then=Value(rule.queue_id or _DEFAULT))
        for rule in rules
    ]
    if not whens:
        return Value(_DEFAULT, output_field=IntegerField())
    return Case(*whens, default=Value(_DEFAULT), output_field=IntegerField())


def routing_preview(*, proposed: list[RoutingRule], days: int = PREVIEW_DAYS, now=None) -> Preview:
    """How the items received in the last `days` would be routed by `proposed` (the rules
    in order as they would be after the change, unsaved) against the rules in force: per
    (from, to) pair, how many, with a few examples. One grouped query over the window (the
    conditions as SQL, moderation.routing.rule_q), then a small one per pair shown."""
    now = now or timezone.now()
    current = rule_set().rules
    after = rule_set(proposed).rules
    window = Item.objects.filter(received_at__gte=now - timedelta(days=days)).annotate(
        before_queue=_case(current, now), after_queue=_case(after, now)
    )
    rows = list(window.order_by().values("before_queue", "after_queue").annotate(n=Count("id")))
    total = sum(row["n"] for row in rows)
    moved = sorted(
        (row for row in rows if row["before_queue"] != row["after_queue"]),
        key=lambda row: -row["n"],
    )
    queues = {queue.pk: queue for queue in Queue.objects.all()}
    default = next((queue for queue in queues.values() if queue.is_default), None)

    def queue_of(value: int) -> Queue | None:
        return default if value == _DEFAULT else queues.get(value)

    moves = []
    for n, row in enumerate(moved):
        examples: list[Item] = []
        if n < PREVIEW_PAIRS_WITH_EXAMPLES:
            examples = list(
                window.filter(before_queue=row["before_queue"], after_queue=row["after_queue"])
                .select_related("source")
                .order_by("-id")[:PREVIEW_EXAMPLES]
            )
        moves.append(
            Move(
                source=queue_of(row["before_queue"]),
                target=queue_of(row["after_queue"]),
                count=row["n"],
                examples=examples,
            )
        )
    return Preview(days=days, total=total, moves=moves)
