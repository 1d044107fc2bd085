"""Reads about labels that pages show."""

from __future__ import annotations

import difflib
from typing import Any

from django.conf import settings
from django.db.models import Count, Min
from django.utils import timezone
from django.utils.timesince import timesince

from labelers.breaker import breaker_status
from labelers.models import DispatchHeartbeat, Label, Labeler, LabelerVersion
from labelers.services import source_routing
from moderation.models import Decision, Item


def labeling_health() -> dict[str, Any]:
    """Labels that are not done, by status; items not yet routed to labelers ("received");
    whether the circuit breaker holds calls back ("breaker"): what reviewers and admins must
    see is stuck or still to come."""
    finished = (Label.Status.DONE, Label.Status.SUPERSEDED)
    open_statuses = [s for s in Label.Status.values if s not in finished]
    rows = (
        Label.objects.filter(status__in=open_statuses)
        .values_list("status")
        .annotate(n=Count("id"))
        .order_by()
    )
    health: dict[str, Any] = dict(rows)
    if received := Item.objects.filter(status=Item.Status.RECEIVED).count():
        health["received"] = received
    health["breaker"] = breaker_status()
    return health


def labeling_stalled() -> str | None:
    """Why labeling is not moving, in words, or None: the dispatch (beat's sweep) has not
    run for LABEL_DISPATCH_STALL_SECONDS, or received items have waited that long for it.
    Without this an empty queue reads as "nothing to review" while nothing is labeled."""
    now = timezone.now()
    limit = settings.LABEL_DISPATCH_STALL_SECONDS
    ran_at = DispatchHeartbeat.objects.filter(pk=1).values_list("ran_at", flat=True).first()
    oldest = Item.objects.filter(status=Item.Status.RECEIVED).aggregate(at=Min("received_at"))
    waited = oldest["at"] is not None and (now - oldest["at"]).total_seconds() > limit
    if ran_at is not None and (now - ran_at).total_seconds() > limit:
        return (
            f"Labeling is stalled: the dispatcher last ran {timesince(ran_at, now)} ago; "
            "is beat running?"
        )
    if ran_at is None and oldest["at"] is not None:
        return "Labeling is stalled: the dispatcher has never run; is beat running?"
    if waited:
        return (
            f"Labeling is behind: items have waited {timesince(oldest['at'], now)} to be "
            "sent to the labelers; are the workers consuming the dispatch queue?"
        )
    return None


def source_routing_problem(source_id: int) -> str:
    """Why the source's items would reach no labeler, in words; empty when routing works."""
    if not source_routing(source_id):
        return (
            "no active labeler with a published version is routed to this source: its items go to "
            "review unlabeled"
        )
    return ""


def version_policy_lines(version: LabelerVersion) -> list[str]:
    """What a version sends, as lines to compare: the model, then the criteria text or the
    remote labeler and its version."""
    lines = [f"model: {version.model or 'automatic'}"]
    if version.remote_labeler_id:
        lines += [
            f"remote labeler: {version.remote_labeler_id}",
            f"remote version: {version.remote_version_id or 'latest'}",
        ]
    else:
        lines += version.criteria_text.splitlines()
    return lines


def line_diff(before: list[str], after: list[str]) -> list[tuple[str, str]]:
    """(kind, line) pairs of a unified diff: kind is "add", "remove", "same" or "hunk".
    Plain text: the template escapes it."""
    kinds = {"+": "add", "-": "remove", " ": "same", "@": "hunk"}
    rows = []
    for line in difflib.unified_diff(before, after, lineterm="", n=3):
        if line.startswith(("+++", "---")):
            continue
        rows.append((kinds.get(line[:1], "same"), line[1:] if line[:1] in "+- " else line))
    return rows


def labeler_versions(labeler: Labeler):
    """A labeler's versions, newest first, with how many labels each gave."""
    return labeler.versions.annotate(labels_count=Count("labels")).order_by("-number")


# Decided items are read this many at a time when looking for decisions made under older
# versions: a bounded read per step, however many items a source has.
DECIDED_SCAN_BATCH = 1000


def decided_under_older_versions(*, labeler: Labeler) -> list[int]:
    """Items decided (status "decided") of the sources routed to this labeler whose current
    decision was made while an older version of it was in force: the candidates for
    re-review after its criteria changed.

    The decision's labeler_versions is a JSON list, which SQLite cannot search; so items are
    read by id in batches, each with its decisions' (item, labeler_versions) only, and the
    lists are checked here.
    """
    current = labeler.current_version
    if current is None:
        return []
    older = set(labeler.versions.filter(number__lt=current.number).values_list("id", flat=True))
    source_ids = list(labeler.sources.values_list("id", flat=True))
    if not older or not source_ids:
        return []
    decided = Item.objects.filter(status=Item.Status.DECIDED, source_id__in=source_ids)
    found: list[int] = []
    after = 0
    while True:
        batch = list(
            decided.filter(pk__gt=after)
            .order_by("pk")
            .values_list("pk", flat=True)[:DECIDED_SCAN_BATCH]
        )
        if not batch:
            return found
        after = batch[-1]
        # The current decision is the item's latest one that is neither an undo nor undone;
        # ids grow with time, so the last row per item wins.
        current_versions: dict[int, list] = {}
        rows = (
            Decision.objects.filter(item_id__in=batch, undone_by__isnull=True)
            .exclude(action=Decision.Action.UNDO)
            .order_by("id")
            .values_list("item_id", "labeler_versions")
        )
        for item_id, versions in rows:
            current_versions[item_id] = versions or []
        found += [
            item_id for item_id in batch if older.intersection(current_versions.get(item_id, ()))
        ]
