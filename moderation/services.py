"""Writes for sources, items, claims and decisions. Each function owns its transaction."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from contextlib import nullcontext
from datetime import timedelta
from itertools import product
from typing import NamedTuple

from django.conf import settings
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, connection, transaction
from django.db.models import Case, F, FloatField, JSONField, Q, Value, When
from django.db.models.functions import Coalesce
from django.utils import timezone

from moderation import callbacks
from moderation.intake import IntakePayload
from moderation.models import (
    AUDIT_QUEUE_SCORE,
    IN_QUEUE,
    REVIEWABLE,
    Decision,
    DecisionReason,
    GoldenAnswer,
    GoldenItem,
    Item,
    ItemRevision,
    MediaReveal,
    ReviewerSettings,
    Source,
    free_for,
    hash_token,
    new_api_token,
    new_webhook_secret,
    queue_key,
    shift_start,
)

logger = logging.getLogger(__name__)

EXTENSIONS = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/gif": "gif",
    "image/webp": "webp",
    "video/mp4": "mp4",
    "video/quicktime": "mov",
    "video/webm": "webm",
}


class ClaimConflict(Exception):
    """Another reviewer holds a live claim on the item."""


def source_create(*, name: str, slug: str, labelers) -> tuple[Source, str, str]:
    """Create a source routed to `labelers`.

    Returns the source, its signing secret and its API token; the token is not stored in
    clear, so this is the only time it can be shown.
    """
    token = new_api_token()
    secret = new_webhook_secret()
    with transaction.atomic():
        source = Source.objects.create(
            name=name, slug=slug, webhook_secret=secret, api_token_hash=hash_token(token)
        )
        source.labelers.set(labelers)
    return source, secret, token


def source_rotate_secret(*, source: Source, grace: timedelta) -> str:
    """New signing secret; the old one stays valid for `grace` so products can switch over."""
    secret = new_webhook_secret()
    source.previous_webhook_secret = source.webhook_secret
    source.previous_secret_expires_at = timezone.now() + grace
    source.webhook_secret = secret
    source.save(
        update_fields=["webhook_secret", "previous_webhook_secret", "previous_secret_expires_at"]
    )
    return secret


def source_set_callback_secret(*, source: Source, separate: bool) -> str:
    """Sign callbacks with a new secret of their own (returned, shown once), or again with
    the source's signing secret (`separate=False`)."""
    source.callback_secret = new_webhook_secret() if separate else ""
    source.save(update_fields=["callback_secret"])
    return source.callback_secret or source.webhook_secret


def source_valid_secrets(*, source: Source) -> list[str]:
    valid = [source.webhook_secret]
    if source.previous_webhook_secret and (
        source.previous_secret_expires_at and source.previous_secret_expires_at > timezone.now()
    ):
        valid.append(source.previous_webhook_secret)
    return valid


def _store_media(raw: bytes, mime: str, folder: str) -> str:
    """Content-addressed file: the same bytes are stored once, whoever sends them."""
    digest = hashlib.sha256(raw).hexdigest()
    name = f"{folder}/{digest[:2]}/{digest}.{EXTENSIONS[mime]}"
    if not default_storage.exists(name):
        name = default_storage.save(name, ContentFile(raw))
    return name


def _existing(source: Source, *, external_id: str, webhook_id: str) -> Item | None:
    """The item a request repeats or edits: by webhook-id first (a replay, even of an earlier
    revision), else by external_id."""
    by_webhook = (
        Item.objects.filter(source=source)
        .filter(Q(webhook_id=webhook_id) | Q(revisions__webhook_id=webhook_id))
        .first()
    )
    return by_webhook or Item.objects.filter(source=source, external_id=external_id).first()


def _is_repeat(item: Item, *, payload: IntakePayload, webhook_id: str) -> bool:
    return (
        item.webhook_id == webhook_id
        or item.content_hash == payload.content_hash
        or item.external_id != payload.external_id  # a webhook-id reused for another item
        or item.revisions.filter(webhook_id=webhook_id).exists()
    )


def item_ingest(*, source: Source, payload: IntakePayload, webhook_id: str) -> tuple[Item, bool]:
    """Store a new item, a new revision of an edited one, or return the one already stored;
    the flag says whether new content was accepted (a repeat stores nothing).

    Uniqueness is enforced by the database (source+external_id, source+webhook_id): the insert
    is tried first and a conflict answers with the stored item, so two identical requests
    racing each other still make one row. The same external_id with other content under a new
    webhook-id is an edit: a new revision, labeled again.
    """
    existing = None
    if payload.image or payload.video:
        # Media is written before the row; look first so a repeat writes nothing.
        existing = _existing(source, external_id=payload.external_id, webhook_id=webhook_id)
        if existing is not None and _is_repeat(existing, payload=payload, webhook_id=webhook_id):
            return existing, False
    media = _store_payload_media(payload)
    if existing is None:
        # One INSERT in autocommit: the item row alone is complete ("received"); beat's
        # dispatch routes it to labelers in batches, so intake does the least work it can.
        # Inside a caller's transaction, a savepoint keeps a conflict from breaking it.
        guard = transaction.atomic() if connection.in_atomic_block else nullcontext()
        try:
            with guard:
                item = Item.objects.create(
                    source=source,
                    external_id=payload.external_id,
                    webhook_id=webhook_id,
                    content_text=payload.content_text,
                    content_hash=payload.content_hash,
                    metadata=payload.metadata,
                    status=Item.Status.RECEIVED,
                    **media,
                )
            return item, True
        except IntegrityError:
            existing = _existing(source, external_id=payload.external_id, webhook_id=webhook_id)
            if existing is None:
                raise
    if _is_repeat(existing, payload=payload, webhook_id=webhook_id):
        return existing, False
    return _item_revise(existing, payload=payload, webhook_id=webhook_id, media=media)


def _store_payload_media(payload: IntakePayload) -> dict[str, str]:
    # A failed transaction leaves at most an unreferenced content-addressed file, never a
    # row pointing at nothing.
    media = {
        "content_image": "",
        "content_image_type": payload.image_type,
        "content_video": "",
        "content_video_type": payload.video_type,
    }
    if payload.image:
        media["content_image"] = _store_media(payload.image, payload.image_type, "images")
    if payload.video:
        media["content_video"] = _store_media(payload.video, payload.video_type, "videos")
    return media


_REVISED_FIELDS = (
    "webhook_id",
    "content_text",
    "content_image",
    "content_image_type",
    "content_video",
    "content_video_type",
    "content_hash",
    "metadata",
)


def _item_revise(
    item: Item, *, payload: IntakePayload, webhook_id: str, media: dict[str, str]
) -> tuple[Item, bool]:
    """Keep the current content as a revision and take the edit as the item's content: it
    goes back to the dispatch to be labeled again, undecided, whatever was decided before."""
    guard = transaction.atomic()
    try:
        with guard:
            locked = Item.objects.select_for_update().get(pk=item.pk)
            if _is_repeat(locked, payload=payload, webhook_id=webhook_id):
                return locked, False  # the same edit, raced by its own retry
            ItemRevision.objects.create(
                item=locked,
                number=locked.revision,
                received_at=locked.revised_at or locked.received_at,
                status=locked.status,
                violation_score=locked.violation_score,
                **{name: getattr(locked, name) for name in _REVISED_FIELDS},
            )
            new_content = {
                "webhook_id": webhook_id,
                "content_text": payload.content_text,
                "content_hash": payload.content_hash,
                "metadata": payload.metadata,
                **media,
            }
            for name, value in new_content.items():
                setattr(locked, name, value)
            locked.revision += 1
            locked.revised_at = timezone.now()
            locked.waiting_since = locked.revised_at
            locked.status = Item.Status.RECEIVED
            for name in ("violation_score", "queue_score", "flagged_at", "decided_at"):
                setattr(locked, name, None)
            # The edit restarts the SLA clock: it waits as new content.
            locked.queue_key, locked.sla_breached = None, False
            locked.claimed_by = None
            locked.claim_expires_at = None
            locked.save()
    except IntegrityError:
        # The edit's webhook-id belongs to another item of this source: a repeat of that one.
        other = Item.objects.filter(source_id=item.source_id, webhook_id=webhook_id).first()
        if other is None:
            raise
        return other, False
    return locked, True


UNDECIDED = (
    Item.Status.RECEIVED,
    Item.Status.LABELING,
    Item.Status.LABELED,
    Item.Status.FLAGGED,
    Item.Status.FAILED,
    Item.Status.UNROUTED,
    # An audit sample follows its labels like any undecided item (a later "1" flags it).
    Item.Status.AUDIT,
)


class ReceivedItem(NamedTuple):
    id: int
    source_id: int
    revision: int
    content_hash: str
    has_media: bool


def items_lock_received(*, limit: int) -> list[ReceivedItem]:
    """Received items, oldest first, locked until the caller's transaction ends; SKIP LOCKED
    so two dispatches never take the same item."""
    rows = (
        Item.objects.filter(status=Item.Status.RECEIVED)
        .select_for_update(skip_locked=True)
        .order_by("id")
        .values_list(
            "id", "source_id", "revision", "content_hash", "content_image", "content_video"
        )[:limit]
    )
    return [
        ReceivedItem(item_id, source_id, revision, content_hash, bool(image or video))
        for item_id, source_id, revision, content_hash, image, video in rows
    ]


def items_routed(*, routed: list[int], unrouted: list[int]) -> None:
    """Routed items wait for their labels. Items of a source routed to no labeler go to
    review, where a person sees why: nothing would ever label them."""
    Item.objects.filter(pk__in=routed).update(status=Item.Status.LABELING)
    Item.objects.filter(pk__in=unrouted).update(
        status=Item.Status.UNROUTED, queue_score=1.0, queue_key=_queue_key_sql(1.0)
    )


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
    auto_approve_reason: str = "",
) -> None:
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
    """
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
    if status == Item.Status.LABELED and auto_approve_reason:
        _item_auto_approve(
            item_id=item_id,
            violation_score=violation_score,
            revision=revision,
            versions=versions or [],
            reason=auto_approve_reason,
        )
        return
    undecided = Q(status__in=UNDECIDED)
    fields = {
        "violation_score": violation_score,
        "status": Case(When(undecided, then=Value(status)), default=F("status")),
        "queue_score": Case(When(undecided, then=Value(queue_score)), default=F("queue_score")),
        "queue_key": Case(
            When(undecided, then=_queue_key_sql(queue_score)), default=F("queue_key")
        ),
    }
    if versions is not None:
        # Whatever the status: a decided item relabeled with a new version is re-reviewed
        # against that version, and the new decision must say so.
        fields["verdict_versions"] = Value(versions, output_field=JSONField())
    if status == Item.Status.FLAGGED:
        fields["flagged_at"] = Case(
            When(undecided, then=Coalesce(F("flagged_at"), Value(timezone.now()))),
            default=F("flagged_at"),
        )
    # One UPDATE, whatever the item's state: the status moves only while it is undecided.
    items = Item.objects.filter(pk=item_id)
    if revision is not None:
        items = items.filter(revision=revision)
    items.update(**fields)


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
    if locked.status not in UNDECIDED:
        # Decided meanwhile (by a person, or by an earlier verdict): the score and versions
        # follow the labels, the decision stands.
        locked.violation_score = violation_score
        locked.verdict_versions = list(versions)
        locked.save(update_fields=["violation_score", "verdict_versions"])
        return
    decision = _decision_create(
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
    locked.status = Item.Status.DECIDED
    locked.decided_at = decision.created_at
    locked.queue_score = None
    locked.claimed_by = None
    locked.claim_expires_at = None
    _queue_key_sync(locked)
    locked.save(
        update_fields=[
            "violation_score",
            "verdict_versions",
            "status",
            "decided_at",
            "queue_score",
            "queue_key",
            "claimed_by",
            "claim_expires_at",
        ]
    )


class NotAllowed(Exception):
    """The reviewer's role or source restriction does not allow this."""


def queue_score_for(*, status: str, violation_score: float | None) -> float | None:
    """The review queue's sort score of an item in `status`: its violation score while
    flagged or escalated; 1.0 when no labeler could judge it, so it sits with the most likely
    violations; none outside the queue."""
    if status in (Item.Status.FAILED, Item.Status.UNROUTED):
        return 1.0
    if status == Item.Status.AUDIT:
        return AUDIT_QUEUE_SCORE
    if status in (Item.Status.FLAGGED, Item.Status.ESCALATED, Item.Status.REREVIEW):
        return violation_score if violation_score is not None else 1.0
    return None


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
                .filter(pk__in=batch, status=Item.Status.DECIDED)
                .only("id", "violation_score")
            )
            for item in items:
                item.status = Item.Status.REREVIEW
                item.queue_score = queue_score_for(
                    status=item.status, violation_score=item.violation_score
                )
                # The wait (and the source's SLA clock) starts now.
                item.waiting_since, item.sla_breached = now, False
                item.claimed_by, item.claim_expires_at = None, None
                _queue_key_sync(item)
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
    if moved:
        logger.info("%s sent %d decided items for re-review", requested_by, moved)
    return moved


def item_claim(*, item: Item, reviewer) -> bool:
    """Take (or renew) the item's review lease; False if another reviewer holds it."""
    now = timezone.now()
    claimed = (
        # Only while it waits for a person: an item decided a moment ago is not taken again.
        Item.objects.filter(pk=item.pk, status__in=REVIEWABLE)
        .filter(free_for(reviewer, now))
        .update(
            claimed_by=reviewer,
            claim_expires_at=now + timedelta(seconds=settings.REVIEW_LEASE_SECONDS),
        )
    )
    return bool(claimed)


def item_release(*, item: Item, reviewer) -> bool:
    """Give up the reviewer's claim so others can take the item at once."""
    return bool(
        Item.objects.filter(pk=item.pk, claimed_by=reviewer).update(
            claimed_by=None, claim_expires_at=None
        )
    )


def _reason_for(action: str, reason_id: int | None) -> DecisionReason | None:
    if reason_id is None:
        if action in (Decision.Action.REMOVE, Decision.Action.ESCALATE):
            raise ValueError(f"a reason is required to {action}")
        return None
    reason = DecisionReason.objects.filter(pk=reason_id, action=action, active=True).first()
    if reason is None:
        raise ValueError(f"that reason does not belong to {action}, or is no longer in use")
    return reason


def decision_record(
    *,
    item: Item,
    reviewer,
    action: str,
    reason_id: int | None = None,
    reason: str = "",
    note: str = "",
    decisions_seen: int | None = None,
    may_decide_escalated: bool = False,
) -> Decision:
    """Append a decision; the latest one is the item's current decision.

    A reason (from the admins' list) is required to remove or escalate. Escalated items are
    decided only by senior reviewers (`may_decide_escalated`): the senior's decision closes
    them. `decisions_seen`: how many decisions the reviewer's page showed; if someone decided
    in the meantime (their claim had expired), this decision would silently override theirs.
    """
    if action not in Decision.Action.values or action == Decision.Action.UNDO:
        raise ValueError(f"unknown action {action!r}")
    chosen = _reason_for(action, reason_id)
    with transaction.atomic():
        locked = Item.objects.select_for_update().get(pk=item.pk)
        if locked.status == Item.Status.ESCALATED and not may_decide_escalated:
            raise NotAllowed("escalated items are decided by senior reviewers")
        if decisions_seen is not None and locked.decisions.count() != decisions_seen:
            raise ClaimConflict(f"item {item.pk} was decided by someone else meanwhile")
        if (
            locked.claimed_by_id not in (None, reviewer.pk)
            and locked.claim_expires_at
            and locked.claim_expires_at > timezone.now()
        ):
            raise ClaimConflict(f"item {item.pk} is being reviewed by someone else")
        decision = _decision_create(
            item=locked,
            revision=locked.revision,
            reviewer=reviewer,
            action=action,
            reason=chosen.name if chosen else reason[:200],
            reason_choice=chosen,
            note=note,
            status_before=locked.status,
            labeler_versions=locked.verdict_versions,
        )
        escalated = action == Decision.Action.ESCALATE
        locked.status = Item.Status.ESCALATED if escalated else Item.Status.DECIDED
        locked.decided_at = decision.created_at
        # An escalated item waits in the seniors' queue, sorted like the main one.
        locked.queue_score = queue_score_for(
            status=locked.status, violation_score=locked.violation_score
        )
        locked.claimed_by = None
        locked.claim_expires_at = None
        _queue_key_sync(locked)
        locked.save(
            update_fields=[
                "status",
                "decided_at",
                "queue_score",
                "queue_key",
                "claimed_by",
                "claim_expires_at",
            ]
        )
    return decision


def decision_undo(*, decision: Decision, reviewer) -> Decision:
    """Reverse the reviewer's own latest decision on an item, shortly after making it: a new
    "undo" decision (history keeps both), and the item back where it stood, claimed by them.

    Refused when the grace period is over, when someone decided the item since, or when the
    product sent an edit since (the decision was about content that is no longer current).
    """
    if decision.reviewer_id != reviewer.pk:
        raise NotAllowed("only the reviewer who decided can undo")
    if decision.action == Decision.Action.UNDO:
        raise NotAllowed("an undo cannot be undone; decide the item again")
    now = timezone.now()
    if now - decision.created_at > timedelta(seconds=settings.REVIEW_UNDO_SECONDS):
        raise NotAllowed("too late to undo; decide the item again instead")
    with transaction.atomic():
        locked = Item.objects.select_for_update().get(pk=decision.item_id)
        latest = locked.decisions.order_by("-created_at", "-id").first()
        if latest is None or latest.pk != decision.pk or locked.revision != decision.revision:
            raise ClaimConflict("the item changed since that decision; look at it again")
        undo = _decision_create(
            item=locked,
            revision=locked.revision,
            reviewer=reviewer,
            action=Decision.Action.UNDO,
            reason=f"undo of {decision.get_action_display().lower()}",
            status_before=locked.status,
            undoes=decision,
            labeler_versions=locked.verdict_versions,
        )
        locked.status = decision.status_before or Item.Status.FLAGGED
        locked.queue_score = queue_score_for(
            status=locked.status, violation_score=locked.violation_score
        )
        # An undone senior decision puts the item back in the escalated queue.
        locked.decided_at = None if locked.status in UNDECIDED else locked.decided_at
        locked.claimed_by = reviewer
        locked.claim_expires_at = now + timedelta(seconds=settings.REVIEW_LEASE_SECONDS)
        _queue_key_sync(locked)
        locked.save(
            update_fields=[
                "status",
                "decided_at",
                "queue_score",
                "queue_key",
                "claimed_by",
                "claim_expires_at",
            ]
        )
    return undo


# --- Golden items: reviewers measured against answers an admin vouches for ------------------

GOLDEN_ACTIONS = (Decision.Action.APPROVE, Decision.Action.REMOVE)


class AlreadyAnswered(Exception):
    """The golden item was answered already (a double submit, or a second tab)."""


def golden_item_mark(*, item: Item, expected_action: str, note: str = "", created_by) -> GoldenItem:
    """Make a decided item golden at its current revision, expecting `expected_action`.

    Marking it again (e.g. an admin corrects the expected action) updates it, reactivates it
    and rescores the answers given so far against the new expectation.
    """
    if expected_action not in GOLDEN_ACTIONS:
        raise ValueError("the expected action of a golden item is approve or remove")
    with transaction.atomic():
        locked = Item.objects.select_for_update().get(pk=item.pk)
        # Only a decided item has an answer to vouch for; one waiting in the queue (or
        # escalated) would be served twice over, as real work and as a test.
        if locked.status != Item.Status.DECIDED:
            raise ValueError(
                f"only decided items can be golden (item {item.pk} is {locked.status})"
            )
        golden, _ = GoldenItem.objects.update_or_create(
            item=locked,
            defaults={
                "revision": locked.revision,
                "expected_action": expected_action,
                "note": note,
                "active": True,
                "created_by": created_by,
            },
        )
        answered = golden.answers.filter(answered_at__isnull=False)
        answered.filter(action=expected_action).update(correct=True)
        answered.exclude(action=expected_action).update(correct=False)
    return golden


def golden_item_unmark(*, golden: GoldenItem) -> None:
    """Stop serving the item and stop counting its answers (kept, should it be marked again).
    An answer already open stays answerable: its reviewer may be looking at it right now."""
    GoldenItem.objects.filter(pk=golden.pk).update(active=False)


def golden_answer_serve(*, golden: GoldenItem, reviewer) -> GoldenAnswer | None:
    """Hand the golden item to the reviewer: an open answer, which makes their item page show
    it as an undecided queue item. None if it was served to them already (each golden item
    once per reviewer: a second time it would be memory, not judgement)."""
    try:
        with transaction.atomic():
            return GoldenAnswer.objects.create(golden=golden, reviewer=reviewer)
    except IntegrityError:
        return None


def golden_answer_record(
    *,
    answer: GoldenAnswer,
    reviewer,
    action: str,
    reason_id: int | None = None,
    note: str = "",
) -> GoldenAnswer:
    """The reviewer's answer to a golden item served to them, scored against the expected
    action (an escalation never matches: the item had a clear answer). An answer skipped
    earlier may still be given, as a skipped ordinary item may still be decided.

    Never a Decision: the item, its history and its product are untouched. Reasons follow
    the rules of a real decision so that the page behaves exactly like one.
    """
    if answer.reviewer_id != reviewer.pk:
        raise NotAllowed("this golden item was not served to you")
    if action not in (*GOLDEN_ACTIONS, Decision.Action.ESCALATE):
        raise ValueError(f"unknown action {action!r}")
    chosen = _reason_for(action, reason_id)
    expected = GoldenItem.objects.values_list("expected_action", flat=True).get(pk=answer.golden_id)
    # Conditional UPDATE: a double submit answers once.
    answered = GoldenAnswer.objects.filter(pk=answer.pk, answered_at__isnull=True).update(
        answered_at=timezone.now(),
        action=action,
        reason=chosen.name if chosen else "",
        note=note,
        correct=action == expected,
    )
    if not answered:
        raise AlreadyAnswered(f"golden answer {answer.pk} was given already")
    answer.refresh_from_db()
    return answer


def golden_answer_skip(*, answer: GoldenAnswer, reviewer) -> bool:
    """The reviewer skipped (or released) a golden item served to them: the answer is kept
    as skipped, counting neither right nor wrong, rather than deleted.

    Kept, not deleted, because the reviewer has seen the item: served again later it would
    test their memory of it, which is why each golden item goes to a reviewer once. And a
    lead can see which golden items get skipped. answered_at stays empty, so every count of
    answers leaves skips out; if the reviewer comes back to the item (the back button, a
    mistaken `s`) they may still answer it, as they could decide a skipped ordinary item.
    False if it was answered or skipped already.
    """
    if answer.reviewer_id != reviewer.pk:
        raise NotAllowed("this golden item was not served to you")
    return bool(
        GoldenAnswer.objects.filter(pk=answer.pk, answered_at__isnull=True, action="").update(
            action=GoldenAnswer.SKIP
        )
    )


def media_reveal_record(*, item: Item, reviewer) -> None:
    """Count a media reveal for the reviewer's exposure (once per item and shift)."""
    settings_row = ReviewerSettings.objects.filter(user_id=reviewer.pk).first()
    since = shift_start(settings_row)
    if not MediaReveal.objects.filter(
        reviewer=reviewer, item=item, revealed_at__gte=since
    ).exists():
        MediaReveal.objects.create(reviewer=reviewer, item=item)


def reviewer_break_taken(*, reviewer) -> None:
    """The reviewer took a break: a new shift starts for the exposure budget."""
    ReviewerSettings.objects.update_or_create(
        user=reviewer, defaults={"shift_started_at": timezone.now()}
    )


def reviewer_settings_save(*, reviewer, **values) -> ReviewerSettings:
    """Save the media settings a reviewer chose (not their source restriction: admins set
    that)."""
    allowed = {
        "blur_media",
        "grayscale_media",
        "autoplay_video",
        "mute_video",
        "exposure_budget_reveals",
        "exposure_budget_minutes",
    }
    unknown = set(values) - allowed
    if unknown:
        raise ValueError(f"not a reviewer setting: {sorted(unknown)}")
    row, _ = ReviewerSettings.objects.update_or_create(user=reviewer, defaults=values)
    return row


# --- The queue's sort key and the review SLA -----------------------------------------------


def _queue_key_sql(score: float | None):
    """The queue key for `score` as an UPDATE expression: the row's own SLA flag decides."""
    if score is None:
        return Value(None, output_field=FloatField())
    return Case(
        When(sla_breached=True, then=Value(queue_key(score, breached=True))),
        default=Value(queue_key(score, breached=False)),
        output_field=FloatField(),
    )


def _queue_key_sync(item: Item) -> None:
    """Whatever a write did to queue_score, the sort key follows (call before save)."""
    item.queue_key = queue_key(item.queue_score, breached=item.sla_breached)


ESCALATED = Item.Status.ESCALATED

# A breach moves an item ahead of the unbreached items of its score band: exactly this
# much on the key (see models.queue_key).
_BREACH_SHIFT = 2.0


def items_sla_refresh(*, now=None) -> int:
    """Mark the waiting items that crossed their source's review SLA since the last run (the
    queue shows them first within their score band), and unmark those no longer past it (an
    admin lengthened or removed the SLA). Returns how many items changed.

    An item's wait starts when its current content arrived (waiting_since; an edit restarts
    it). Each UPDATE is one range of the index on (source, sla_breached, waiting_since), so
    a run costs the items that change, not the queue's length; beat runs it every minute.
    """
    now = now or timezone.now()
    changed = 0
    sources = Source.objects.values_list("id", "review_sla_minutes")
    # The queue's statuses match the index's condition; escalated items are few.
    for (source_id, sla_minutes), statuses in product(sources, (IN_QUEUE, (ESCALATED,))):
        waiting = Item.objects.filter(source_id=source_id, status__in=statuses)
        if sla_minutes:
            cutoff = now - timedelta(minutes=sla_minutes)
            crossed = waiting.filter(sla_breached=False, waiting_since__lt=cutoff)
            back = waiting.filter(sla_breached=True, waiting_since__gte=cutoff)
            changed += crossed.update(sla_breached=True, queue_key=F("queue_key") - _BREACH_SHIFT)
        else:
            back = waiting.filter(sla_breached=True)
        changed += back.update(sla_breached=False, queue_key=F("queue_key") + _BREACH_SHIFT)
    return changed


def _decision_create(*, item: Item, **fields) -> Decision:
    """Every decision, whoever makes it (a reviewer, or an automatic one), is made here, in
    the caller's transaction: it goes back to the product by callback once committed.

    The source's row lock is held from the insert to the commit, so a source's decision ids
    commit in increasing order: the decisions feed (keyset by id) then never skips one that
    committed late behind a higher id.
    """
    source = Source.objects.select_for_update().get(pk=item.source_id)
    decision = Decision.objects.create(item=item, **fields)
    callbacks.delivery_create(decision=decision, source=source)
    return decision
