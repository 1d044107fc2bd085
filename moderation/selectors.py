"""Reads shared by reviewer pages and the item API."""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, Q, QuerySet
from django.utils import timezone

from config.cache import TTLCache
from moderation.models import (
    IN_QUEUE,
    Decision,
    DecisionReason,
    Item,
    MediaReveal,
    ReviewerSettings,
    Source,
    free_for,
    hash_token,
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


def queue_items(*, source_id: int | None = None, labeler_id: int | None = None) -> QuerySet[Item]:
    items = Item.objects.filter(status__in=IN_QUEUE)
    if source_id:
        items = items.filter(source_id=source_id)
    if labeler_id:
        items = items.filter(labels__labeler_version__labeler_id=labeler_id).distinct()
    return items.order_by("-queue_score", "id")


def queue_page(
    *,
    after: tuple[float, int] | None = None,
    source_id: int | None = None,
    labeler_id: int | None = None,
    size: int | None = None,
) -> tuple[list[Item], tuple[float, int] | None]:
    """One page of the queue by keyset (score, id): as fast on page 10,000 as on page 1."""
    size = size or settings.QUEUE_PAGE_SIZE
    items = queue_items(source_id=source_id, labeler_id=labeler_id).select_related(
        "source", "claimed_by"
    )
    if after is not None:
        score, last_id = after
        items = items.filter(Q(queue_score__lt=score) | Q(queue_score=score, id__gt=last_id))
    page = list(items[: size + 1])
    following = (page[size - 1].queue_score or 0.0, page[size - 1].id) if len(page) > size else None
    return page[:size], following


def queue_next(*, reviewer, source_id: int | None = None, exclude_ids=()) -> Item | None:
    """The top item of the queue nobody else holds a live claim on."""
    items = queue_items(source_id=source_id).filter(free_for(reviewer, timezone.now()))
    return items.exclude(pk__in=exclude_ids).first()


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
    return items.select_related("source", "claimed_by").order_by("-queue_score", "id")


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
        Decision.objects.filter(created_at__gte=midnight)
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
