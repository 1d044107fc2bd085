"""The routing rules' and queues' changes: each one a row of the rules' history (who, when,
before and after; its id is the rules' version) and an audit entry; after it commits every
process reloads the rules and the waiting items are routed again."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.db.models import Max

from audit.services import audit_record
from moderation.models import Queue, RoutingChange, RoutingRule
from moderation.routing import conditions_clean, rules_invalidate
from moderation.tasks import items_reroute_task


def rule_snapshot(rule: RoutingRule) -> dict[str, Any]:
    return {
        "name": rule.name,
        "queue": rule.queue_id,
        "queue_name": rule.queue.name,
        "position": rule.position,
        "enabled": rule.enabled,
        "conditions": rule.conditions,
    }


def _changed(*, actor, kind: str, rule: RoutingRule | None, name: str, before, after) -> None:
    """One row of the rules' history (its id is the rules' new version), audited; every
    process reloads the rules, and the waiting items are re-routed once it commits."""
    RoutingChange.objects.create(
        actor=actor, kind=kind, rule=rule, rule_name=name, before=before, after=after
    )
    audit_record(
        action=f"routing_rule.{kind}",
        actor=actor,
        obj=rule,
        before=before,
        after=after,
    )
    # This process sees its own change at once (its transaction holds the new version),
    # and again once it commits; the waiting items are re-routed after the commit.
    rules_invalidate()
    transaction.on_commit(rules_invalidate)
    items_reroute_task.delay_on_commit(0)


@transaction.atomic
def rule_save(
    *,
    actor,
    rule: RoutingRule | None,
    name: str,
    queue: Queue,
    conditions: Any,
    enabled: bool = True,
) -> RoutingRule:
    """Create a rule (last in order) or change one; ConditionError names a bad field."""
    clean = conditions_clean(conditions)
    name = name.strip()[:100]
    if rule is None:
        last = RoutingRule.objects.aggregate(last=Max("position"))["last"]
        rule = RoutingRule.objects.create(
            name=name,
            queue=queue,
            conditions=clean,
            enabled=enabled,
            position=0 if last is None else last + 1,
        )
        _changed(
            actor=actor, kind="create", rule=rule, name=name, before=None, after=rule_snapshot(rule)
        )
        return rule
    locked = RoutingRule.objects.select_for_update().select_related("queue").get(pk=rule.pk)
    before = rule_snapshot(locked)
    locked.name, locked.queue, locked.conditions, locked.enabled = name, queue, clean, enabled
    locked.save()
    after = rule_snapshot(locked)
    if after != before:
        _changed(actor=actor, kind="update", rule=locked, name=name, before=before, after=after)
    return locked


@transaction.atomic
def rule_enable(*, actor, rule: RoutingRule, enabled: bool) -> None:
    locked = RoutingRule.objects.select_for_update().select_related("queue").get(pk=rule.pk)
    if locked.enabled == enabled:
        return
    before = rule_snapshot(locked)
    locked.enabled = enabled
    locked.save(update_fields=["enabled", "updated_at"])
    _changed(
        actor=actor,
        kind="enable" if enabled else "disable",
        rule=locked,
        name=locked.name,
        before=before,
        after=rule_snapshot(locked),
    )


@transaction.atomic
def rule_move(*, actor, rule: RoutingRule, up: bool) -> None:
    """Swap the rule with its neighbour above (or below); positions are renumbered 0..n-1."""
    rules = list(RoutingRule.objects.select_for_update().order_by("position", "id"))
    index = next(n for n, other in enumerate(rules) if other.pk == rule.pk)
    target = index - 1 if up else index + 1
    if not 0 <= target < len(rules):
        return
    before = [other.pk for other in rules]
    rules[index], rules[target] = rules[target], rules[index]
    for position, other in enumerate(rules):
        if other.position != position:
            other.position = position
            other.save(update_fields=["position", "updated_at"])
    moved = rules[target]
    _changed(
        actor=actor,
        kind="move",
        rule=moved,
        name=moved.name,
        before={"order": before},
        after={"order": [other.pk for other in rules]},
    )


@transaction.atomic
def rule_delete(*, actor, rule: RoutingRule) -> None:
    locked = RoutingRule.objects.select_for_update().select_related("queue").get(pk=rule.pk)
    before = rule_snapshot(locked)
    name = locked.name
    _changed(actor=actor, kind="delete", rule=locked, name=name, before=before, after=None)
    locked.delete()


def default_queue() -> Queue:
    """The default queue (the migration makes it; a database built without migrations, e.g.
    a test's, gets it here)."""
    queue, _ = Queue.objects.get_or_create(is_default=True, defaults={"name": "Default"})
    return queue


_QUEUE_FIELDS = (
    "name",
    "team_id",
    "sla_minutes",
    "allowed_actions",
    "always_grayscale",
    "always_blur",
    "exposure_budget_reveals",
    "audit_share",
    "golden_share",
)


@transaction.atomic
def queue_save(*, actor, queue: Queue | None, **values) -> Queue:
    """Create or change a queue (the form has checked the values)."""
    unknown = set(values) - set(_QUEUE_FIELDS)
    if unknown:
        raise ValueError(f"not a queue setting: {sorted(unknown)}")
    before = None if queue is None else {name: getattr(queue, name) for name in _QUEUE_FIELDS}
    queue = queue or Queue()
    for name, value in values.items():
        setattr(queue, name, value)
    queue.save()
    after = {name: getattr(queue, name) for name in _QUEUE_FIELDS}
    audit_record(
        action="routing_queue.create" if before is None else "routing_queue.update",
        actor=actor,
        obj=queue,
        before=before,
        after=after,
    )
    RoutingChange.objects.create(
        actor=actor, kind="queue", rule=None, rule_name=queue.name, before=before, after=after
    )
    rules_invalidate()
    transaction.on_commit(rules_invalidate)
    return queue
