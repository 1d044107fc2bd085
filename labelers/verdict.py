"""An item's verdict from its labels, handed to moderation through its one narrow call.

Only labelers that are active and routed to the item's source decide; for each, its newest
published version's answer counts (a draft never decides; an older version's answer stands
in while the newest is pending or failed, so publishing a version without relabeling
changes nothing). Labels of older
versions and of other labelers stay on the item as history.

An item no labeler flags, once every deciding labeler has answered, may still go to a person:
- as an **audit sample**: each labeler's `audit_share` of its unflagged items, drawn by a
  hash of the item and revision (the same draw every time the verdict is recomputed, so a
  re-evaluation never moves an item in or out of the sample at random); the draw goes to
  moderation with the verdict, which applies the item's team queue's own audit share
  instead when that queue has one;
- otherwise, when every deciding labeler has an **auto-approve band** and answered "0" at or
  above it, the system approves it (a decision with no reviewer); else it is left labeled.
"""

from __future__ import annotations

import hashlib
from typing import NamedTuple

from labelers.client import violation_score
from labelers.models import Label, LabelerVersion
from labelers.routing import Route, source_routing
from moderation.models import Item
from moderation.services.verdicts import Statement, item_labels_changed, written_then

OPEN_STATUSES = (
    Label.Status.PENDING,
    Label.Status.RUNNING,
    Label.Status.WAITING_KEY,
    Label.Status.FAILED_TRANSIENT,
)


class Answer(NamedTuple):
    """A label just stored as done, with what the verdict needs to know about it."""

    source_id: int
    labeler_id: int
    version_id: int
    revision: int
    label: str
    confidence: float


def answer_store(*, store: Statement, item_id: int, answered: Answer) -> bool:
    """Store a label's answer (`store`: its UPDATE, which changes nothing if the label is
    no longer the caller's) and the verdict on its item, both or neither; returns whether
    the answer was stored. When the answer comes from the current version of the only
    labeler routed to the item's source, it is the whole verdict (nothing else can decide):
    no lock, no read of the other labels, and for a plain verdict one statement with the
    answer's (moderation's door says when)."""
    route = _sole_route(answered)
    if route is None:
        return written_then(store, lambda: item_refresh(item_id=item_id))
    return _item_take(item_id, answered, route, together_with=store)


def item_refresh(*, item_id: int) -> None:
    """Recompute the item's verdict from its labels and hand it to moderation.

    Runs inside the caller's transaction. The item row is locked *before* the labels are
    read, so two labels of one item finishing at once are summed up one after the other:
    the second sees the first (otherwise both could report "still labeling"). A label just
    answered by the only labeler routed to the item's source is the whole verdict: see
    answer_store, which skips the lock and the read of the other labels.
    """
    locked = Item.objects.select_for_update().filter(pk=item_id)
    source_id, revision = locked.values_list("source_id", "revision").get()
    routes = {route.labeler_id: route for route in source_routing(source_id)}
    # The current revision's labels: (labeler, version number, status, label, confidence,
    # violation score), newest version first. Earlier revisions' labels are history.
    labels = list(
        Label.objects.filter(
            item_id=item_id,
            revision=revision,
            # Belt and braces: drafts are never routed, so they should have no labels.
            labeler_version__state=LabelerVersion.State.PUBLISHED,
        )
        .order_by("labeler_version__labeler_id", "-labeler_version__number")
        .values_list(
            "labeler_version__labeler_id",
            "labeler_version__number",
            "status",
            "label",
            "confidence",
            "violation_score",
            "labeler_version_id",
        )
    )
    if not labels:
        # No label of the current revision yet (a late answer about an earlier revision,
        # after an edit): the dispatch routes the new revision; nothing to judge until then.
        return
    deciding = [row for row in labels if row[0] in routes]
    if routes and not deciding:
        # Routing changed after this item was labeled and no routed labeler has seen it: its
        # history is the only judgment there is (a relabel gives it a current one).
        deciding, routes = labels, {}
    newest: dict[int, tuple] = {}
    answered: dict[int, tuple] = {}
    for row in deciding:
        labeler_id, status = row[0], row[2]
        newest.setdefault(labeler_id, row)
        if status == Label.Status.DONE:
            answered.setdefault(labeler_id, row)
    scores = [row[5] for row in answered.values() if row[5] is not None]
    flagged = any(_flags(row[3], row[4], routes.get(row[0])) for row in answered.values())
    labeling = any(row[2] in OPEN_STATUSES for row in newest.values())
    failed = any(row[2] == Label.Status.FAILED for row in newest.values())
    # Audit and auto-approval judge a finished, clean verdict of the labelers routed now,
    # each of which answered (a labeler with no answer yet cannot vouch for the item).
    complete = bool(routes) and not (flagged or labeling or failed) and set(answered) == set(routes)
    audit = complete and _audit_drawn(item_id, revision, list(routes.values()))
    auto_approve_reason = ""
    if complete:
        # Given even with an audit drawn: the item's team queue may have an audit share of
        # its own, which moderation applies instead of the labelers'.
        auto_approve_reason = _auto_approval(
            [(routes[labeler], row[3], row[4]) for labeler, row in answered.items()]
        )
    item_labels_changed(
        item_id=item_id,
        violation_score=max(scores) if scores else None,
        flagged=flagged,
        labeling=labeling,
        failed=failed,
        routed=bool(deciding),
        versions=sorted(row[6] for row in answered.values()),
        audit=audit,
        audit_draw=audit_draw(item_id, revision) if complete else None,
        auto_approve_reason=auto_approve_reason,
    )


def _item_take(
    item_id: int, answered: Answer, route: Route, *, together_with: Statement | None = None
) -> bool:
    """The verdict when `answered` is the whole of it (see answer_store)."""
    score = violation_score(answered.label, answered.confidence)
    flagged = _flags(answered.label, answered.confidence, route)
    audit = not flagged and _audit_drawn(item_id, answered.revision, [route])
    return item_labels_changed(
        item_id=item_id,
        violation_score=score,
        flagged=flagged,
        labeling=False,
        failed=False,
        revision=answered.revision,
        versions=[answered.version_id],
        audit=audit,
        audit_draw=None if flagged else audit_draw(item_id, answered.revision),
        auto_approve_reason=""
        if flagged
        else _auto_approval([(route, answered.label, answered.confidence)]),
        together_with=together_with,
    )


def _sole_route(answered: Answer) -> Route | None:
    """The route, when the answer is from the current version of the source's only labeler."""
    routes = source_routing(answered.source_id)
    if len(routes) == 1 and routes[0].version_id == answered.version_id:
        return routes[0]
    return None


def _flags(label: str, confidence: float | None, route: Route | None) -> bool:
    minimum = route.min_confidence if route is not None else None
    return label == "1" and (minimum is None or (confidence or 0) >= minimum)


def audit_draw(item_id: int, revision: int) -> float:
    """A number in [0, 1) fixed for the item revision: below a labeler's audit share, the
    revision is in the audit sample. A hash, not random(), so a recomputed verdict (every
    label that finishes, every re-evaluation) draws the same."""
    digest = hashlib.sha256(f"audit:{item_id}:{revision}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _audit_drawn(item_id: int, revision: int, routes: list[Route]) -> bool:
    share = max((route.audit_share for route in routes), default=0.0)
    return share > 0 and audit_draw(item_id, revision) < share


def _auto_approval(answers: list[tuple[Route, str, float | None]]) -> str:
    """The reason of an automatic approval when every answer is a "0" inside its labeler's
    auto-approve band; empty when any labeler has no band or is less sure."""
    if not answers:
        return ""
    for route, label, confidence in answers:
        band = route.auto_approve_confidence
        if band is None or label != "0" or confidence is None or confidence < band:
            return ""
    bands = ", ".join(
        f"{confidence:.2f} >= {route.auto_approve_confidence:.2f}"
        for route, _, confidence in answers
    )
    return f'auto-approved: "0" inside the auto-approve band ({bands})'[:200]
