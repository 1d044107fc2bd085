"""The one door from labelers into moderation's writes: received items handed to the
dispatch, routed, sent back to it, and the labelers' verdict on an item (flag, audit sample,
auto-approval). Plain values in, no labelers import."""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Callable
from datetime import datetime
from typing import NamedTuple

from django.db import connection, transaction
from django.db.models.functions import Substr
from django.utils import timezone
from psycopg.types.json import Jsonb

from lib.prepared import PreparedStatement
from moderation.language import SAMPLE_CHARS, detect_language
from moderation.models import (
    AUDIT_QUEUE_SCORE,
    FOLLOWS_LABELS,
    Decision,
    Item,
    queue_key,
)
from moderation.routing import rule_set
from moderation.services.banks import bank_hashes_match_recent, items_bank_match
from moderation.services.decisions import decision_create, item_decision_apply
from moderation.services.figures import item_figures_changed
from moderation.services.queue import queue_key_expression, queue_key_sync, queue_score_for
from moderation.services.routing import item_queue_audit_share, item_route, items_route


class ReceivedItem(NamedTuple):
    id: int
    source_id: int
    revision: int
    content_hash: str
    has_media: bool


def items_lock_received(*, limit: int) -> list[ReceivedItem]:
    """Received items, oldest first, locked until the caller's transaction ends; SKIP LOCKED
    so two dispatches never take the same item. Their text's language is detected and
    stored here, before banks, labels and routing read it (the webhook's request does not
    pay for it): one UPDATE per language found in the batch."""
    rows = list(
        Item.objects.filter(status=Item.Status.RECEIVED)
        .select_for_update(skip_locked=True)
        .order_by("id")
        .values_list(
            "id",
            "source_id",
            "revision",
            "content_hash",
            "content_image",
            "content_video",
            "language",
            # Only what the detection reads of a long text.
            Substr("content_text", 1, SAMPLE_CHARS),
        )[:limit]
    )
    languages: dict[str, list[int]] = {}
    for item_id, *_, language, sample in rows:
        if not language and (detected := detect_language(sample or "")):
            languages.setdefault(detected, []).append(item_id)
    for language, ids in languages.items():
        Item.objects.filter(pk__in=ids).update(language=language)
    return [
        ReceivedItem(item_id, source_id, revision, content_hash, bool(image or video))
        for item_id, source_id, revision, content_hash, image, video, _, _ in rows
    ]


def items_bank_settle(*, item_ids: list[int]) -> set[int]:
    """The received items (locked by the caller) not to route now: those a hash bank settled
    before labeling (hashed once, matched, acted on: moderation.services.banks), and those
    left for the next sweep once its hashing budget is spent."""
    return items_bank_match(item_ids=item_ids)


def bank_hashes_retro_match(*, bank_hash_ids: list[int], days: int) -> int:
    """Newly banked hashes matched against the items of the last `days` (the task's door)."""
    return bank_hashes_match_recent(bank_hash_ids=bank_hash_ids, days=days)


def items_routed(*, routed: list[int], unrouted: list[int]) -> None:
    """Routed items wait for their labels. Items of a source routed to no labeler go to
    review, where a person sees why: nothing would ever label them."""
    Item.objects.filter(pk__in=routed).update(status=Item.Status.LABELING)
    Item.objects.filter(pk__in=unrouted).update(
        status=Item.Status.UNROUTED, queue_score=1.0, queue_key=queue_key_expression(1.0)
    )
    items_route(item_ids=unrouted)


def items_route_again(*, source_id: int) -> int:
    """Items that waited in review because their source had no labeler go back to the
    dispatch, now that it has one."""
    return Item.objects.filter(source_id=source_id, status=Item.Status.UNROUTED).update(
        status=Item.Status.RECEIVED, queue_score=None, queue_key=None
    )


def item_labels_changed(
    *,
    item_id: int,
    violation_score: float | None,
    flagged: bool,
    labeling: bool,
    failed: bool,
    routed: bool = True,
    revision: int | None = None,
    versions: list[int] | None = None,
    audit: bool = False,
    audit_draw: float | None = None,
    auto_approve_reason: str = "",
    together_with: Statement | None = None,
) -> bool:
    """Take the labelers' verdict on an item: its violation score, and whether it is flagged,
    still being labeled, failed, or judged by no labeler routed to its source. Decided items
    keep their status; their score follows.

    An item is flagged as soon as any labeler flags it, so reviewers see it before slower
    labelers answer; its score keeps rising as they do. Failed and unrouted items go to the
    queue with score 1.0: no machine judged them, so a person must. `revision`: take the
    verdict only while the item is still at that revision (an edit makes it stale).
    `versions`: the labeler versions whose answers made the verdict (kept with it, and with
    the decision later made on it). A clean verdict may come with `audit` (the item goes to
    the queue as an audit sample) or an `auto_approve_reason` (the system approves it).
    `audit_draw`: the clean verdict's audit draw in [0, 1): when the team queue the item
    would be routed to has an audit share of its own, that share decides the sample, not
    the labelers' (`audit`).

    `together_with`: a write of the caller's (an UPDATE that ends with its WHERE clause,
    `%s` placeholders) the verdict goes with: both or neither, and the verdict only if that
    write changed a row. Returns whether it did (True without one). A plain verdict (no
    auto-approval, no flag to count, no routing rule, no report on the item) is then one
    statement, committed alone: the commonest verdict costs one round trip (PostgreSQL;
    elsewhere, one transaction).
    """
    if audit_draw is not None and routed and not (flagged or labeling or failed):
        share = item_queue_audit_share(item_id=item_id, violation_score=violation_score)
        if share is not None:
            audit = audit_draw < share
    if not routed:
        status, queue_score = Item.Status.UNROUTED, 1.0
    elif flagged:
        status, queue_score = Item.Status.FLAGGED, violation_score
    elif labeling:
        status, queue_score = Item.Status.LABELING, None
    elif failed:
        status, queue_score = Item.Status.FAILED, 1.0
    elif audit:
        status, queue_score = Item.Status.AUDIT, AUDIT_QUEUE_SCORE
    else:
        status, queue_score = Item.Status.LABELED, None
    auto_approve = status == Item.Status.LABELED and bool(auto_approve_reason)
    verdict = {
        "item_id": item_id,
        "status": status,
        "violation_score": violation_score,
        "queue_score": queue_score,
        "revision": revision,
        "versions": versions,
    }
    if together_with is not None:
        plain = not auto_approve and status != Item.Status.FLAGGED and not rule_set().rules
        if plain and connection.vendor == "postgresql":
            return _item_verdict_together(together_with, verdict)
        return written_then(
            together_with,
            lambda: _item_verdict_take(verdict, auto_approve_reason=auto_approve_reason),
        )
    _item_verdict_take(verdict, auto_approve_reason=auto_approve_reason)
    return True


def _item_verdict_take(verdict: dict, *, auto_approve_reason: str) -> None:
    item_id, status = verdict["item_id"], verdict["status"]
    if status == Item.Status.LABELED and auto_approve_reason:
        _item_auto_approve(
            item_id=item_id,
            violation_score=verdict["violation_score"],
            revision=verdict["revision"],
            versions=verdict["versions"] or [],
            reason=auto_approve_reason,
        )
        return
    if status == Item.Status.FLAGGED:
        # The item may become flagged now: its other labels, counted on earlier days as
        # "no labeler flagged it", are recounted (the estimated recall reads that).
        item_figures_changed(item_id=item_id)
    if not _item_verdict_update(**verdict):
        _reported_item_labels_changed(**verdict)
    # A new label or verdict is a new fact: the item's queue follows (no query without rules).
    item_route(item_id=item_id)


# A write and a value list, as a cursor takes them.
Statement = tuple[str, list]


def _executed(statement: Statement) -> int:
    """Run a write; how many rows it changed."""
    with connection.cursor() as cursor:
        cursor.execute(*statement)
        return cursor.rowcount


def written_then(write: Statement, then: Callable[[], None]) -> bool:
    """`write` and then `then`, in one transaction: `then` only if the write changed a row.
    Returns whether it did (a label's answer, stored only while its attempt holds it, and
    the verdict that follows from it)."""
    with transaction.atomic():
        if not _executed(write):
            return False
        then()
    return True


@functools.lru_cache(maxsize=64)
def _together_statement(sql: str, types: tuple[str, ...]) -> PreparedStatement:
    """The statement PREPAREd once per session and shape (a few: which fields the write
    sets, whether the item leaves the queue): parsing and planning its three parts cost
    PostgreSQL about as much as running them. `types`: its values' PostgreSQL types, from
    their Python types ("unknown", PostgreSQL's to infer from the column, for a NULL)."""
    numbers = itertools.count()
    named = re.sub("%s", lambda _: f"%(p{next(numbers)})s", sql)
    return PreparedStatement(
        "moderation_verdict_with", named, [(f"p{n}", kind) for n, kind in enumerate(types)]
    )


def _pg_type(value) -> str:
    # bool before int: a bool is an int to Python.
    for python, kind in ((bool, "boolean"), (int, "bigint"), (float, "double precision"),
                         (str, "text"), (datetime, "timestamptz"), (Jsonb, "jsonb")):  # fmt: skip
        if isinstance(value, python):
            return kind
    return "unknown"


def _item_verdict_together(together_with: Statement, verdict: dict) -> bool:
    """The caller's write and the item's plain verdict in one statement (autocommit: one
    round trip, one commit). The verdict's UPDATE runs only if the write changed a row.
    An item with a report is never written here (its place is computed under its lock): the
    statement then writes nothing at all, and both go the way of any other verdict, in one
    transaction. A report that arrives between the statement's snapshot and its UPDATE of
    the item (the report's lock makes it wait, then its condition fails) leaves the item
    unwritten with the caller's write done: that verdict is then taken on its own at once."""
    write, write_params = together_with
    update, update_params = _item_verdict_sql(**verdict)
    item = connection.ops.quote_name(Item._meta.db_table)
    sql = (
        f"WITH reported AS (SELECT 1 FROM {item} WHERE id = %s AND report_score IS NOT NULL), "  # noqa: S608 (names of the code)
        f"together AS ({write} AND NOT EXISTS (SELECT 1 FROM reported) RETURNING 1), "
        f"verdict AS ({update} AND EXISTS (SELECT 1 FROM together) RETURNING 1) "
        "SELECT (SELECT count(*) FROM together), (SELECT count(*) FROM verdict), "
        "EXISTS (SELECT 1 FROM reported)"
    )
    params = [verdict["item_id"], *write_params, *update_params]
    statement = _together_statement(sql, tuple(_pg_type(value) for value in params))
    written, taken, reported = statement.fetchone(
        {f"p{n}": value for n, value in enumerate(params)}
    )
    if reported:
        return written_then(
            together_with, lambda: _item_verdict_take(verdict, auto_approve_reason="")
        )
    if written and not taken:
        # Nothing to change (the item reads so already, was edited, or is gone) or reported
        # since the snapshot: the latter is taken under the item's lock.
        _reported_item_labels_changed(**verdict)
    return bool(written)


# An item whose status still follows its labels (written into the SQL: constants of the code).
_UNDECIDED = "status IN (" + ", ".join(f"'{status}'" for status in FOLLOWS_LABELS) + ")"


def _item_verdict_update(
    *,
    item_id: int,
    status: str,
    violation_score: float | None,
    queue_score: float | None,
    revision: int | None,
    versions: list[int] | None,
) -> int:
    """One UPDATE, whatever the item's state: the status (and its place in the queue) moves
    only while the item is undecided; its score and verdict versions follow in any case.
    Skips a reported item (its place is computed under its lock) and, so that a label that
    changes nothing writes nothing (a relabel giving the same answer), an item that already
    reads so. Returns 0 in those cases, and for an item gone or edited since (`revision`).

    Written out: the ORM's CASE expressions cost more CPU to compile and bind than the
    round trip, once per label."""
    return _executed(
        _item_verdict_sql(
            item_id=item_id,
            status=status,
            violation_score=violation_score,
            queue_score=queue_score,
            revision=revision,
            versions=versions,
        )
    )


def _item_verdict_sql(
    *,
    item_id: int,
    status: str,
    violation_score: float | None,
    queue_score: float | None,
    revision: int | None,
    versions: list[int] | None,
) -> Statement:
    """_item_verdict_update's statement."""
    quote = connection.ops.quote_name
    differs = "IS NOT" if connection.vendor == "sqlite" else "IS DISTINCT FROM"
    sets = [
        "violation_score = %s",
        f"status = CASE WHEN {_UNDECIDED} THEN %s ELSE status END",
        f"queue_score = CASE WHEN {_UNDECIDED} THEN %s ELSE queue_score END",
    ]
    params: list = [violation_score, status, queue_score]
    changed = [
        f"violation_score {differs} %s",
        f"({_UNDECIDED} AND (status <> %s OR queue_score {differs} %s))",
    ]
    changed_params: list = [violation_score, status, queue_score]
    if queue_score is None:
        sets.append(f"queue_key = CASE WHEN {_UNDECIDED} THEN NULL ELSE queue_key END")
        changed.append(f"({_UNDECIDED} AND queue_key IS NOT NULL)")
    else:
        key = "CASE WHEN sla_breached THEN %s ELSE %s END"
        keys = [queue_key(queue_score, breached=True), queue_key(queue_score, breached=False)]
        sets.append(f"queue_key = CASE WHEN {_UNDECIDED} THEN {key} ELSE queue_key END")
        params += keys
        changed.append(f"({_UNDECIDED} AND queue_key {differs} {key})")
        changed_params += keys
    if versions is not None:
        # Whatever the status: a decided item relabeled with a new version is re-reviewed
        # against that version, and the new decision must say so.
        field = Item._meta.get_field("verdict_versions")
        value = field.get_db_prep_save(list(versions), connection)  # type: ignore[union-attr]
        sets.append("verdict_versions = %s")
        params.append(value)
        changed.append(f"verdict_versions {differs} %s")
        changed_params.append(value)
    if status == Item.Status.FLAGGED:
        at = connection.ops.adapt_datetimefield_value(timezone.now())
        sets.append(
            f"flagged_at = CASE WHEN {_UNDECIDED} THEN COALESCE(flagged_at, %s) ELSE flagged_at END"
        )
        params.append(at)
        changed.append(f"({_UNDECIDED} AND flagged_at IS NULL)")
    where = "id = %s AND report_score IS NULL"
    params.append(item_id)
    if revision is not None:
        where += " AND revision = %s"
        params.append(revision)
    sql = (
        f"UPDATE {quote(Item._meta.db_table)} SET {', '.join(sets)} "  # noqa: S608 (names and constants of the code)
        f"WHERE {where} AND ({' OR '.join(changed)})"
    )
    return sql, params + changed_params


def _reported_item_labels_changed(
    *,
    item_id: int,
    status: str,
    violation_score: float | None,
    revision: int | None,
    versions: list[int] | None,
    queue_score: float | None = None,
) -> None:
    """The verdict on an item with open reports: it is in the queue whatever its labels said
    (not flagged: "reported"), at the higher of its violation and report scores; never
    approved automatically. `queue_score`: the unreported item's (not used: computed here)."""
    with transaction.atomic():
        locked = (
            Item.objects.select_for_update().filter(pk=item_id, report_score__isnull=False).first()
        )
        if locked is None or (revision is not None and locked.revision != revision):
            return  # gone, not reported, or edited since
        _reported_verdict_apply(
            locked, status=status, violation_score=violation_score, versions=versions
        )


def _reported_verdict_apply(
    locked: Item, *, status: str, violation_score: float | None, versions: list[int] | None
) -> None:
    locked.violation_score = violation_score
    if versions is not None:
        locked.verdict_versions = list(versions)
    if locked.status in FOLLOWS_LABELS:
        if status in (Item.Status.LABELING, Item.Status.LABELED):
            status = Item.Status.REPORTED
        if status == Item.Status.FLAGGED and locked.flagged_at is None:
            locked.flagged_at = timezone.now()
            item_figures_changed(item_id=locked.pk)
        locked.status = status
        locked.queue_score = queue_score_for(
            status=status, violation_score=violation_score, report_score=locked.report_score
        )
        queue_key_sync(locked)
    locked.save(
        update_fields=[
            "violation_score",
            "verdict_versions",
            "status",
            "flagged_at",
            "queue_score",
            "queue_key",
        ]
    )


def _item_auto_approve(
    *, item_id: int, violation_score: float | None, revision: int | None, versions, reason: str
) -> None:
    """The system approves an item its labelers cleared inside their auto-approve bands: a
    decision with no reviewer (in the history, sent back to the product like any other); the
    item never enters the queue. Runs once per revision: the lock and the undecided check
    make a second verdict on the same revision (another label, a re-evaluation) do nothing."""
    with transaction.atomic():
        _item_auto_approve_locked(
            item_id=item_id,
            violation_score=violation_score,
            revision=revision,
            versions=versions,
            reason=reason,
        )


def _item_auto_approve_locked(
    *, item_id: int, violation_score: float | None, revision: int | None, versions, reason: str
) -> None:
    locked = Item.objects.select_for_update().filter(pk=item_id).first()
    if locked is None or (revision is not None and locked.revision != revision):
        return  # gone, or edited since: this verdict is about content no longer current
    if (
        locked.claimed_by_id is not None
        and locked.claim_expires_at is not None
        and locked.claim_expires_at > timezone.now()
    ):
        # A reviewer holds it (an audit sample, or a flagged item a threshold change just
        # cleared): their decision, not the system's, settles it.
        return
    if locked.status not in FOLLOWS_LABELS or locked.report_score is not None:
        # Decided meanwhile (by a person, or by an earlier verdict): the score and versions
        # follow the labels, the decision stands. Reported: users asked for a person.
        if locked.report_score is not None:
            _reported_verdict_apply(
                locked,
                status=Item.Status.LABELED,
                violation_score=violation_score,
                versions=versions,
            )
            return
        locked.violation_score = violation_score
        locked.verdict_versions = list(versions)
        locked.save(update_fields=["violation_score", "verdict_versions"])
        return
    decision = decision_create(
        item=locked,
        revision=locked.revision,
        reviewer=None,
        action=Decision.Action.APPROVE,
        reason=reason,
        status_before=locked.status,
        labeler_versions=list(versions),
    )
    locked.violation_score = violation_score
    locked.verdict_versions = list(versions)
    item_decision_apply(
        locked,
        status=Item.Status.DECIDED,
        decided_at=decision.created_at,
        decided_action=decision.action,
        also=("violation_score", "verdict_versions"),
    )
