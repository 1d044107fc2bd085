"""Decisions: every one is made here (a reviewer's, a senior's, an undo, the system's
auto-approval through decision_create), and its callback to the product is created with it."""

from __future__ import annotations

from datetime import timedelta
from typing import NamedTuple

from django.conf import settings
from django.db import transaction
from django.db.models import Count
from django.utils import timezone

from audit.services import audit_record
from lib.text import plural
from moderation.callbacks.deliveries import delivery_create
from moderation.errors import ClaimConflict, NotAllowed, StaleRevision
from moderation.models import (
    FOLLOWS_LABELS,
    NOTE_MAX_LENGTH,
    REMOVE_ALL_BATCH,
    REVIEWABLE,
    Author,
    Decision,
    DecisionReason,
    Item,
    Queue,
    Source,
)
from moderation.selectors.authors import author_open_items
from moderation.services.authors import decision_strikes
from moderation.services.figures import item_figures_changed
from moderation.services.items import item_revision_check
from moderation.services.queue import queue_key_sync, queue_score_for
from moderation.services.reports import reports_answer, reports_answered
from moderation.services.routing import item_route
from moderation.tasks import callback_deliver_task

REASON_KEYS = range(1, 10)


def decision_reason_save(*, reason: DecisionReason) -> DecisionReason:
    """Save a reason an admin added or changed. An active reason without a key takes the
    lowest digit no reason of its action has ever held, archived ones included: a reviewer
    who learnt "1 r" for an archived reason must not remove with a new one by the same keys
    (an admin may still give it that digit, on purpose). None when no digit is left: it is
    picked by pointer. No other reason's key ever changes here."""
    with transaction.atomic():
        if reason.active and reason.key is None:
            taken = set(
                DecisionReason.objects.filter(action=reason.action)
                .exclude(pk=reason.pk)
                .select_for_update()
                .values_list("key", flat=True)
            )
            reason.key = next((key for key in REASON_KEYS if key not in taken), None)
        reason.save()
    return reason


def decision_reason(action: str, reason_id: int | None) -> DecisionReason | None:
    if reason_id is None:
        if action in (Decision.Action.REMOVE, Decision.Action.ESCALATE):
            raise ValueError(f"a reason is required to {action}")
        return None
    reason = DecisionReason.objects.filter(pk=reason_id, action=action, active=True).first()
    if reason is None:
        raise ValueError(f"that reason does not belong to {action}, or is no longer in use")
    return reason


def note_check(note: str) -> None:
    """A note longer than NOTE_MAX_LENGTH is refused, with its length and the limit."""
    if len(note) > NOTE_MAX_LENGTH:
        raise ValueError(
            f"the note is {len(note):,} characters long; at most {NOTE_MAX_LENGTH:,} are "
            "accepted, shorten it"
        )


def item_queue(item: Item) -> Queue | None:
    """The queue the item is in (the default queue when no rule routed it)."""
    if item.queue_id is not None:
        return Queue.objects.filter(pk=item.queue_id).first()
    return Queue.objects.filter(is_default=True).first()


def decision_record(
    *,
    item: Item,
    reviewer,
    action: str,
    reason_id: int | None = None,
    reason: str = "",
    note: str = "",
    decisions_seen: int | None = None,
    revision: int | None = None,
    may_decide_escalated: bool = False,
) -> Decision:
    """Append a decision; the latest one is the item's current decision.

    A reason (from the admins' list) is required to remove or escalate. Escalated items are
    decided only by senior reviewers (`may_decide_escalated`): the senior's decision closes
    them. `decisions_seen`: how many decisions the reviewer's page showed; if someone decided
    in the meantime (their claim had expired), this decision would silently override theirs.
    `revision`: the revision the reviewer's page showed; an edit since refuses the decision
    (StaleRevision), so a decision only ever applies to content the reviewer saw.
    """
    if action not in Decision.Action.values or action == Decision.Action.UNDO:
        raise ValueError(f"unknown action {action!r}")
    chosen = decision_reason(action, reason_id)
    note_check(note)
    with transaction.atomic():
        locked = Item.objects.select_for_update().get(pk=item.pk)
        item_revision_check(locked, revision=revision)
        if locked.status == Item.Status.ESCALATED and not may_decide_escalated:
            raise NotAllowed("escalated items are decided by senior reviewers")
        queue = item_queue(locked)
        if queue is not None and not queue.allows(action):
            raise NotAllowed(f"the {queue.name} queue does not allow {action}")
        if decisions_seen is not None and locked.decisions.count() != decisions_seen:
            latest = locked.decisions.order_by("-created_at", "-id").first()
            if latest is not None and latest.reviewer_id == reviewer.pk:
                # A stale tab of their own: nobody else was involved.
                raise ClaimConflict(
                    f"you already decided item {item.pk} ("
                    f"{latest.get_action_display().lower()}) in another tab or window"
                )
            raise ClaimConflict(f"item {item.pk} was decided by someone else meanwhile")
        if (
            locked.claimed_by_id not in (None, reviewer.pk)
            and locked.claim_expires_at
            and locked.claim_expires_at > timezone.now()
        ):
            raise ClaimConflict(f"item {item.pk} is being reviewed by someone else")
        decision = decision_create(
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
        # An escalated item waits in the seniors' queue, sorted like the main one.
        item_decision_apply(
            locked,
            status=Item.Status.ESCALATED if escalated else Item.Status.DECIDED,
            decided_at=decision.created_at,
            decided_action=action,
        )
        audit_record(
            action=f"decision.{action}",
            actor=reviewer,
            obj=locked,
            before={"status": decision.status_before},
            after={
                "status": locked.status,
                "decision_id": decision.pk,
                "revision": decision.revision,
                "reason_id": chosen.pk if chosen else None,
            },
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
        # An edit since the decision: the undo would put back in the queue content the
        # reviewer never saw, as if they had looked at it.
        item_revision_check(locked, revision=decision.revision)
        latest = locked.decisions.order_by("-created_at", "-id").first()
        if latest is None or latest.pk != decision.pk:
            raise ClaimConflict("the item changed since that decision; look at it again")
        undo = decision_create(
            item=locked,
            revision=locked.revision,
            reviewer=reviewer,
            action=Decision.Action.UNDO,
            reason=f"undo of {decision.get_action_display().lower()}",
            status_before=locked.status,
            undoes=decision,
            labeler_versions=locked.verdict_versions,
        )
        status = decision.status_before or Item.Status.FLAGGED
        # An undone senior decision puts the item back in the escalated queue; an undone
        # decision on a decided item (an appeal's approval) leaves it on the one before.
        item_decision_apply(
            locked,
            status=status,
            decided_at=None if status in FOLLOWS_LABELS else locked.decided_at,
            decided_action=_standing_action(locked, undone=decision)
            if status == Item.Status.DECIDED
            else "",
            claimed_by=reviewer,
            claim_expires_at=now + timedelta(seconds=settings.REVIEW_LEASE_SECONDS),
        )
        audit_record(
            action="decision.undo",
            actor=reviewer,
            obj=locked,
            before={"status": undo.status_before, "decision_id": decision.pk},
            after={"status": locked.status, "decision_id": undo.pk},
        )
    return undo


def _standing_action(locked: Item, *, undone: Decision) -> str:
    """The action a decided item stands on once `undone` is reversed: its latest approval
    or removal of the current revision before it that no undo reversed."""
    standing = (
        locked.decisions.filter(
            revision=locked.revision,
            action__in=(Decision.Action.APPROVE, Decision.Action.REMOVE),
            undone_by__isnull=True,
        )
        .exclude(pk=undone.pk)
        .order_by("-created_at", "-id")
        .values_list("action", flat=True)
        .first()
    )
    return standing or ""


def item_decision_apply(
    locked: Item,
    *,
    status: str,
    decided_at,
    decided_action: str = "",
    claimed_by=None,
    claim_expires_at=None,
    also: tuple[str, ...] = (),
) -> None:
    """Where a decision (a reviewer's, its undo, an automatic approval) leaves its locked
    item: the status, when it was decided and by what action (`decided_action`, needed
    with status "decided"), who holds it, and the queue score and sort key that follow the
    status, saved in one UPDATE with the fields in `also` the caller set."""
    if status == Item.Status.DECIDED and decided_action not in (
        Decision.Action.APPROVE,
        Decision.Action.REMOVE,
    ):
        raise ValueError(
            f"a decided item stands on an approval or a removal, not {decided_action!r}"
        )
    # The item's effective decision changes (a decision, an undo, a re-review, an appeal):
    # the days counted with it are recounted (its labels', the day it counted as decided).
    item_figures_changed(
        item_id=locked.pk,
        decided_at=locked.decided_at if locked.status == Item.Status.DECIDED else None,
    )
    locked.status = status
    locked.decided_at = decided_at
    locked.decided_action = decided_action if status == Item.Status.DECIDED else ""
    locked.queue_score = queue_score_for(
        status=status, violation_score=locked.violation_score, report_score=locked.report_score
    )
    locked.claimed_by = claimed_by
    locked.claim_expires_at = claim_expires_at
    queue_key_sync(locked)
    locked.save(
        update_fields=[
            *also,
            "status",
            "decided_at",
            "decided_action",
            "queue_score",
            "queue_key",
            "report_score",
            "claimed_by",
            "claim_expires_at",
        ]
    )
    if status in REVIEWABLE:
        # Back in review (an undo, an escalation): its queue follows its facts again.
        item_route(item_id=locked.pk)


def decision_create(*, item: Item, **fields) -> Decision:
    """Every decision, whoever makes it (a reviewer, or an automatic one), is made here, in
    the caller's transaction: it goes back to the product by callback once committed. An
    approval or a removal answers the item's open reports (their ids go with it); an undo
    opens again those of the decision it reverses.

    The source's row lock is held from the insert to the commit, so a source's decision ids
    commit in increasing order: the decisions feed (keyset by id) then never skips one that
    committed late behind a higher id.
    """
    source = Source.objects.select_for_update().get(pk=item.source_id)
    answered = reports_answer(item=item, decision_fields=fields)
    decision = Decision.objects.create(item=item, **fields)
    # Before the caller applies the decision to the item: its report score follows.
    reports_answered(item=item, decision=decision, report_pks=answered)
    delivery = delivery_create(decision=decision, source=source)
    if delivery is not None:
        callback_deliver_task.delay_on_commit(delivery.pk)
    # Strikes and account-action proposals commit with the decision that caused them.
    decision_strikes(decision=decision, item=item, source=source)
    return decision


class CountChanged(Exception):
    """The author's open items are not the ones the senior confirmed (one arrived, one was
    decided meanwhile): nothing is decided."""


class OpenItemsDecided(NamedTuple):
    decisions: list[Decision]
    # Items another reviewer holds, or decided meanwhile: left to them.
    left: int
    # Items edited since the senior's page was shown: not decided, they must be read again.
    edited: list[int]


def author_open_items_decide(
    *,
    author: Author,
    reviewer,
    action: str,
    reason_id: int | None,
    seen: dict[int, int],
    note: str = "",
) -> OpenItemsDecided:
    """A senior decides all of an author's open items at once: `seen`, each open item the
    page showed with its revision, is what they confirmed. If the open items are not those
    any more (a new item arrived, one was decided), nothing is decided. Each item gets a
    decision of its own (its own transaction, strikes and callback) about the revision the
    senior saw: an item edited since is not decided (the edit may be what matters), nor one
    another reviewer holds a live claim on or decides meanwhile."""
    # The batch the senior's page showed (author_open_batch): the oldest open items.
    batch = list(author_open_items(author).values_list("id", flat=True)[:REMOVE_ALL_BATCH])
    now = {
        pk: (revision, decided)
        for pk, revision, decided in Item.objects.filter(pk__in=batch)
        .annotate(decided=Count("decisions"))
        .values_list("id", "revision", "decided")
    }
    if set(now) != set(seen):
        arrived, gone = len(set(now) - set(seen)), len(set(seen) - set(now))
        changes = [
            f"{plural(arrived, 'item')} arrived" if arrived else "",
            f"{plural(gone, 'item was', 'items were')} decided" if gone else "",
        ]
        raise CountChanged(
            f"{plural(len(now), 'item is', 'items are')} open now, not {len(seen)} "
            f"({' and '.join(change for change in changes if change)} since your page was shown)"
        )
    decisions, left, edited = [], 0, []
    for pk in sorted(now):
        revision, decided = now[pk]
        try:
            decisions.append(
                decision_record(
                    item=Item(pk=pk),
                    reviewer=reviewer,
                    action=action,
                    reason_id=reason_id,
                    note=note,
                    decisions_seen=decided,
                    revision=seen[pk],
                    may_decide_escalated=True,
                )
            )
        except StaleRevision:
            edited.append(pk)
        except ClaimConflict:
            left += 1
    # Each decision has its own row (decision_record); this one says it was one request.
    audit_record(
        action="author.decide_open_items",
        actor=reviewer,
        obj=author,
        after={
            "action": action,
            "reason_id": reason_id,
            "decided": len(decisions),
            "left": left,
            "edited": len(edited),
        },
    )
    return OpenItemsDecided(decisions, left, edited)
