"""Authors: the accounts behind items, the strikes their removals count, and the account
actions those strikes propose and seniors confirm. Writes only; each function that is called
on its own owns its transaction, the decision hook runs in the decision's."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from audit.services import audit_record
from moderation.callbacks.deliveries import delivery_create
from moderation.intake import AuthorPayload
from moderation.models import (
    AccountAction,
    AccountActionProposal,
    Author,
    Decision,
    Item,
    Source,
    Strike,
)
from moderation.services.routing import author_items_route
from moderation.tasks import callback_deliver_task


class ProposalClosed(Exception):
    """The proposal was confirmed or dismissed already (a double submit, another senior)."""


class ProposalLapsed(Exception):
    """The author's active strikes fell below the proposal's threshold while it waited
    (strikes expired or were withdrawn): confirming it needs saying so."""


# --- Authors from intake ---------------------------------------------------------------------


# The author of an intake by (source, author id): also a part of intake's one-statement
# insert on PostgreSQL (moderation/services/items.py).
AUTHOR_LOOKUP = (
    f"SELECT id, name, url, account_created_at FROM {Author._meta.db_table}"  # noqa: S608
    " WHERE source_id = %s AND external_id = %s"
)


def author_from_row(source: Source, external_id: str, row) -> Author:
    """The Author of a row of (id, name, url, account_created_at) read by hand."""
    pk, name, url, account_created_at = row
    # SQLite answers a string or a naive datetime (UTC): the ORM's converter, by hand.
    if isinstance(account_created_at, str):
        account_created_at = parse_datetime(account_created_at)
    if account_created_at is not None and timezone.is_naive(account_created_at):
        account_created_at = timezone.make_aware(account_created_at, UTC)
    found = Author(
        pk=pk,
        source=source,
        external_id=external_id,
        name=name,
        url=url,
        account_created_at=account_created_at,
    )
    found._state.adding, found._state.db = False, connection.alias
    return found


def author_for_intake(*, source: Source, author: AuthorPayload, missed: bool = False) -> Author:
    """The source's author with this id, created on first sight. Its name and url change
    only with new content (author_refresh), so a replayed old request never reverts them.
    missed: the caller's own lookup has just found nobody, so go straight to the insert."""
    if not missed:
        # Written out: every webhook with an author runs it, and the ORM's query compiling
        # and model building cost more than the lookup (3.0 ms against 1.9 ms; 0.46 x).
        with connection.cursor() as cursor:
            cursor.execute(AUTHOR_LOOKUP, [source.pk, author.id])
            row = cursor.fetchone()
        if row is not None:
            return author_from_row(source, author.id, row)
    try:
        # A savepoint: two first items of one author racing each other make one row.
        with transaction.atomic():
            return Author.objects.create(
                source=source,
                external_id=author.id,
                name=author.name,
                url=author.url,
                account_created_at=author.created_at,
            )
    except IntegrityError:
        return Author.objects.get(source=source, external_id=author.id)


def author_refresh(*, author: Author, payload: AuthorPayload) -> None:
    """New content from the author says who they are now: take the name, url and account
    date it gives (a field left out keeps its value)."""
    changes: dict = {}
    if payload.name and payload.name != author.name:
        changes["name"] = payload.name
    if payload.url and payload.url != author.url:
        changes["url"] = payload.url
    if payload.created_at and payload.created_at != author.account_created_at:
        changes["account_created_at"] = payload.created_at
    if changes:
        Author.objects.filter(pk=author.pk).update(updated_at=timezone.now(), **changes)
        for name, value in changes.items():
            setattr(author, name, value)


# --- Strikes ---------------------------------------------------------------------------------


def strike_window_start(source: Source, now: datetime) -> datetime:
    return now - timedelta(days=source.strike_window_days)


def active_strikes(*, author_id: int, source: Source, now: datetime) -> tuple[int, list[int]]:
    """The author's active strikes (sum of weights of standing strikes inside the source's
    window) and the decisions behind them, oldest first."""
    rows = list(
        Strike.objects.filter(
            author_id=author_id,
            withdrawn_at__isnull=True,
            created_at__gt=strike_window_start(source, now),
        )
        .order_by("created_at", "id")
        .values_list("decision_id", "weight")
    )
    return sum(weight for _, weight in rows), [decision_id for decision_id, _ in rows]


def strike_weight(decision: Decision) -> int:
    """A removal counts its reason's weight; one without a reason from the list (an
    automatic removal names its cause in text) counts 1."""
    return decision.reason_choice.strike_weight if decision.reason_choice else 1


def decision_strikes(*, decision: Decision, item: Item, source: Source) -> None:
    """In the transaction of every decision (moderation.services.decisions.decision_create): a
    removal adds its strikes to the item's author and proposes an account action when they
    cross one of the source's thresholds; an approval withdraws the item's standing strike
    (the removal no longer stands); an undo withdraws what the undone decision counted, or
    puts back what it withdrew."""
    if item.author_id is None:
        return
    # One author's decisions are counted one at a time: two removals racing each other
    # must not both see the count below a threshold.
    Author.objects.select_for_update().filter(pk=item.author_id).first()
    now = decision.created_at
    standing = Strike.objects.filter(item=item, withdrawn_at__isnull=True)
    if decision.action == Decision.Action.REMOVE:
        weight = strike_weight(decision)
        if weight == 0 or standing.exists():
            return  # a reason that does not count, or the item's removal counted already
        before, _ = active_strikes(author_id=item.author_id, source=source, now=now)
        Strike.objects.create(
            author_id=item.author_id, item=item, decision=decision, weight=weight, created_at=now
        )
        # A new strike is a new fact of the author's other waiting items.
        author_items_route(author_id=item.author_id)
        _propose_if_crossed(
            author_id=item.author_id, source=source, before=before, decision=decision, now=now
        )
    elif decision.action == Decision.Action.APPROVE:
        standing.update(withdrawn_at=now, withdrawn_by=decision)
    elif decision.action == Decision.Action.UNDO and decision.undoes_id:
        withdrawn = Strike.objects.filter(
            decision_id=decision.undoes_id, withdrawn_at__isnull=True
        ).update(withdrawn_at=now, withdrawn_by=decision)
        if withdrawn:
            # A proposal made by the undone removal stood on a strike that no longer is.
            AccountActionProposal.objects.filter(
                decision_id=decision.undoes_id, status=AccountActionProposal.Status.PROPOSED
            ).update(
                status=AccountActionProposal.Status.DISMISSED,
                decided_at=now,
                note=f"The removal that crossed the threshold was undone (decision {decision.pk}).",
            )
        Strike.objects.filter(withdrawn_by_id=decision.undoes_id).update(
            withdrawn_at=None, withdrawn_by=None
        )


def account_thresholds_problem(value) -> str | None:
    """What is wrong with a source's thresholds as an admin typed them, or None."""
    if not isinstance(value, list):
        return 'a list of thresholds, e.g. [{"strikes": 3, "action": "warn"}]'
    for n, entry in enumerate(value, 1):
        if not isinstance(entry, dict):
            return f"threshold {n} is not an object"
        strikes, action, days = entry.get("strikes"), entry.get("action"), entry.get("days")
        if not isinstance(strikes, int) or isinstance(strikes, bool) or strikes < 1:
            return f"threshold {n}: strikes must be a whole number, 1 or more"
        if action not in AccountAction.Action.values:
            return f"threshold {n}: action must be warn, suspend or ban"
        if action == AccountAction.Action.SUSPEND and not (
            isinstance(days, int) and not isinstance(days, bool) and days >= 1
        ):
            return f"threshold {n}: a suspension needs days (1 or more)"
        if set(entry) - {"strikes", "action", "days"}:
            return f"threshold {n}: only strikes, action and days"
    if len({entry["strikes"] for entry in value}) != len(value):
        return "two thresholds at the same number of strikes"
    return None


def thresholds(source: Source) -> list[dict]:
    """The source's thresholds, well-formed ones only, lowest first."""
    valid = []
    for entry in source.account_thresholds or []:
        if not isinstance(entry, dict):
            continue
        strikes, action = entry.get("strikes"), entry.get("action")
        if not isinstance(strikes, int) or strikes < 1 or action not in AccountAction.Action:
            continue
        days = entry.get("days")
        if action == AccountAction.Action.SUSPEND and not (isinstance(days, int) and days > 0):
            continue
        valid.append(
            {
                "strikes": strikes,
                "action": action,
                "days": days if action == AccountAction.Action.SUSPEND else None,
            }
        )
    return sorted(valid, key=lambda t: t["strikes"])


def _propose_if_crossed(
    *, author_id: int, source: Source, before: int, decision: Decision, now: datetime
) -> AccountActionProposal | None:
    """Propose the highest threshold this decision's strikes crossed (from below it to at
    or above it). Strikes that stay above a threshold never cross it again, so the same
    strikes propose once; only after enough of them expire or are withdrawn can new ones
    cross it anew."""
    after, decision_ids = active_strikes(author_id=author_id, source=source, now=now)
    crossed = [t for t in thresholds(source) if before < t["strikes"] <= after]
    if not crossed:
        return None
    top = crossed[-1]
    return AccountActionProposal.objects.create(
        source=source,
        author_id=author_id,
        action=top["action"],
        days=top["days"],
        threshold=top["strikes"],
        active_strikes=after,
        decision_ids=decision_ids,
        decision=decision,
    )


# --- Account actions ---------------------------------------------------------------------------


def proposal_confirm(
    *,
    proposal: AccountActionProposal,
    senior,
    action: str | None = None,
    days: int | None = None,
    note: str = "",
    lapsed_ok: bool = False,
) -> AccountAction:
    """Confirm a proposal, as proposed or changed (another action, another length): the
    action is stored and goes back to the product (account.action.created) once committed.

    The strikes are counted again first: if they fell below the threshold that proposed it
    since, it is confirmed only with `lapsed_ok` (the senior said so on seeing it)."""
    action = action or proposal.action
    if action not in AccountAction.Action.values:
        raise ValueError(f"unknown account action {action!r}")
    if action == AccountAction.Action.SUSPEND:
        days = days if days is not None else proposal.days
        if not days or days < 1:
            raise ValueError("a suspension needs a length in days (1 or more)")
    with transaction.atomic():
        locked = AccountActionProposal.objects.select_for_update().get(pk=proposal.pk)
        if locked.status != AccountActionProposal.Status.PROPOSED:
            raise ProposalClosed(f"that proposal was {locked.status} already")
        # The source's row lock from the insert to the commit: a source's action ids commit
        # in increasing order, so the decisions feed (keyset by id) never skips one.
        source = Source.objects.select_for_update().get(pk=locked.source_id)
        now = timezone.now()
        strikes, decision_ids = active_strikes(author_id=locked.author_id, source=source, now=now)
        if strikes < locked.threshold and not lapsed_ok:
            raise ProposalLapsed(
                f"the author has {strikes} active strike(s) now, below the {locked.threshold}"
                ' that proposed it (strikes lapsed or were withdrawn since); tick "confirm'
                ' anyway" or dismiss it'
            )
        account_action = AccountAction.objects.create(
            source=source,
            author_id=locked.author_id,
            action=action,
            until=now + timedelta(days=days) if action == AccountAction.Action.SUSPEND else None,
            # Those active now; the proposal's, if every one lapsed or was withdrawn since.
            active_strikes=strikes if decision_ids else locked.active_strikes,
            decision_ids=decision_ids or locked.decision_ids,
            created_by=senior,
            note=note,
        )
        locked.status = AccountActionProposal.Status.CONFIRMED
        locked.decided_by = senior
        locked.decided_at = now
        locked.note = note
        locked.account_action = account_action
        locked.save(update_fields=["status", "decided_by", "decided_at", "note", "account_action"])
        delivery = delivery_create(account_action=account_action, source=source)
        if delivery is not None:
            callback_deliver_task.delay_on_commit(delivery.pk)
        audit_record(
            action="account_action.confirm",
            actor=senior,
            obj=locked,
            before={"action": locked.action, "days": locked.days},
            after={"action": action, "days": days, "account_action_id": account_action.pk},
        )
    return account_action


@transaction.atomic
def proposal_dismiss(*, proposal: AccountActionProposal, senior, note: str = "") -> None:
    """No action on the account; the proposal stays in the author's history with the note."""
    closed = AccountActionProposal.objects.filter(
        pk=proposal.pk, status=AccountActionProposal.Status.PROPOSED
    ).update(
        status=AccountActionProposal.Status.DISMISSED,
        decided_by=senior,
        decided_at=timezone.now(),
        note=note,
    )
    if not closed:
        raise ProposalClosed("that proposal was confirmed or dismissed already")
    audit_record(action="account_action.dismiss", actor=senior, obj=proposal)
