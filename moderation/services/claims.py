"""A reviewer's lease on an item: claim (or renew) it, release it."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from moderation.models import (
    REVIEWABLE,
    Item,
    free_for,
)


@transaction.atomic
def item_claim(*, item: Item, reviewer) -> bool:
    """Take (or renew) the item's review lease; False if another reviewer holds it.

    Taking it is in the audit log; renewing a lease the reviewer still holds (their page
    again, a reload) is not: the row that took it already says who had it open, and a
    renewal per page view buried the log's other actions."""
    now = timezone.now()
    expires = now + timedelta(seconds=settings.REVIEW_LEASE_SECONDS)
    # Only while it waits for a person: an item decided a moment ago is not taken again.
    waiting = Item.objects.filter(pk=item.pk, status__in=REVIEWABLE)
    if waiting.filter(claimed_by=reviewer, claim_expires_at__gt=now).update(
        claim_expires_at=expires
    ):
        return True
    claimed = waiting.filter(free_for(reviewer, now)).update(
        claimed_by=reviewer, claim_expires_at=expires
    )
    if claimed:
        audit_record(action="item.claim", actor=reviewer, obj=item, after={"until": expires})
    return bool(claimed)


@transaction.atomic
def item_release(*, item: Item, reviewer) -> bool:
    """Give up the reviewer's claim so others can take the item at once."""
    released = Item.objects.filter(pk=item.pk, claimed_by=reviewer).update(
        claimed_by=None, claim_expires_at=None
    )
    if released:
        audit_record(action="item.release", actor=reviewer, obj=item)
    return bool(released)
