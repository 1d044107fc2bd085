"""Decisions: the buttons a reviewer can press (with their keys and reasons), a reviewer's
own decisions, a decision as products receive it, the decisions feed."""

from __future__ import annotations

import re
from copy import copy
from dataclasses import dataclass

from django.db.models import Count, F, OuterRef, Q, Subquery

from moderation.models import (
    FOR_PRODUCTS,
    Decision,
    DecisionReason,
    GoldenAnswer,
    Item,
    Source,
)
from moderation.selectors.golden import golden_answered_status
from moderation.selectors.statements import removal_statements

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
    """The decision buttons with the active reasons of each, by their digit (reason.key;
    one without a digit, after them, is picked by pointer)."""
    reasons: dict[str, list[DecisionReason]] = {action: [] for action in DECIDABLE}
    keyed_first = (F("key").asc(nulls_last=True), "order", "name")
    for reason in DecisionReason.objects.filter(active=True).order_by(*keyed_first):
        if reason.action in reasons:
            reasons[reason.action].append(reason)
    labels = dict(Decision.Action.choices)
    return [
        ActionChoice(
            value=action,
            label=labels[action],
            key=ACTION_KEYS[action],
            reasons=reasons[action],
            reason_required=action != Decision.Action.APPROVE,
        )
        for action in DECIDABLE
    ]


def decisions_by(
    *, reviewer, before: str | None = None, size: int = 50
) -> tuple[list[Decision], str | None]:
    """The reviewer's own decisions, newest first, and their answers to golden items among
    them: each answer as a decision of theirs (unsaved), as the item's page shows it to them
    again. An answer missing from their list would tell them the item was golden.

    Keyset on (time, kind, id), decisions before answers at the same instant; `before` and
    the returned cursor name the last row shown: "d<decision id>" or "g<answer id>"."""
    decisions = Decision.objects.filter(reviewer=reviewer)
    answers = GoldenAnswer.objects.filter(reviewer=reviewer, answered_at__isnull=False)
    cursor = re.fullmatch(r"([dg]?)(\d+)", before or "")
    if cursor:
        kind, pk = cursor.group(1) or "d", int(cursor.group(2))
        if kind == "d":
            at = decisions.filter(pk=pk).values_list("created_at", flat=True).first()
            if at is not None:
                decisions = decisions.filter(Q(created_at__lt=at) | Q(created_at=at, pk__lt=pk))
                answers = answers.filter(answered_at__lte=at)
        else:
            at = answers.filter(pk=pk).values_list("answered_at", flat=True).first()
            if at is not None:
                decisions = decisions.filter(created_at__lt=at)
                answers = answers.filter(Q(answered_at__lt=at) | Q(answered_at=at, pk__lt=pk))
    rows = [
        (decision.created_at, 1, decision.pk, decision)
        for decision in decisions.select_related("item__source").order_by("-created_at", "-pk")[
            : size + 1
        ]
    ]
    for answer in answers.select_related("golden__item__source").order_by("-answered_at", "-pk")[
        : size + 1
    ]:
        item = answer.golden.item
        if item.status == Item.Status.DECIDED and item.revision == answer.golden.revision:
            item = copy(item)  # never saved: as the item's page shows it to them
            item.status = golden_answered_status(answer.action)
        shown = Decision(
            item=item,
            reviewer=reviewer,
            action=answer.action,
            reason=answer.reason,
            created_at=answer.answered_at,
        )
        rows.append((answer.answered_at, 0, answer.pk, shown))
    rows.sort(key=lambda row: row[:3], reverse=True)
    if len(rows) <= size:
        return [row[3] for row in rows], None
    last = rows[size - 1]
    return [row[3] for row in rows[:size]], f"{'d' if last[1] else 'g'}{last[2]}"


def decision_sequences() -> Subquery:
    """Annotation: a decision's number among its item's decisions (1, 2, 3...)."""
    earlier = (
        Decision.objects.filter(item_id=OuterRef("item_id"), pk__lte=OuterRef("pk"))
        .order_by()
        .values("item_id")
        .annotate(n=Count("pk"))
        .values("n")
    )
    return Subquery(earlier)


def decision_sequence(decision: Decision) -> int:
    """The decision's number among its item's decisions, 1 for the first. An item's decisions
    commit in id order (decision_record locks the source's row first) and are never deleted,
    so the number never changes: products order an item's callbacks by it."""
    sequence = getattr(decision, "item_sequence", None)
    if sequence is None:
        sequence = Decision.objects.filter(item_id=decision.item_id, pk__lte=decision.pk).count()
    return sequence


def decision_event(
    decision: Decision, *, include_reviewer: bool, statements: dict[int, dict] | None = None
) -> dict:
    """A decision as products receive it, in a callback's `data` and in the decisions feed.
    The reviewer's identity only when an admin allowed it for the source. A removal carries
    its statement of reasons (`statements`: those of a page, built at once; else its own)."""
    item = decision.item
    event = {
        "decision_id": decision.pk,
        "item_id": item.pk,
        "external_id": item.external_id,
        # Callbacks are sent at least once and can arrive out of order: the item's decision
        # with the highest sequence is its current one.
        "sequence": decision_sequence(decision),
        **({"author_id": item.author.external_id} if item.author_id else {}),
        "revision": decision.revision,
        "action": decision.action,
        "reason": decision.reason,
        "decided_at": decision.created_at.isoformat(),
        # An undo names the decision it reverses; the item is undecided again.
        "undoes": decision.undoes_id,
        # Made by the system (a labeler's auto-approve band), not by a person.
        "automatic": decision.reviewer_id is None,
        # The products' ids of the reports this decision answers (possibly none).
        "report_ids": list(decision.report_ids or []),
    }
    if include_reviewer:
        reviewer = decision.reviewer
        # None for a decision no person made (an automatic one).
        event["reviewer"] = reviewer and {"id": reviewer.pk, "username": reviewer.get_username()}
    if decision.action == Decision.Action.REMOVE:
        if statements is None:
            statements = removal_statements([decision], source=item.source)
        event["statement_of_reasons"] = statements[decision.pk]
    return event


DECISIONS_PAGE_SIZE = 100
DECISIONS_PAGE_MAX = 1000


def decisions_page(*, source: Source, since: int, size: int) -> tuple[list[dict], int, bool]:
    """The source's decisions after the cursor (a decision id), oldest first; the next cursor
    and whether more wait. Keyset by id: decision_record takes the source's row lock before
    it inserts, so a source's decision ids commit in order and a reader that has seen id N
    will never see a smaller one appear later (no skips), and `id > cursor` never repeats."""
    rows = list(
        # Escalations stay inside the team: only decisions products hear of.
        Decision.objects.filter(FOR_PRODUCTS, item__source=source, pk__gt=since)
        .select_related("item__author", "reviewer", "reason_choice")
        .annotate(item_sequence=decision_sequences())
        .order_by("pk")[: size + 1]
    )
    page = rows[:size]
    statements = removal_statements(page, source=source)
    events = [
        decision_event(
            decision, include_reviewer=source.callback_include_reviewer, statements=statements
        )
        for decision in page
    ]
    cursor = page[-1].pk if page else since
    return events, cursor, len(rows) > size


def item_current_decision(item: Item) -> Decision | None:
    """The decision a decided item stands on: its latest (an undo would have reopened it)."""
    if item.status != Item.Status.DECIDED:
        return None
    return item.decisions.order_by("-created_at", "-id").first()
