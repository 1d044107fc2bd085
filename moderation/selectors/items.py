"""An item as the API shows it."""

from __future__ import annotations

from moderation.models import (
    REVIEWABLE,
    Item,
)


def item_api_dict(item: Item) -> dict:
    """The item as the API shows it: its current revision's state and decision, and every
    revision's labels and decisions as history."""
    labels = item.labels.select_related("labeler_version__labeler").order_by("revision", "id")
    # Escalations are internal (Decision.for_products): while one waits for a senior the
    # item is `under_review` with no decision, and its history never shows it.
    decisions = [d for d in item.decisions.select_related("undoes") if d.for_products]
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
        # Waiting for a person's decision (in the queue, or with a senior reviewer).
        "under_review": item.status in REVIEWABLE,
        "received_at": item.received_at.isoformat(),
        "revised_at": item.revised_at.isoformat() if item.revised_at else None,
        "violation_score": item.violation_score,
        # Whether its content is still kept: "purged" by the source's retention period,
        # "erased" by a product's erasure (ids, decisions, labels' figures and dates stay).
        "content": {
            "state": item.content_state,
            "removed_at": item.purged_at.isoformat() if item.purged_at else None,
        },
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
