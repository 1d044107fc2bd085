"""Labelers, their versions (drafts, publishing) and review policy (threshold, auto-approve
band, audit share); a change of policy starts its own re-evaluation of undecided items."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from typing import Any, NamedTuple

from django.db import transaction
from django.utils import timezone

from audit.services import audit_record
from labelers import client as api
from labelers.models import Labeler, LabelerVersion, Reevaluation
from labelers.routing import routing_cache
from labelers.tasks import reevaluation_start
from moderation.models import Source
from moderation.services.sources import source_create

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


def _policy_check(*, criteria_text: str, remote_labeler_id: str, model: str) -> None:
    if bool(criteria_text.strip()) == bool(remote_labeler_id.strip()):
        raise ValueError("give exactly one of criteria_text or remote_labeler_id")
    if model and model not in api.MODELS:
        raise ValueError(f"unknown model {model!r}")


def _policy_fields(
    *, criteria_text: str, remote_labeler_id: str, remote_version_id: str, model: str
) -> dict[str, str]:
    return {
        "criteria_text": criteria_text.strip(),
        "remote_labeler_id": remote_labeler_id.strip(),
        "remote_version_id": (remote_version_id or "latest").strip() if remote_labeler_id else "",
        "model": model,
    }


class StaleEdit(Exception):
    """What the admin's page showed changed before they acted on it (another admin saved
    meanwhile): nothing is done. `changes`: (field, as the page showed it, as it is now)."""

    def __init__(self, what: str, changes: list[tuple[str, Any, Any]]):
        self.what, self.changes = what, changes
        listed = "; ".join(f"{name}: {seen!r} → {now!r}" for name, seen, now in changes)
        super().__init__(f"{what} changed since your page was shown ({listed})")

    def said(
        self, next_step: str = "Here it is as it is now; look again before you change it."
    ) -> str:
        """For the admin: "the draft was changed by someone else since your page was shown
        (the minimum confidence was 0.7 on your page and is 0.8 now; ...)", and what to do."""
        said = "; ".join(
            f"the {_FIELD_NAMES.get(name, name)} was {_shown(seen)} on your page and is "
            f"{_shown(now)} now"
            for name, seen, now in self.changes
        )
        return (
            f"{self.what} was changed by someone else since your page was shown ({said}). "
            f"{next_step}"
        )


_FIELD_NAMES = {
    "min_confidence": "minimum confidence",
    "auto_approve_confidence": "auto-approve band",
    "audit_share": "audit share",
    "version": "current version",
}


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    return f"{value:g}" if isinstance(value, float) else str(value)


def _stale_check(what: str, *, seen: dict[str, Any] | None, now: dict[str, Any]) -> None:
    """Refuse (StaleEdit) when `seen`, a snapshot the page was rendered with, differs from
    `now`. None: the caller makes no claim about what was seen (internal callers, tests)."""
    if seen is None:
        return
    changes = [(name, seen.get(name), now[name]) for name in now if seen.get(name) != now[name]]
    if changes:
        raise StaleEdit(what, changes)


REVIEW_POLICY_FIELDS = ("min_confidence", "auto_approve_confidence", "audit_share")
DRAFT_FIELDS = ("number", "criteria_text", "remote_labeler_id", "remote_version_id", "model")


def draft_snapshot(draft: LabelerVersion | None) -> dict[str, Any]:
    """The draft as a page shows it, to send back with a save or a publish: publishing
    publishes exactly this text, and a save never overwrites an edit it did not show."""
    if draft is None:
        return dict.fromkeys(DRAFT_FIELDS)
    return {name: getattr(draft, name) for name in DRAFT_FIELDS}


def review_policy_snapshot(labeler: Labeler) -> dict[str, Any]:
    """What a labeler's answers do, as a page shows it (with the version whose quality the
    advice is about): sent back with a change of any of it."""
    current = labeler.current_version
    return {
        **{name: getattr(labeler, name) for name in REVIEW_POLICY_FIELDS},
        "version": current.number if current else None,
    }


# What the admin's labeler form shows (the auto-approve band read-only).
LABELER_FIELDS = ("name", "slug", "kind", "active", *REVIEW_POLICY_FIELDS)


def labeler_snapshot(labeler: Labeler) -> dict[str, Any]:
    """The labeler as the admin's change form shows it, sent back with its save."""
    return {name: getattr(labeler, name) for name in LABELER_FIELDS}


def version_audit_values(version: LabelerVersion | None) -> dict[str, Any] | None:
    """A version as the audit log keeps it: its criteria as a digest, not the text (the
    version itself keeps the text; the log stays small and free of policy wording)."""
    if version is None:
        return None
    values = {name: getattr(version, name) for name in DRAFT_FIELDS if name != "criteria_text"}
    digest = hashlib.sha256(version.criteria_text.encode()).hexdigest()
    return {**values, "version_id": version.pk, "state": version.state, "criteria_sha256": digest}


def labeler_stale_check(*, labeler: Labeler, seen: dict[str, Any] | None) -> None:
    """Refuse (StaleEdit) a save of the admin's labeler form when the labeler changed since
    the form was shown (another admin's save, a threshold set on its page), rather than
    overwrite that change unseen. Locks the row: call it in the save's transaction."""
    locked = Labeler.objects.select_for_update().get(pk=labeler.pk)
    _stale_check("the labeler", seen=seen, now=labeler_snapshot(locked))


def model_warning(model: str) -> str:
    """What an admin who picks this model must read (empty: nothing to say)."""
    if model in api.DEPRECATED_MODELS:
        return f"{model} is {api.DEPRECATED_MODELS[model]}."
    return ""


@transaction.atomic
def labeler_version_create(
    *,
    labeler: Labeler,
    criteria_text: str = "",
    remote_labeler_id: str = "",
    remote_version_id: str = "latest",
    model: str = "",
    created_by=None,
    state: str = LabelerVersion.State.PUBLISHED,
) -> LabelerVersion:
    """Published versions are immutable: an edit is the next number; old labels keep their
    version. `state=DRAFT` makes the labeler's one draft instead (see labeler_draft_save)."""
    _policy_check(criteria_text=criteria_text, remote_labeler_id=remote_labeler_id, model=model)
    if model in api.DEPRECATED_MODELS:
        logger.warning("labeler %s uses %s: %s", labeler.slug, model, api.DEPRECATED_MODELS[model])
    locked = Labeler.objects.select_for_update().get(pk=labeler.pk)
    last = locked.versions.order_by("-number").values_list("number", flat=True).first() or 0
    published = state == LabelerVersion.State.PUBLISHED
    version = LabelerVersion.objects.create(
        labeler=locked,
        number=last + 1,
        state=state,
        published_at=timezone.now() if published else None,
        created_by=created_by,
        **_policy_fields(
            criteria_text=criteria_text,
            remote_labeler_id=remote_labeler_id,
            remote_version_id=remote_version_id,
            model=model,
        ),
    )
    if published:  # a draft is recorded by labeler_draft_save
        audit_record(
            action="criteria.publish",
            actor=created_by,
            obj=locked,
            after=version_audit_values(version),
        )
    return version


@transaction.atomic
def labeler_create(
    *,
    name: str,
    slug: str,
    kind: str,
    criteria_text: str = "",
    remote_labeler_id: str = "",
    remote_version_id: str = "latest",
    model: str = "",
    min_confidence: float | None = None,
    created_by=None,
) -> Labeler:
    """A new labeler with its first version published: it routes nowhere until a source is
    routed to it, so there is nothing to try out as a draft first."""
    if kind == Labeler.Kind.CRITERIA and remote_labeler_id.strip():
        raise ValueError("a saved-criteria labeler has no remote labeler id")
    if kind == Labeler.Kind.REMOTE and criteria_text.strip():
        raise ValueError("a remote labeler has no criteria text")
    labeler = Labeler.objects.create(name=name, slug=slug, kind=kind, min_confidence=min_confidence)
    labeler_version_create(
        labeler=labeler,
        criteria_text=criteria_text,
        remote_labeler_id=remote_labeler_id,
        remote_version_id=remote_version_id,
        model=model,
        created_by=created_by,
    )
    return labeler


@transaction.atomic
def labeler_draft_save(
    *,
    labeler: Labeler,
    criteria_text: str = "",
    remote_labeler_id: str = "",
    remote_version_id: str = "latest",
    model: str = "",
    created_by=None,
    seen: dict[str, Any] | None = None,
) -> LabelerVersion:
    """Save the labeler's draft (create it, or edit the one there is). A draft is never
    routed to: items keep being labeled with the published version until it is published.
    `seen`: the draft_snapshot the admin's page showed; another admin's save since refuses
    (StaleEdit) rather than overwrite it unseen."""
    _policy_check(criteria_text=criteria_text, remote_labeler_id=remote_labeler_id, model=model)
    locked = Labeler.objects.select_for_update().get(pk=labeler.pk)
    draft = locked.draft_version
    _stale_check("the draft", seen=seen, now=draft_snapshot(draft))
    before = version_audit_values(draft)
    if draft is None:
        draft = labeler_version_create(
            labeler=locked,
            criteria_text=criteria_text,
            remote_labeler_id=remote_labeler_id,
            remote_version_id=remote_version_id,
            model=model,
            created_by=created_by,
            state=LabelerVersion.State.DRAFT,
        )
    else:
        fields = _policy_fields(
            criteria_text=criteria_text,
            remote_labeler_id=remote_labeler_id,
            remote_version_id=remote_version_id,
            model=model,
        )
        for name, value in fields.items():
            setattr(draft, name, value)
        draft.created_by = created_by or draft.created_by
        draft.save(update_fields=[*fields, "created_by"])
    audit_record(
        action="criteria.draft_save",
        actor=created_by,
        obj=locked,
        before=before,
        after=version_audit_values(draft),
    )
    return draft


@transaction.atomic
def labeler_version_publish(
    *, version: LabelerVersion, seen: dict[str, Any] | None = None, published_by=None
) -> LabelerVersion:
    """Make a draft the labeler's current version: items routed from now on are labeled with
    it. Nothing already labeled is relabeled (an admin asks for that separately), and the
    verdict of labeled items does not change: a version with no answer yet leaves the older
    version's answer standing. `seen`: the draft_snapshot the admin's page showed; the
    publish is refused (StaleEdit) if the draft was edited since, so it publishes exactly
    the text the admin read."""
    locked = Labeler.objects.select_for_update().get(pk=version.labeler_id)
    draft = LabelerVersion.objects.select_for_update().get(pk=version.pk)
    if draft.state != LabelerVersion.State.DRAFT:
        raise ValueError(f"{draft} is already published")
    _stale_check("the draft", seen=seen, now=draft_snapshot(draft))
    # A version published meanwhile (the admin's add page) may have overtaken the draft's
    # number; the current version is the highest published number, so move the draft past it.
    # A draft has no labels, so nothing points at its number.
    last = locked.versions.order_by("-number").values_list("number", flat=True).first() or 0
    if draft.number < last:
        draft.number = last + 1
    draft.state = LabelerVersion.State.PUBLISHED
    draft.published_at = timezone.now()
    draft.save(update_fields=["number", "state", "published_at"])
    audit_record(
        action="criteria.publish",
        actor=published_by,
        obj=locked,
        after=version_audit_values(draft),
    )
    return draft


def labeler_min_confidence_set(
    *,
    labeler: Labeler,
    min_confidence: float | None,
    created_by=None,
    seen: dict[str, Any] | None = None,
) -> Reevaluation | None:
    """Set the minimum confidence of a "1" that flags; when it changed, the re-evaluation of
    undecided items it started (as the admin's save does), else None. `seen`: as for
    labeler_review_policy_set (the advice applied was computed for what the page showed)."""
    if min_confidence is not None and not 0.5 <= min_confidence <= 1.0:
        raise ValueError("a minimum confidence is between 0.5 and 1.0")
    with transaction.atomic():
        locked = Labeler.objects.select_for_update().get(pk=labeler.pk)
        return labeler_review_policy_set(
            labeler=locked,
            min_confidence=min_confidence,
            auto_approve_confidence=locked.auto_approve_confidence,
            audit_share=locked.audit_share,
            created_by=created_by,
            seen=seen,
        ).reevaluation


def labeler_review_policy_set(
    *,
    labeler: Labeler,
    min_confidence: float | None,
    auto_approve_confidence: float | None,
    audit_share: float,
    created_by=None,
    seen: dict[str, Any] | None = None,
) -> PolicyChange:
    """Set what a labeler's answers do: the minimum confidence of a "1" that flags, the
    auto-approve band of a "0", the audit share of unflagged items. Returns the fields that
    changed and, when any did, the re-evaluation of undecided items it started. `seen`: the
    review_policy_snapshot the admin's page showed; a change since (another admin's save, a
    version published) refuses (StaleEdit) instead of overwriting it unseen."""
    for name, value in (
        ("minimum confidence", min_confidence),
        ("auto-approve band", auto_approve_confidence),
    ):
        if value is not None and not 0.5 <= value <= 1.0:
            raise ValueError(f"the {name} is between 0.5 and 1.0 (the API's confidence range)")
    if not 0.0 <= audit_share <= 1.0:
        raise ValueError("the audit share is between 0 and 1")
    values = {
        "min_confidence": min_confidence,
        "auto_approve_confidence": auto_approve_confidence,
        "audit_share": audit_share,
    }
    with transaction.atomic():
        locked = Labeler.objects.select_for_update().get(pk=labeler.pk)
        _stale_check("the review policy", seen=seen, now=review_policy_snapshot(locked))
        changed = [name for name, value in values.items() if getattr(locked, name) != value]
        before = {name: getattr(locked, name) for name in changed}
        for name in changed:
            setattr(locked, name, values[name])
        if changed:
            locked.save(update_fields=changed)
            routing_cache.clear()
        reevaluation = labeler_settings_changed(
            labeler=locked, changed=changed, created_by=created_by
        )
        if changed:  # threshold, auto-approve band, audit share: one row, what changed
            audit_record(
                action="labeler.review_policy",
                actor=created_by,
                obj=locked,
                before=before,
                after={name: values[name] for name in changed},
            )
    for name in REVIEW_POLICY_FIELDS:  # the caller's object says what was saved
        setattr(labeler, name, getattr(locked, name))
    return PolicyChange(changed, reevaluation)


class PolicyChange(NamedTuple):
    changed: list[str]
    reevaluation: Reevaluation | None


def labeler_settings_changed(
    *, labeler: Labeler, changed: Iterable[str], created_by=None
) -> Reevaluation | None:
    """A labeler's threshold, auto-approve band, audit share or active flag changed (here, or
    in the admin's form): items already in (or out of) the queue were judged under the old
    setting, so the undecided ones are re-evaluated in the background. None if nothing
    changed."""
    changed = sorted(changed)
    if not changed:
        return None
    return reevaluation_start(
        reason=f"{labeler.slug}: {', '.join(changed)} changed",
        labeler=labeler,
        created_by=created_by,
    )


def source_setup(
    *, name: str, slug: str, labelers: list[Labeler] | None = None
) -> tuple[Source, str, str]:
    """Create a source routed to `labelers` (default: the default labeler); returns the
    source, its signing secret and its API token (shown once)."""
    chosen = labelers if labelers is not None else [labeler_default()]
    return source_create(source=Source(name=name, slug=slug), labelers=chosen)
