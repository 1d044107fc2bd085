"""Golden items: reviewers measured against answers an admin vouches for."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.services import audit_record
from moderation.errors import AlreadyAnswered, NotAllowed
from moderation.models import (
    Decision,
    GoldenAnswer,
    GoldenItem,
    Item,
)
from moderation.services.decisions import decision_reason, note_check
from moderation.services.items import item_revision_check

GOLDEN_ACTIONS = (Decision.Action.APPROVE, Decision.Action.REMOVE)


def golden_item_mark(
    *,
    item: Item,
    expected_action: str,
    note: str = "",
    created_by,
    revision: int | None = None,
) -> GoldenItem:
    """Make a decided item golden at its current revision, expecting `expected_action`.
    `revision`: the revision the admin's page showed (an edit since refuses: StaleRevision).

    Marking it again (e.g. an admin corrects the expected action) updates it, reactivates it
    and rescores the answers given so far against the new expectation.
    """
    if expected_action not in GOLDEN_ACTIONS:
        raise ValueError("the expected action of a golden item is approve or remove")
    with transaction.atomic():
        locked = Item.objects.select_for_update().get(pk=item.pk)
        item_revision_check(locked, revision=revision)
        # Only a decided item has an answer to vouch for; one waiting in the queue (or
        # escalated) would be served twice over, as real work and as a test.
        if locked.status != Item.Status.DECIDED:
            raise ValueError(
                f"only decided items can be golden (item {item.pk} is {locked.status})"
            )
        before = GoldenItem.objects.filter(item=locked).values("expected_action", "active").first()
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
        audit_record(
            action="golden.mark",
            actor=created_by,
            obj=locked,
            before=before,
            after={"expected_action": expected_action, "revision": locked.revision},
        )
    return golden


@transaction.atomic
def golden_item_unmark(*, golden: GoldenItem, by=None) -> None:
    """Stop serving the item and stop counting its answers (kept, should it be marked again).
    An answer already open stays answerable: its reviewer may be looking at it right now.
    `by`: the admin, for the audit log."""
    if GoldenItem.objects.filter(pk=golden.pk, active=True).update(active=False):
        audit_record(action="golden.unmark", actor=by, object_type="item", object_id=golden.item_id)


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
    revision: int | None = None,
) -> GoldenAnswer:
    """The reviewer's answer to a golden item served to them, scored against the expected
    action (an escalation never matches: the item had a clear answer). An answer skipped
    earlier may still be given, as a skipped ordinary item may still be decided.

    Never a Decision: the item, its history and its product are untouched. Reasons follow
    the rules of a real decision so that the page behaves exactly like one, and so does
    `revision` (the revision the page showed: an edit since refuses, StaleRevision).
    """
    if answer.reviewer_id != reviewer.pk:
        raise NotAllowed("this golden item was not served to you")
    if action not in (*GOLDEN_ACTIONS, Decision.Action.ESCALATE):
        raise ValueError(f"unknown action {action!r}")
    chosen = decision_reason(action, reason_id)
    note_check(note)
    expected, golden_item_id = GoldenItem.objects.values_list("expected_action", "item_id").get(
        pk=answer.golden_id
    )
    item_revision_check(Item.objects.get(pk=golden_item_id), revision=revision)
    with transaction.atomic():
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
        audit_record(
            action="golden.answer",
            actor=reviewer,
            object_type="item",
            object_id=golden_item_id,
            after={"action": action, "correct": action == expected, "answer_id": answer.pk},
        )
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
