"""Appeals: a product's user asks for a second look at the removal of their item or at an
action on their account (POST /webhooks/<slug>/appeals/); a senior who did not make the
appealed decision upholds or overturns it, and the product hears the outcome
(appeal.decided). An overturned removal is a new approval (the item is restored, its strikes
withdrawn); an overturned account action is lifted."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import IntegrityError, transaction
from django.db.models import Max
from django.utils import timezone

from audit.services import audit_record
from moderation.callbacks.deliveries import delivery_create
from moderation.errors import ClaimConflict, IntakeError, NotAllowed
from moderation.intake import check_storable, id_string, load_object
from moderation.models import (
    LIVE,
    AccountAction,
    AccountActionProposal,
    Appeal,
    Decision,
    Item,
    Source,
)
from moderation.selectors.decisions import item_current_decision
from moderation.selectors.statements import appeal_until
from moderation.services.decisions import decision_create, item_decision_apply, note_check
from moderation.services.items import item_revision_check
from moderation.tasks import callback_deliver_task

# The longest statement a user may send with an appeal: a few pages. Longer is refused
# (naming the limit) rather than cut.
STATEMENT_MAX_CHARS = 10_000

# The largest id the databases store (a bigger number would overflow the lookup: a 500).
MAX_ID = 2**63 - 1

OUTCOMES = (Appeal.Status.UPHELD, Appeal.Status.OVERTURNED)


class AppealClosed(ClaimConflict):
    """The appeal was decided already (a double submit, another senior)."""


@dataclass(frozen=True)
class AppealPayload:
    appeal_id: str
    statement: str = ""
    external_id: str | None = None
    account_action_id: int | None = None


def parse_appeal_body(body: bytes) -> AppealPayload:
    """The appeal's body, checked before anything is stored: IntakeError names the field."""
    data = load_object(body)
    appeal_id = id_string(data.get("appeal_id"), "appeal_id")
    statement = data.get("statement", "")
    if statement is None:
        statement = ""
    if not isinstance(statement, str):
        raise IntakeError(422, "statement must be a string", field="statement")
    if len(statement) > STATEMENT_MAX_CHARS:
        raise IntakeError(
            422, f"statement is longer than {STATEMENT_MAX_CHARS} characters", field="statement"
        )
    check_storable(statement, "statement")
    external_id, action_id = data.get("external_id"), data.get("account_action_id")
    if external_id is not None and action_id is not None:
        raise IntakeError(
            422,
            "send either external_id (an item's removal) or account_action_id, not both",
            field="account_action_id",
        )
    if action_id is not None:
        if (
            not isinstance(action_id, int)
            or isinstance(action_id, bool)
            or not 1 <= action_id <= MAX_ID
        ):
            raise IntakeError(
                422, "account_action_id must be a positive integer", field="account_action_id"
            )
        return AppealPayload(appeal_id, statement, account_action_id=action_id)
    if external_id is None:
        raise IntakeError(
            422,
            "external_id (an item's removal) or account_action_id is required",
            field="external_id",
        )
    return AppealPayload(appeal_id, statement, external_id=id_string(external_id, "external_id"))


def appeal_receive(
    *, source: Source, payload: AppealPayload, webhook_id: str
) -> tuple[Appeal, bool]:
    """Store the appeal (created: True), or the one the product sent before with the same
    appeal_id (False). Refused, with nothing stored: an unknown item or action (404),
    nothing to appeal (409: not removed, lifted, appealed already), past the source's
    appeal window (422)."""
    earlier = Appeal.objects.filter(source=source, appeal_id=payload.appeal_id).first()
    if earlier is not None:
        return earlier, False
    now = timezone.now()
    fields: dict = {}
    if payload.external_id is not None:
        field = "external_id"
        item = Item.objects.filter(LIVE, source=source, external_id=payload.external_id).first()
        if item is None:
            raise IntakeError(404, "no item with this external_id", field=field)
        current = item_current_decision(item)
        if current is None or current.action != Decision.Action.REMOVE:
            raise IntakeError(
                409, "nothing to appeal: the item's current decision is not a removal", field=field
            )
        decided_at = current.created_at
        fields = {
            "decision": current,
            "decision_reviewer_id": current.reviewer_id,
            "item": item,
            "author_id": item.author_id,
        }
        appealed = Appeal.objects.filter(decision=current).first()
        what = "removal"
    else:
        field = "account_action_id"
        action = AccountAction.objects.filter(source=source, pk=payload.account_action_id).first()
        if action is None:
            raise IntakeError(404, "no account action with this account_action_id", field=field)
        if action.lifted_at is not None:
            raise IntakeError(409, "nothing to appeal: the action was lifted", field=field)
        decided_at = action.created_at
        fields = {"account_action": action, "author_id": action.author_id}
        appealed = Appeal.objects.filter(account_action=action).first()
        what = "action"
    if appealed is not None:
        raise IntakeError(
            409,
            f"this {what} was appealed already (appeal_id {appealed.appeal_id}, {appealed.status})",
            field=field,
        )
    until = appeal_until(source, decided_at)
    if now > until:
        raise IntakeError(
            422,
            f"past the source's appeal window: a {what} may be appealed for "
            f"{source.appeal_window_days} days (appeal_window_days), this one until "
            f"{until.isoformat()}",
            field=field,
        )
    try:
        # A savepoint: two requests with one appeal_id (or of one removal) make one row.
        with transaction.atomic():
            appeal = Appeal.objects.create(
                source=source,
                appeal_id=payload.appeal_id,
                webhook_id=webhook_id,
                statement=payload.statement,
                **fields,
            )
    except IntegrityError:
        earlier = Appeal.objects.filter(source=source, appeal_id=payload.appeal_id).first()
        if earlier is None:
            raise IntakeError(409, f"this {what} was appealed already", field=field) from None
        return earlier, False
    return appeal, True


def appeal_decider_problem(appeal: Appeal, user) -> str | None:
    """Why this person may not decide the appeal, or None: whoever made the appealed
    decision (or confirmed the appealed action) never reviews their own call."""
    if appeal.decision_id is not None and appeal.decision.reviewer_id == user.pk:
        return "you made the decision appealed: another senior decides the appeal"
    if appeal.account_action_id is not None and appeal.account_action.created_by_id == user.pk:
        return "you confirmed the action appealed: another senior decides the appeal"
    return None


def appeal_decide(
    *,
    appeal: Appeal,
    senior,
    outcome: str,
    note: str = "",
    revision: int | None = None,
) -> Appeal:
    """Uphold or overturn. `revision`: the item revision the senior's page showed (an edit
    since refuses it: StaleRevision); an item decided again since the appeal is refused too
    (ClaimConflict), as is an appeal decided meanwhile (AppealClosed). Overturning a removal
    records an approval (the item restored, its strikes withdrawn, a proposal it made
    dismissed); overturning an account action lifts it. The product hears appeal.decided."""
    if outcome not in OUTCOMES:
        raise ValueError("choose upheld or overturned")
    note_check(note)
    problem = appeal_decider_problem(appeal, senior)
    if problem:
        raise NotAllowed(problem)
    with transaction.atomic():
        locked = Appeal.objects.select_for_update().get(pk=appeal.pk)
        if locked.status != Appeal.Status.PENDING:
            raise AppealClosed(f"that appeal was {locked.status} already")
        now = timezone.now()
        result = None
        if locked.decision_id is not None:
            result = _item_appeal_decide(
                locked, senior=senior, outcome=outcome, note=note, revision=revision
            )
        elif outcome == Appeal.Status.OVERTURNED:
            AccountAction.objects.filter(pk=locked.account_action_id, lifted_at=None).update(
                lifted_at=now
            )
        # The source's row lock to the commit (an overturn's approval took it already): the
        # source's outcomes take their feed positions, and commit, in order.
        source = Source.objects.select_for_update().get(pk=locked.source_id)
        last = Appeal.objects.filter(source=source).aggregate(last=Max("feed_position"))["last"]
        locked.status = outcome
        locked.decided_by = senior
        locked.decided_at = result.created_at if result else timezone.now()
        locked.note = note
        locked.result_decision = result
        locked.feed_position = (last or 0) + 1
        locked.save(
            update_fields=[
                "status",
                "decided_by",
                "decided_at",
                "note",
                "result_decision",
                "feed_position",
            ]
        )
        delivery = delivery_create(appeal=locked, source=source)
        if delivery is not None:
            callback_deliver_task.delay_on_commit(delivery.pk)
        audit_record(
            action=f"appeal.{outcome}",
            actor=senior,
            obj=locked,
            before={"status": Appeal.Status.PENDING},
            after={"status": outcome, "decision_id": result.pk if result else None},
        )
    return locked


def _item_appeal_decide(
    appeal: Appeal, *, senior, outcome: str, note: str, revision: int | None
) -> Decision | None:
    item = Item.objects.select_for_update().get(pk=appeal.item_id)
    item_revision_check(item, revision=revision)
    current = item_current_decision(item)
    if current is None or current.pk != appeal.decision_id:
        raise ClaimConflict(
            f"item {item.pk} was decided again since it was appealed: its appealed removal "
            "no longer stands"
        )
    if outcome != Appeal.Status.OVERTURNED:
        return None
    approval = decision_create(
        item=item,
        revision=item.revision,
        reviewer=senior,
        action=Decision.Action.APPROVE,
        reason=f"appeal {appeal.appeal_id} overturned the removal"[:200],
        note=note,
        status_before=item.status,
        labeler_versions=item.verdict_versions,
    )
    item_decision_apply(
        item,
        status=Item.Status.DECIDED,
        decided_at=approval.created_at,
        decided_action=approval.action,
    )
    # A proposal the overturned removal made stood on a strike that no longer counts.
    AccountActionProposal.objects.filter(
        decision_id=appeal.decision_id, status=AccountActionProposal.Status.PROPOSED
    ).update(
        status=AccountActionProposal.Status.DISMISSED,
        decided_at=approval.created_at,
        note=f"The removal that crossed the threshold was overturned on appeal "
        f"(decision {approval.pk}).",
    )
    return approval
