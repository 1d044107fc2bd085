"""What an item's labels say, handed to moderation through its one narrow call."""

from __future__ import annotations

from labelers.models import Label
from moderation import services as moderation_services
from moderation.models import Item

OPEN_STATUSES = (
    Label.Status.PENDING,
    Label.Status.RUNNING,
    Label.Status.WAITING_KEY,
    Label.Status.FAILED_TRANSIENT,
)


def item_refresh(*, item_id: int) -> None:
    """Recompute the item's verdict from its labels and hand it to moderation.

    Runs inside the caller's transaction. The item row is locked *before* the labels are
    read, so two labels of one item finishing at once are summed up one after the other:
    the second sees the first (otherwise both could report "still labeling").
    """
    list(Item.objects.select_for_update().filter(pk=item_id).values_list("pk", flat=True))
    labels = list(
        Label.objects.filter(item_id=item_id)
        .select_related("labeler_version__labeler")
        .only(
            "status",
            "label",
            "confidence",
            "violation_score",
            "labeler_version__labeler__min_confidence",
        )
    )
    scores = [lb.violation_score for lb in labels if lb.violation_score is not None]
    moderation_services.item_labels_changed(
        item_id=item_id,
        violation_score=max(scores) if scores else None,
        flagged=any(lb.flags for lb in labels),
        labeling=any(lb.status in OPEN_STATUSES for lb in labels),
        failed=any(lb.status == Label.Status.FAILED for lb in labels),
    )
