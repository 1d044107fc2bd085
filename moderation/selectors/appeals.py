"""Reads about appeals: the seniors' appeals queue (pending, oldest first, with each source's
SLA), and an appeal's outcome as products receive it (appeal.decided)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Count, Q
from django.utils import timezone

from moderation.models import Appeal, Item

APPEALS_PAGE_SIZE = 50


@dataclass(frozen=True)
class AppealRow:
    appeal: Appeal
    # When the source's appeal SLA runs out (None: no SLA), and whether it has.
    due_at: datetime | None
    breached: bool


def appeals_waiting_for(user, *, source_ids: frozenset[int] | None) -> Q:
    """Pending appeals this senior may decide: of their sources, and never one about their
    own decision or an action they confirmed."""
    q = Q(status=Appeal.Status.PENDING) & ~Q(decision__reviewer=user)
    q &= ~Q(account_action__created_by=user)
    if source_ids is not None:
        q &= Q(source_id__in=source_ids)
    return q


def appeals_queue(
    *, user, source_ids: frozenset[int] | None, after: int | None = None, size=APPEALS_PAGE_SIZE
) -> tuple[list[AppealRow], int | None]:
    """Pending appeals, oldest first (keyset on received_at, id; `after` is the last appeal
    shown), and the cursor of the next page (None: none)."""
    appeals = Appeal.objects.filter(appeals_waiting_for(user, source_ids=source_ids))
    if after is not None:
        last = Appeal.objects.filter(pk=after).values_list("received_at", flat=True).first()
        if last is not None:
            appeals = appeals.filter(Q(received_at__gt=last) | Q(received_at=last, pk__gt=after))
    rows = list(
        appeals.select_related("source", "item", "account_action__author", "decision").order_by(
            "received_at", "id"
        )[: size + 1]
    )
    now = timezone.now()
    page = []
    for appeal in rows[:size]:
        sla = appeal.source.appeal_sla_minutes
        due = appeal.received_at + timedelta(minutes=sla) if sla else None
        page.append(AppealRow(appeal, due, due is not None and due < now))
    return page, (rows[size - 1].pk if len(rows) > size else None)


def item_pending_appeal(item: Item) -> Appeal | None:
    """The appeal waiting on the item's removal, if any (the item page marks it)."""
    return Appeal.objects.filter(item=item, status=Appeal.Status.PENDING).order_by("-id").first()


def appeal_event(appeal: Appeal) -> dict[str, Any]:
    """An appeal's outcome as products receive it (the callback's `data`): the appeal, the
    outcome, the approval an overturned item appeal recorded (else null), and the item or
    the account action it was about."""
    event: dict[str, Any] = {
        "appeal_id": appeal.appeal_id,
        "outcome": appeal.status,
        "decision_id": appeal.result_decision_id,
        "decided_at": appeal.decided_at.isoformat() if appeal.decided_at else None,
    }
    if appeal.item_id is not None:
        item = appeal.item
        event["external_id"] = item.external_id
        event["appealed_decision_id"] = appeal.decision_id
        if item.author_id:
            event["author_id"] = item.author.external_id
    else:
        action = appeal.account_action
        event["account_action_id"] = action.pk
        event["author_id"] = action.author.external_id
    return event


def overturns_by_reviewer() -> list[dict[str, Any]]:
    """Per reviewer whose removals were appealed: appeals decided, and how many a senior
    overturned (for leads on the team page). Read from the appeals alone
    (decision_reviewer): joined to every decision appealed, it took 100 ms at 50,000
    appeals (bench/team.py)."""
    rows = (
        Appeal.objects.filter(
            status__in=[Appeal.Status.UPHELD, Appeal.Status.OVERTURNED],
            decision_reviewer__isnull=False,
        )
        .values("decision_reviewer__username")
        .annotate(
            decided=Count("id"),
            overturned=Count("id", filter=Q(status=Appeal.Status.OVERTURNED)),
        )
        .order_by("decision_reviewer__username")
    )
    return [
        {
            "reviewer": row["decision_reviewer__username"],
            "decided": row["decided"],
            "overturned": row["overturned"],
        }
        for row in rows
    ]


def appeals_decided_after(*, source, since: int, size: int) -> list[Appeal]:
    """The source's decided appeals after a cursor (a feed position), in feed order: at most
    size + 1, so the feed knows whether more wait."""
    return list(
        Appeal.objects.filter(source=source, feed_position__gt=since)
        .select_related("item__author", "account_action__author")
        .order_by("feed_position")[: size + 1]
    )
