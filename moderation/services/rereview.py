"""Decided items sent back to the queue for another look (say, the criteria changed)."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from moderation.models import (
    Item,
)
from moderation.services.figures import item_figures_changed
from moderation.services.queue import queue_key_sync, queue_score_for
from moderation.services.routing import items_route

logger = logging.getLogger(__name__)


# Items sent for re-review are read, locked and written this many at a time.
REREVIEW_BATCH = 500


def items_send_for_rereview(*, item_ids: Iterable[int], requested_by) -> int:
    """Send decided items back to the queue for another look (say, the criteria changed
    since they were decided): status "rereview", sorted like flagged items by their
    violation score (1.0 when no labeler scored them), waiting from now. Their decisions
    stay in the history; the next one is a new record. Only items still decided move, so a
    repeated request, or an item decided again meanwhile, changes nothing. Returns how many
    moved. `requested_by`: the admin asking, named in the log."""
    ids = sorted(set(item_ids))
    now = timezone.now()
    moved = 0
    for start in range(0, len(ids), REREVIEW_BATCH):
        batch = ids[start : start + REREVIEW_BATCH]
        with transaction.atomic():
            # Locked so a late label cannot change the score between the read and the write.
            items = list(
                Item.objects.select_for_update()
                # An item whose content was purged has nothing left to look at again.
                .filter(pk__in=batch, status=Item.Status.DECIDED, purged_at__isnull=True)
                .only("id", "violation_score", "report_score", "decided_at")
            )
            for item in items:
                # No longer decided: the day it counted as decided on is recounted.
                item_figures_changed(item_id=item.pk, decided_at=item.decided_at)
                item.status = Item.Status.REREVIEW
                item.queue_score = queue_score_for(
                    status=item.status,
                    violation_score=item.violation_score,
                    report_score=item.report_score,
                )
                # The wait (and the source's SLA clock) starts now.
                item.waiting_since, item.sla_breached = now, False
                item.claimed_by, item.claim_expires_at = None, None
                queue_key_sync(item)
            # The status condition again: bulk_update keeps the queryset's filter.
            moved += Item.objects.filter(status=Item.Status.DECIDED).bulk_update(
                items,
                [
                    "status",
                    "queue_score",
                    "queue_key",
                    "waiting_since",
                    "sla_breached",
                    "claimed_by",
                    "claim_expires_at",
                ],
            )
            items_route(item_ids=[item.pk for item in items])
            audit_record(
                action="items.rereview",
                actor=requested_by,
                after={"items": len(batch), "moved": [item.pk for item in items][:50]},
            )
    if moved:
        logger.info("%s sent %d decided items for re-review", requested_by, moved)
    return moved
