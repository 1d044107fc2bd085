"""Labelers and their versions, and which labelers each source routes to."""

from __future__ import annotations

import logging
from typing import NamedTuple

from django.db import transaction

from config.cache import TTLCache
from labelers import client as api
from labelers.models import Labeler, LabelerVersion
from moderation import services as moderation_services
from moderation.models import Source

logger = logging.getLogger(__name__)

DEFAULT_CRITERIA = (
    "Label 1 if the content harasses, threatens or demeans a person or group, incites "
    "violence, or promotes self-harm; label 0 otherwise."
)


def labeler_default() -> Labeler:
    labeler, created = Labeler.objects.get_or_create(
        slug="default", defaults={"name": "Default policy", "kind": Labeler.Kind.CRITERIA}
    )
    if created or not labeler.versions.exists():
        labeler_version_create(labeler=labeler, criteria_text=DEFAULT_CRITERIA)
    return labeler


@transaction.atomic
def labeler_version_create(
    *,
    labeler: Labeler,
    criteria_text: str = "",
    remote_labeler_id: str = "",
    remote_version_id: str = "latest",
    model: str = "",
    created_by=None,
) -> LabelerVersion:
    """Versions are immutable: an edit is the next number; old labels keep their version."""
    if bool(criteria_text.strip()) == bool(remote_labeler_id.strip()):
        raise ValueError("give exactly one of criteria_text or remote_labeler_id")
    if model and model not in api.MODELS:
        raise ValueError(f"unknown model {model!r}")
    if model in api.DEPRECATED_MODELS:
        logger.warning("labeler %s uses %s: %s", labeler.slug, model, api.DEPRECATED_MODELS[model])
    locked = Labeler.objects.select_for_update().get(pk=labeler.pk)
    last = locked.versions.order_by("-number").values_list("number", flat=True).first() or 0
    return LabelerVersion.objects.create(
        labeler=locked,
        number=last + 1,
        criteria_text=criteria_text.strip(),
        remote_labeler_id=remote_labeler_id.strip(),
        remote_version_id=(remote_version_id or "latest").strip() if remote_labeler_id else "",
        model=model,
        created_by=created_by,
    )


def source_setup(
    *, name: str, slug: str, labelers: list[Labeler] | None = None
) -> tuple[Source, str, str]:
    """Create a source routed to `labelers` (default: the default labeler); returns the
    source, its signing secret and its API token (shown once)."""
    chosen = labelers if labelers is not None else [labeler_default()]
    return moderation_services.source_create(name=name, slug=slug, labelers=chosen)


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


# The dispatch and every finished label read routing; it changes rarely and saves clear it.
routing_cache: TTLCache[tuple[Route, ...]] = TTLCache(seconds=2.0)


def source_routing(source_id: int) -> tuple[Route, ...]:
    """The current version of each active labeler the source routes to."""

    def load():
        current: dict[int, Route] = {}
        versions = (
            LabelerVersion.objects.filter(labeler__sources=source_id, labeler__active=True)
            .order_by("labeler_id", "-number")
            .values_list("labeler_id", "id", "model", "labeler__min_confidence")
        )
        for labeler_id, version_id, model, min_confidence in versions:
            current.setdefault(labeler_id, Route(labeler_id, version_id, model, min_confidence))
        return tuple(current.values())

    return routing_cache.get(source_id, load)
