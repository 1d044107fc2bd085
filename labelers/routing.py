"""Which labelers each source routes to (the current version of each active one), cached per
process; and the model a version asks for an item."""

from __future__ import annotations

from typing import NamedTuple

from labelers import client as api
from labelers.models import LabelerVersion
from lib.cache import TTLCache


def model_for(*, model: str, has_media: bool) -> str:
    """The model to ask: the version's choice, else the multimodal one for media."""
    if model:
        return model
    return api.MEDIA_MODEL if has_media else "cope-latest"


class Route(NamedTuple):
    """One active labeler a source routes to, with its current version."""

    labeler_id: int
    version_id: int
    model: str
    min_confidence: float | None
    auto_approve_confidence: float | None = None
    audit_share: float = 0.0


# The dispatch and every finished label read routing; it changes rarely and saves clear it.
routing_cache: TTLCache[tuple[Route, ...]] = TTLCache(seconds=2.0)


def source_routing(source_id: int) -> tuple[Route, ...]:
    """The current (highest published) version of each active labeler the source routes to;
    drafts are never routed to."""

    def load():
        current: dict[int, Route] = {}
        versions = (
            LabelerVersion.objects.filter(
                labeler__sources=source_id,
                labeler__active=True,
                state=LabelerVersion.State.PUBLISHED,
            )
            .order_by("labeler_id", "-number")
            .values_list(
                "labeler_id",
                "id",
                "model",
                "labeler__min_confidence",
                "labeler__auto_approve_confidence",
                "labeler__audit_share",
            )
        )
        for row in versions:
            current.setdefault(row[0], Route(*row))
        return tuple(current.values())

    return routing_cache.get(source_id, load)
