"""Routing rules' conditions: what a rule may say, an item's facts, and the two ways a rule
is matched: in memory against one item's facts (routing, moderation/services/routing.py)
and as SQL over many items (the preview, moderation/selectors/routing.py). The rules
themselves are kept in memory per process, reloaded when their version (the highest
RoutingChange id) moves.

Conditions are a JSON object; every key present must hold (a conjunction), an empty object
matches every item:

    sources         [source id, ...]       the item's source is one of them
    labelers        [labeler id, ...]      one of them flagged the item's current revision
    score_min       0..1                   violation score >= score_min
    score_max       0..1                   violation score <= score_max
    formats         ["image"|"video"|"text", ...]   its media type: one of these (text: no media)
    languages       ["en", ...]            the language detected at intake is one of them
    report_reasons  [reason, ...]          an open report gives one of these reasons
    strikes_min     integer >= 1           its author has at least this many active strikes
    banks           [bank id, ...]         its current revision matched one of these banks
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, NamedTuple

from django.db import connection
from django.db.models import Exists, OuterRef, Q, Sum
from django.utils import timezone

from lib.cache import TTLCache
from moderation.models import (
    BankMatch,
    Item,
    Queue,
    Report,
    RoutingChange,
    RoutingRule,
    Source,
    Strike,
)

MEDIA_KINDS = ("image", "video", "text")
CONDITION_KEYS = (
    "sources",
    "labelers",
    "score_min",
    "score_max",
    "formats",
    "languages",
    "report_reasons",
    "strikes_min",
    "banks",
)
# The facts each condition needs beyond the item's own row (all loaded in one query, only
# when an enabled rule uses one).
_EXTRA_FACTS = {
    "labelers": "labelers",
    "report_reasons": "report_reasons",
    "strikes_min": "strikes",
    "banks": "banks",
}


class ConditionError(ValueError):
    """A condition that is not one: `field` names it (the form shows it there)."""

    def __init__(self, field_name: str, message: str):
        super().__init__(message)
        self.field = field_name


def _id_list(name: str, value: Any) -> list[int]:
    if not isinstance(value, list) or not value:
        raise ConditionError(name, f"{name} must be a non-empty list of ids")
    ids = []
    for entry in value:
        if isinstance(entry, bool) or not isinstance(entry, int) or entry < 1:
            raise ConditionError(name, f"{name} must hold positive integer ids")
        ids.append(entry)
    return sorted(set(ids))


def _str_list(name: str, value: Any, *, choices: tuple[str, ...] | None = None) -> list[str]:
    if not isinstance(value, list) or not value:
        raise ConditionError(name, f"{name} must be a non-empty list")
    out = []
    for entry in value:
        if not isinstance(entry, str) or not entry.strip() or len(entry) > 100:
            raise ConditionError(name, f"{name} must hold short non-empty strings")
        if choices is not None and entry not in choices:
            raise ConditionError(name, f"{name}: {entry!r} is not one of {', '.join(choices)}")
        out.append(entry.strip())
    return sorted(set(out))


def _score(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise ConditionError(name, f"{name} must be a number from 0 to 1")
    return float(value)


def conditions_clean(raw: Any) -> dict[str, Any]:
    """The conditions in their stored form (lists sorted, no unknown key), or
    ConditionError naming the field."""
    if not isinstance(raw, dict):
        raise ConditionError("conditions", "conditions must be an object")
    unknown = set(raw) - set(CONDITION_KEYS)
    if unknown:
        raise ConditionError("conditions", f"unknown condition: {', '.join(sorted(unknown))}")
    clean: dict[str, Any] = {}
    for key in ("sources", "labelers", "banks"):
        if key in raw:
            clean[key] = _id_list(key, raw[key])
    for key in ("score_min", "score_max"):
        if key in raw:
            clean[key] = _score(key, raw[key])
    if "score_min" in clean and "score_max" in clean and clean["score_min"] > clean["score_max"]:
        raise ConditionError("score_min", "score_min is above score_max")
    if "formats" in raw:
        clean["formats"] = _str_list("formats", raw["formats"], choices=MEDIA_KINDS)
    if "languages" in raw:
        clean["languages"] = [code.lower() for code in _str_list("languages", raw["languages"])]
        if any(len(code) > 8 for code in clean["languages"]):
            raise ConditionError("languages", "languages are codes such as en or pt")
    if "report_reasons" in raw:
        clean["report_reasons"] = _str_list("report_reasons", raw["report_reasons"])
    if "strikes_min" in raw:
        value = raw["strikes_min"]
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 10_000:
            raise ConditionError("strikes_min", "strikes_min must be a whole number from 1")
        clean["strikes_min"] = value
    return clean


# --- The rules in memory ---------------------------------------------------------------------


@dataclass(frozen=True)
class CompiledRule:
    id: int
    name: str
    queue_id: int | None  # None: the default queue
    conditions: dict[str, Any]


@dataclass(frozen=True)
class RuleSet:
    version: int
    rules: tuple[CompiledRule, ...]
    # Which extra facts any rule needs (routing loads only those).
    needs: frozenset[str] = frozenset()


_rules_lock = threading.Lock()
_rules: RuleSet | None = None
# How often a process asks the database whether the rules changed: one indexed MAX(id) a
# second at most, whatever the intake rate; a change made in this process is seen at once.
_version_check = TTLCache[int](seconds=1.0, maxsize=1)


def rules_version() -> int:
    return _version_check.get("v", _read_version)


def _read_version() -> int:
    return RoutingChange.objects.order_by("-id").values_list("id", flat=True).first() or 0


def rules_invalidate() -> None:
    """After a change in this process (other processes see it within a second; a queue's
    team within a few)."""
    global _rules
    with _rules_lock:
        _rules = None
    _version_check.clear()
    queues_cache.clear()


class QueueRow(NamedTuple):
    """What every reviewer page and "next" read of a queue: who is served it and its own
    wellness and sampling settings (None: not set, the reviewer's or the site's govern)."""

    id: int
    team_id: int | None
    is_default: bool
    exposure_budget_reveals: int | None
    audit_share: float | None
    golden_share: float | None

    @property
    def value(self) -> int | None:
        """Its Item.queue value (None: the default queue)."""
        return None if self.is_default else self.id


# The queues, their teams and settings, which every reviewer page reads (who is served
# what): kept a few seconds per process with no look at the version, so a page view costs no
# query for them.
queues_cache = TTLCache[list[QueueRow]](seconds=5.0, maxsize=1)


def queue_rows() -> list[QueueRow]:
    return queues_cache.get(
        "queues",
        lambda: [
            QueueRow(*row)
            for row in Queue.objects.order_by("id").values_list(
                "id",
                "team_id",
                "is_default",
                "exposure_budget_reveals",
                "audit_share",
                "golden_share",
            )
        ],
    )


def queues_teams() -> list[tuple[int, int | None, bool]]:
    """(id, team id, is default) of every queue."""
    return [(row.id, row.team_id, row.is_default) for row in queue_rows()]


def queue_row(value: int | None) -> QueueRow | None:
    """The queue of this Item.queue value (None: the default queue), from memory."""
    for row in queue_rows():
        if row.value == value:
            return row
    return None


def rule_set(rules: list[RoutingRule] | None = None) -> RuleSet:
    """The enabled rules in order, from memory while their version holds; `rules`: compile
    these instead (the preview's proposed rules)."""
    global _rules
    if rules is not None:
        return _compile(rules, version=-1)
    version = rules_version()
    current = _rules
    if current is not None and current.version == version:
        return current
    loaded = _compile(
        list(
            RoutingRule.objects.filter(enabled=True)
            .select_related("queue")
            .order_by("position", "id")
        ),
        version=version,
    )
    with _rules_lock:
        _rules = loaded
    return loaded


def _compile(rules: list[RoutingRule], *, version: int) -> RuleSet:
    compiled = tuple(
        CompiledRule(
            id=rule.pk or 0,
            name=rule.name,
            queue_id=None if rule.queue.is_default else rule.queue_id,
            conditions=dict(rule.conditions),
        )
        for rule in rules
        if rule.enabled
    )
    needs = frozenset(
        _EXTRA_FACTS[key] for rule in compiled for key in rule.conditions if key in _EXTRA_FACTS
    )
    return RuleSet(version=version, rules=compiled, needs=needs)


# --- One item: facts and matching in memory ----------------------------------------------------


@dataclass
class ItemFacts:
    source_id: int
    violation_score: float | None
    media: frozenset[str]
    language: str
    labelers: frozenset[int] = field(default_factory=frozenset)
    report_reasons: frozenset[str] = field(default_factory=frozenset)
    strikes: int = 0
    banks: frozenset[int] = field(default_factory=frozenset)


def media_kinds(*, image: str, video: str) -> frozenset[str]:
    kinds = {kind for kind, value in (("image", image), ("video", video)) if value}
    return frozenset(kinds or {"text"})


# Items whose extra facts one query loads (its IN lists stay well inside every database's
# limit on parameters).
FACTS_BATCH = 200


def items_facts(items: list[Item], *, needs: frozenset[str]) -> dict[int, ItemFacts]:
    """Per item id, the facts the rules need: the rows' own, and the extra facts any rule
    uses in ONE query for all the items (a UNION ALL, one branch per kind of fact); no query
    when no rule needs one. With strikes needed, the items carry their source (its window)."""
    facts = {
        item.pk: ItemFacts(
            source_id=item.source_id,
            violation_score=item.violation_score,
            media=media_kinds(
                image=item.content_image.name or "", video=item.content_video.name or ""
            ),
            language=item.language,
        )
        for item in items
    }
    if not needs:
        return facts
    for start in range(0, len(items), FACTS_BATCH):
        batch = items[start : start + FACTS_BATCH]
        sql, params = _extra_facts_sql(batch, needs)
        with connection.cursor() as cursor:
            cursor.execute(sql, params)
            rows = cursor.fetchall()
        found: dict[tuple[int, str], set] = {}
        for item_id, kind, value in rows:
            found.setdefault((item_id, kind), set()).add(value)
        for item in batch:
            fact = facts[item.pk]
            fact.labelers = frozenset(int(v) for v in found.get((item.pk, "labelers"), ()))
            fact.report_reasons = frozenset(found.get((item.pk, "report_reasons"), ()))
            fact.strikes = sum(int(v) for v in found.get((item.pk, "strikes"), ()))
            fact.banks = frozenset(int(v) for v in found.get((item.pk, "banks"), ()))
    return facts


def _extra_facts_sql(items: list[Item], needs: frozenset[str]) -> tuple[str, list]:
    """(item id, kind, value as text) rows of the extra facts `needs` names. Written out:
    built of the models' table names and constants, the values are parameters."""
    quote = connection.ops.quote_name
    label_model = Item._meta.get_field("labels").related_model
    version_model = label_model._meta.get_field("labeler_version").related_model
    item_table = quote(Item._meta.db_table)
    ids = [item.pk for item in items]
    in_ids = ", ".join(["%s"] * len(ids))
    branches: list[str] = []
    params: list = []
    if "labelers" in needs:
        branches.append(
            f"SELECT l.item_id, 'labelers', CAST(v.labeler_id AS TEXT) "  # noqa: S608
            f"FROM {quote(label_model._meta.db_table)} l "
            f"JOIN {item_table} i ON i.id = l.item_id AND i.revision = l.revision "
            f"JOIN {quote(version_model._meta.db_table)} v ON v.id = l.labeler_version_id "
            f"WHERE l.item_id IN ({in_ids}) AND l.status = %s AND l.label = %s"
        )
        params += [*ids, "done", "1"]
    if "report_reasons" in needs:
        branches.append(
            f"SELECT r.item_id, 'report_reasons', r.reason FROM {quote(Report._meta.db_table)} r "  # noqa: S608
            f"WHERE r.item_id IN ({in_ids}) AND r.decision_id IS NULL"
        )
        params += ids
    with_author = [item for item in items if item.author_id is not None]
    if "strikes" in needs and with_author:
        # Each item's strikes count in its source's window: one cutoff per source.
        now = timezone.now()
        windows = {item.source_id: item.source.strike_window_days for item in with_author}
        cutoff = " ".join("WHEN %s THEN %s" for _ in windows)
        branches.append(
            f"SELECT i.id, 'strikes', CAST(SUM(s.weight) AS TEXT) FROM {item_table} i "  # noqa: S608
            f"JOIN {quote(Strike._meta.db_table)} s ON s.author_id = i.author_id "
            f"WHERE i.id IN ({', '.join(['%s'] * len(with_author))}) "
            f"AND s.withdrawn_at IS NULL AND s.created_at > CASE i.source_id {cutoff} END "
            f"GROUP BY i.id"
        )
        params += [item.pk for item in with_author]
        for source_id, days in windows.items():
            params += [
                source_id,
                connection.ops.adapt_datetimefield_value(now - timedelta(days=days)),
            ]
    if "banks" in needs:
        branches.append(
            f"SELECT b.item_id, 'banks', CAST(b.bank_id AS TEXT) "  # noqa: S608
            f"FROM {quote(BankMatch._meta.db_table)} b "
            f"JOIN {item_table} i ON i.id = b.item_id AND i.revision = b.revision "
            f"WHERE b.item_id IN ({in_ids})"
        )
        params += ids
    if not branches:  # only strikes needed, and no item has an author
        return "SELECT 0, '', '' WHERE 1 = 0", []
    return " UNION ALL ".join(branches), params


def rule_matches(conditions: dict[str, Any], facts: ItemFacts) -> bool:
    c = conditions
    score = facts.violation_score
    return (
        ("sources" not in c or facts.source_id in c["sources"])
        and ("score_min" not in c or (score is not None and score >= c["score_min"]))
        and ("score_max" not in c or (score is not None and score <= c["score_max"]))
        and ("formats" not in c or bool(facts.media & set(c["formats"])))
        and ("languages" not in c or facts.language in c["languages"])
        and ("labelers" not in c or bool(facts.labelers & set(c["labelers"])))
        and ("report_reasons" not in c or bool(facts.report_reasons & set(c["report_reasons"])))
        and ("strikes_min" not in c or facts.strikes >= c["strikes_min"])
        and ("banks" not in c or bool(facts.banks & set(c["banks"])))
    )


def route_facts(rules: RuleSet, facts: ItemFacts) -> tuple[int | None, int | None]:
    """(queue id, rule id) of the first rule that matches; (None, None): the default queue."""
    for rule in rules.rules:
        if rule_matches(rule.conditions, facts):
            return rule.queue_id, rule.id
    return None, None


# --- Many items: the same conditions as SQL ---------------------------------------------------


def rule_q(conditions: dict[str, Any], *, now=None) -> Q:
    """The rule's conditions as a condition on items (the preview's CASE)."""
    c = conditions
    q = Q()
    if "sources" in c:
        q &= Q(source_id__in=c["sources"])
    if "score_min" in c:
        q &= Q(violation_score__gte=c["score_min"])
    if "score_max" in c:
        q &= Q(violation_score__lte=c["score_max"])
    if "formats" in c:
        media = Q()
        if "image" in c["formats"]:
            media |= ~Q(content_image="")
        if "video" in c["formats"]:
            media |= ~Q(content_video="")
        if "text" in c["formats"]:
            media |= Q(content_image="", content_video="")
        q &= media
    if "languages" in c:
        q &= Q(language__in=c["languages"])
    if "labelers" in c:
        label_model = Item._meta.get_field("labels").related_model
        q &= Exists(
            label_model.objects.filter(
                item_id=OuterRef("pk"),
                revision=OuterRef("revision"),
                status="done",
                label="1",
                labeler_version__labeler_id__in=c["labelers"],
            )
        )
    if "report_reasons" in c:
        q &= Exists(
            Report.objects.filter(
                item_id=OuterRef("pk"), decision__isnull=True, reason__in=c["report_reasons"]
            )
        )
    if "strikes_min" in c:
        q &= _strikes_q(c["strikes_min"], now or timezone.now())
    if "banks" in c:
        q &= Exists(
            BankMatch.objects.filter(
                item_id=OuterRef("pk"), revision=OuterRef("revision"), bank_id__in=c["banks"]
            )
        )
    return q


def _strikes_q(minimum: int, now) -> Q:
    """Items whose author has at least `minimum` active strikes: each source counts strikes
    in its own window (a handful of sources, one subquery each)."""
    q = Q(pk__in=[])
    for source_id, window_days in Source.objects.values_list("id", "strike_window_days"):
        authors = (
            Strike.objects.filter(
                author__source_id=source_id,
                withdrawn_at__isnull=True,
                created_at__gt=now - timedelta(days=window_days),
            )
            .order_by()
            .values("author_id")
            .annotate(total=Sum("weight"))
            .filter(total__gte=minimum)
            .values("author_id")
        )
        q |= Q(source_id=source_id, author_id__in=authors)
    return q
