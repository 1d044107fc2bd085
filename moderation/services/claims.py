"""A reviewer's lease on an item: claim (or renew) it, release it."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from moderation.models import (
    REVIEWABLE,
    Item,
    free_for,
)


def item_claim(*, item: Item, reviewer) -> bool:
    """Take (or renew) the item's review lease; False if another reviewer holds it."""
    now = timezone.now()
    claimed = (
        # Only while it waits for a person: an item decided a moment ago is not taken again.
        Item.objects.filter(pk=item.pk, status__in=REVIEWABLE)
        .filter(free_for(reviewer, now))
        .update(
            claimed_by=reviewer,
            claim_expires_at=now + timedelta(seconds=settings.REVIEW_LEASE_SECONDS),
        )
    )
    return bool(claimed)


def item_release(*, item: Item, reviewer) -> bool:
    """Give up the reviewer's claim so others can take the item at once."""
    return bool(
        Item.objects.filter(pk=item.pk, claimed_by=reviewer).update(
            claimed_by=None, claim_expires_at=None
        )
    )
