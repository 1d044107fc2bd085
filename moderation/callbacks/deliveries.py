"""Decisions back to the products: one CallbackDelivery per decision, sent to the source's
callback URL, signed in Standard Webhooks format, retried on a schedule, logged per attempt.

The database is the record: a delivery is created in the decision's transaction, a worker
claims it with a conditional UPDATE (so two workers never send it at once), and beat's sweep
sends whatever is due (retries, messages lost with a broker, deliveries of a dead worker).
After a 2xx a delivery is never sent again by itself. A crash between the receiver's 2xx and
recording it sends it again later with the same webhook-id: receivers dedupe on it.

Order: each event's `data.sequence` numbers the item's decisions (1, 2, 3...), and once a
newer decision of an item is acknowledged, its older undelivered ones are marked superseded
and not sent (checked just before sending, and when the newer one is acknowledged).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from moderation.callbacks import http as callback_http
from moderation.models import (
    AccountAction,
    Appeal,
    CallbackAttempt,
    CallbackDelivery,
    Decision,
    Source,
)
from moderation.selectors.appeals import appeal_event
from moderation.selectors.authors import account_action_event
from moderation.selectors.decisions import decision_event

logger = logging.getLogger(__name__)

EVENT_TYPE = "decision.created"
ACCOUNT_ACTION_EVENT_TYPE = "account.action.created"
APPEAL_EVENT_TYPE = "appeal.decided"

USER_AGENT = "modqueue-callbacks/1"


@dataclass(frozen=True)
class Outcome:
    result: str  # delivered, retry, failed, superseded, not-due
    retry_in: float | None = None


def signing_secret(source: Source) -> str:
    return source.callback_secret or source.webhook_secret


def callback_body(decision: Decision, source: Source) -> bytes:
    """The JSON body, in Standard Webhooks' {type, timestamp, data} shape; `data` is what the
    decisions feed (GET /api/decisions/) lists."""
    data = decision_event(decision, include_reviewer=source.callback_include_reviewer)
    event = {"type": EVENT_TYPE, "timestamp": data["decided_at"], "data": data}
    return json.dumps(event, separators=(",", ":")).encode()


def account_action_body(account_action: AccountAction) -> bytes:
    """An account action in the same {type, timestamp, data} shape (account.action.created)."""
    data = account_action_event(account_action)
    event = {"type": ACCOUNT_ACTION_EVENT_TYPE, "timestamp": data["created_at"], "data": data}
    return json.dumps(event, separators=(",", ":")).encode()


def appeal_body(appeal: Appeal) -> bytes:
    """An appeal's outcome in the same {type, timestamp, data} shape (appeal.decided)."""
    data = appeal_event(appeal)
    event = {"type": APPEAL_EVENT_TYPE, "timestamp": data["decided_at"], "data": data}
    return json.dumps(event, separators=(",", ":")).encode()


def signed_headers(*, secret: str, webhook_id: str, body: bytes) -> dict[str, str]:
    # The timestamp is the attempt's, not the decision's: receivers refuse old timestamps
    # (replays), and a retry a day later must still pass.
    now = timezone.now().replace(microsecond=0)
    return {
        "content-type": "application/json",
        "user-agent": USER_AGENT,
        "webhook-id": webhook_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(secret).sign(webhook_id, now, body.decode()),
    }


def delivery_create(
    *,
    decision: Decision | None = None,
    account_action: AccountAction | None = None,
    appeal: Appeal | None = None,
    source: Source,
) -> CallbackDelivery | None:
    """In the transaction of the decision (or account action): the delivery to send once it
    commits, or None when the source has no callback URL. It counts as enqueued now (its
    creator starts its task on commit); if that message is lost, the sweep sends it again.
    None too for a decision products never hear of (an escalation: Decision.for_products)."""
    if not source.callback_url or (decision is not None and not decision.for_products):
        return None
    now = timezone.now()
    delivery = CallbackDelivery.objects.create(
        decision=decision,
        account_action=account_action,
        appeal=appeal,
        source=source,
        next_attempt_at=now,
        enqueued_at=now,
    )
    return delivery


def _claimable(now) -> Q:
    return Q(state=CallbackDelivery.State.PENDING, next_attempt_at__lte=now) | Q(
        state=CallbackDelivery.State.SENDING, lease_expires_at__lt=now
    )


def deliveries_due(*, limit: int = 500) -> list[int]:
    """Deliveries to send now: due pending ones and those of dead workers (lease run out),
    unless a message was sent for them less than CALLBACK_LOST_AFTER_SECONDS ago. Marked as
    enqueued, so the next sweep does not send them again while they wait in the broker."""
    now = timezone.now()
    lost_before = now - timedelta(seconds=settings.CALLBACK_LOST_AFTER_SECONDS)
    not_waiting = Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=lost_before)
    with transaction.atomic():
        ids = list(
            CallbackDelivery.objects.filter(_claimable(now) & not_waiting)
            .order_by("next_attempt_at", "id")
            .values_list("id", flat=True)[:limit]
        )
        CallbackDelivery.objects.filter(pk__in=ids).update(enqueued_at=now)
    return ids


def delivery_attempt(*, delivery_id: int) -> Outcome:
    """Send one delivery once, if it is due and nobody else is sending it; record the
    attempt and what comes next (delivered, a retry at the schedule's next step, or failed)."""
    now = timezone.now()
    lease = now + timedelta(seconds=settings.CALLBACK_LEASE_SECONDS)
    # Claim with a conditional UPDATE so two workers (a duplicated message, the sweep and
    # the commit hook) never send the same delivery at the same time.
    claimed = (
        CallbackDelivery.objects.filter(_claimable(now), pk=delivery_id).update(
            state=CallbackDelivery.State.SENDING,
            lease_expires_at=lease,
            attempts=F("attempts") + 1,
            enqueued_at=None,
        )
        == 1
    )
    if not claimed:
        return Outcome("not-due")
    delivery = CallbackDelivery.objects.select_related(
        "source",
        "decision__item__author",
        "decision__reviewer",
        "account_action__author",
        "appeal__item__author",
        "appeal__account_action__author",
    ).get(pk=delivery_id)
    if _superseded(delivery):
        # The product acknowledged a newer decision of this item: sending this one now would
        # arrive after it (at least once still holds for the newest decision of each item).
        CallbackDelivery.objects.filter(
            pk=delivery.pk, state=CallbackDelivery.State.SENDING, lease_expires_at=lease
        ).update(
            state=CallbackDelivery.State.SUPERSEDED, lease_expires_at=None, next_attempt_at=None
        )
        logger.info("callback %s: superseded by a newer decision delivered", delivery.webhook_id)
        return Outcome("superseded")
    source = delivery.source
    url = source.callback_url
    if not url:
        answer = callback_http.Answer(None, 0, error="the source has no callback URL any more")
    else:
        if delivery.account_action is not None:
            body = account_action_body(delivery.account_action)
        elif delivery.appeal is not None:
            body = appeal_body(delivery.appeal)
        else:
            assert delivery.decision is not None
            body = callback_body(delivery.decision, source)
        headers = signed_headers(
            secret=signing_secret(source), webhook_id=delivery.webhook_id, body=body
        )
        try:
            answer = callback_http.post(
                url,
                body=body,
                headers=headers,
                connect_timeout=settings.CALLBACK_CONNECT_TIMEOUT,
                read_timeout=settings.CALLBACK_READ_TIMEOUT,
                allow_http=settings.CALLBACK_ALLOW_HTTP,
                allow_private=settings.CALLBACK_ALLOW_PRIVATE,
            )
        except callback_http.CallbackRefused as exc:
            answer = callback_http.Answer(None, 0, error=f"refused: {exc}")
    return _record(delivery, answer, url=url, started_at=now, lease=lease)


def _superseded(delivery: CallbackDelivery) -> bool:
    if delivery.decision is None:
        return False  # an account action is an event of its own: nothing newer replaces it
    return CallbackDelivery.objects.filter(
        decision__item_id=delivery.decision.item_id,
        decision_id__gt=delivery.decision_id,
        state=CallbackDelivery.State.DELIVERED,
    ).exists()


def _record(
    delivery: CallbackDelivery, answer: callback_http.Answer, *, url: str, started_at, lease
) -> Outcome:
    schedule = settings.CALLBACK_RETRY_SCHEDULE
    now = timezone.now()
    fields: dict
    if answer.ok:
        outcome = Outcome("delivered")
        fields = {"state": CallbackDelivery.State.DELIVERED, "delivered_at": now}
    elif delivery.attempts <= len(schedule):
        delay = schedule[delivery.attempts - 1]
        outcome = Outcome("retry", retry_in=delay)
        fields = {
            "state": CallbackDelivery.State.PENDING,
            "next_attempt_at": now + timedelta(seconds=delay),
        }
    else:
        outcome = Outcome("failed")
        fields = {"state": CallbackDelivery.State.FAILED, "next_attempt_at": None}
    with transaction.atomic():
        CallbackAttempt.objects.create(
            delivery=delivery,
            started_at=started_at,
            url=url[:2000],
            status_code=answer.status_code,
            latency_ms=answer.latency_ms,
            response_body=answer.body[: callback_http.BODY_LOG_BYTES],
            error=answer.error,
        )
        # Only while the claim is still ours: a worker that outlived its lease must not
        # overwrite what the worker that took over recorded.
        CallbackDelivery.objects.filter(
            pk=delivery.pk, state=CallbackDelivery.State.SENDING, lease_expires_at=lease
        ).update(lease_expires_at=None, **fields)
        if answer.ok and delivery.decision is not None:
            # Older decisions of the item still waiting for a retry will not be sent now.
            CallbackDelivery.objects.filter(
                decision__item_id=delivery.decision.item_id,
                decision_id__lt=delivery.decision_id,
                state=CallbackDelivery.State.PENDING,
            ).update(state=CallbackDelivery.State.SUPERSEDED, next_attempt_at=None)
    if outcome.result != "delivered":
        logger.info(
            "callback %s to source %s: %s (%s)",
            delivery.webhook_id,
            delivery.source.slug,
            outcome.result,
            answer.error or answer.status_code,
        )
    return outcome


def deliveries_redeliver(*, delivery_ids: list[int]) -> list[int]:
    """An admin asks to send these again now, from the first step of the schedule (the same
    webhook-id: a receiver that has it already drops it). Deliveries being sent are left."""
    now = timezone.now()
    with transaction.atomic():
        ids = list(
            CallbackDelivery.objects.filter(pk__in=delivery_ids)
            .exclude(state=CallbackDelivery.State.SENDING)
            .select_for_update()
            .values_list("id", flat=True)
        )
        CallbackDelivery.objects.filter(pk__in=ids).update(
            state=CallbackDelivery.State.PENDING,
            attempts=0,
            next_attempt_at=now,
            enqueued_at=now,
            lease_expires_at=None,
            delivered_at=None,
        )
    return ids
