"""A reviewer's settings and media exposure; the team's media exposure today."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from lib.days import today_start
from moderation.models import (
    Decision,
    MediaReveal,
    ReviewerSettings,
    shift_start,
)
from moderation.permissions import reviewer_queue_ids
from moderation.routing import queue_rows


def reviewer_settings(user) -> ReviewerSettings:
    """The reviewer's settings; the defaults (blur on, no budget) until they change one."""
    return ReviewerSettings.objects.filter(user_id=user.pk).first() or ReviewerSettings(user=user)


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
        return self.over_budget_for(None)

    def over_budget_for(self, queue_reveals: int | None) -> bool:
        """Over the budget that governs a queue's items: the queue's own reveals budget when
        it has one, in place of the reviewer's (their minutes budget holds in any queue)."""
        reveals = queue_reveals if queue_reveals is not None else self.budget_reveals
        return bool(
            (reveals and self.reveals_shift >= reveals)
            or (self.budget_minutes and self.shift_minutes >= self.budget_minutes)
        )


def queues_over_budget(user, exposure: Exposure) -> tuple[frozenset, frozenset]:
    """The reviewer's queues (Item.queue values) whose items they are over the exposure
    budget for, and the others: "next" serves the first ones' text-only items first."""
    scope = reviewer_queue_ids(user)
    over: set[int | None] = set()
    rest: set[int | None] = set()
    for row in queue_rows():
        if scope is None or row.value in scope:
            (over if exposure.over_budget_for(row.exposure_budget_reveals) else rest).add(row.value)
    return frozenset(over), frozenset(rest)


def exposure(user, *, settings_row: ReviewerSettings | None = None) -> Exposure:
    """The reviewer's media exposure today and this shift. `settings_row`: their settings,
    when the caller has read them already (saved or the defaults); else they are read."""
    if settings_row is None:
        settings_row = reviewer_settings(user)
    now = timezone.now()
    midnight = today_start(now)
    shift_from = shift_start(settings_row)
    first_activity = (
        Decision.objects.filter(reviewer_id=user.pk, created_at__gte=shift_from)
        .order_by("created_at")
        .values_list("created_at", flat=True)
        .first()
    )
    started = first_activity or now
    reveals = MediaReveal.objects.filter(reviewer_id=user.pk, revealed_at__gte=midnight).aggregate(
        today=Count("id"), shift=Count("id", filter=Q(revealed_at__gte=shift_from))
    )
    return Exposure(
        reveals_today=reveals["today"],
        reveals_shift=reveals["shift"],
        shift_minutes=int((now - started).total_seconds() // 60),
        budget_reveals=settings_row.exposure_budget_reveals,
        budget_minutes=settings_row.exposure_budget_minutes,
    )


def reveals_today_query() -> QuerySet:
    """(username, items whose media they revealed since midnight UTC) rows: reveals_today's
    read, for a page that reads it with others (lib/batch.py)."""
    midnight = today_start()
    return (
        MediaReveal.objects.filter(revealed_at__gte=midnight)
        .values_list("reviewer__username")
        .annotate(n=Count("id"))
        .order_by()
    )


def reveals_today() -> dict[str, int]:
    """Per reviewer (username): items whose media they revealed since midnight UTC."""
    return dict(reveals_today_query())


def team_exposure_raw() -> list[dict]:
    """Per reviewer, today: decisions made and media revealed, counted from the rows (the
    definition the team page's figures, read from the daily counts, must equal).

    A decision is an approve, remove or escalate, as on the admins' dashboard: an undo is
    not one, and the decision it reversed still counts (the reviewer made it)."""
    midnight = today_start()
    decided = dict(
        # System decisions (auto-approvals) have no reviewer: not anyone's throughput.
        Decision.objects.filter(created_at__gte=midnight, reviewer__isnull=False)
        .exclude(action=Decision.Action.UNDO)
        .values_list("reviewer__username")
        .annotate(n=Count("id"))
    )
    revealed = reveals_today()
    return [
        {"reviewer": name, "decisions": decided.get(name, 0), "reveals": revealed.get(name, 0)}
        for name in sorted(set(decided) | set(revealed))
    ]
