"""Reads shared by reviewer pages and the item API."""

from __future__ import annotations

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone

from config.cache import TTLCache
from moderation.models import IN_QUEUE, Item, ReviewerSettings, Source, free_for, hash_token

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


def queue_next(*, reviewer, source_id: int | None = None) -> Item | None:
    """The top item of the queue nobody else holds a live claim on."""
    return queue_items(source_id=source_id).filter(free_for(reviewer, timezone.now())).first()


def item_api_dict(item: Item) -> dict:
    """The item as the API shows it: its current revision's state and decision, and every
    revision's labels and decisions as history."""
    labels = item.labels.select_related("labeler_version__labeler").order_by("revision", "id")
    decisions = list(item.decisions.all())
    current = [d for d in decisions if d.revision == item.revision]
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
        "decision": _decision_dict(current[-1]) if current else None,
        "decisions": [_decision_dict(d) for d in decisions],
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


def _decision_dict(decision) -> dict:
    return {
        "revision": decision.revision,
        "action": decision.action,
        "reason": decision.reason,
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
