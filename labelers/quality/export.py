"""Decided items as rows for a benchmark set (the JSON Lines export)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator
from typing import Any

from labelers.models import Label
from labelers.quality.figures import HUMAN_LABEL, effective_decisions
from labelers.quality.loaders import decision_rows
from moderation.models import Decision, Item, ItemRevision


def decided_export_rows(*, batch_size: int = 500) -> Iterator[dict[str, Any]]:
    """One dict per decided item revision (effective decision approve or remove), with its
    content and every labeler version's answer for that revision; read a batch of items at a
    time, so the export streams whatever the table's size."""
    last_id = 0
    decided = Item.objects.filter(decisions__isnull=False).distinct().order_by("id")
    while batch := list(decided.filter(id__gt=last_id).values_list("id", flat=True)[:batch_size]):
        last_id = batch[-1]
        decisions = effective_decisions(decision_rows(Decision.objects.filter(item_id__in=batch)))
        if not decisions:
            continue
        items = Item.objects.select_related("source").in_bulk(batch)
        earlier = {
            (r.item_id, r.number): r
            for r in ItemRevision.objects.filter(item_id__in=batch).only(
                "item_id", "number", "content_text", "content_image", "content_video"
            )
        }
        answers: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
        labels = (
            Label.objects.filter(item_id__in=batch, status=Label.Status.DONE)
            .order_by("labeler_version__labeler__slug", "labeler_version__number")
            .values_list(
                "item_id",
                "revision",
                "labeler_version__labeler__slug",
                "labeler_version__number",
                "label",
                "confidence",
                "violation_score",
                "model",
            )
        )
        for item_id, revision, slug, number, label, confidence, score, model in labels:
            answers[(item_id, revision)].append(
                {
                    "labeler": slug,
                    "version": number,
                    "label": label,
                    "confidence": confidence,
                    "violation_score": score,
                    "model": model,
                }
            )
        for (item_id, revision), decision in sorted(decisions.items()):
            item = items[item_id]
            content = item if revision == item.revision else earlier.get((item_id, revision))
            if content is None:
                continue
            yield {
                "item_id": item_id,
                "revision": revision,
                "source": item.source.slug,
                "external_id": item.external_id,
                "content_text": content.content_text,
                "has_image": bool(content.content_image),
                "has_video": bool(content.content_video),
                "human_label": HUMAN_LABEL[decision.action],
                "action": decision.action,
                "reason": decision.reason,
                "decided_at": decision.created_at.isoformat(),
                "labels": answers.get((item_id, revision), []),
            }
