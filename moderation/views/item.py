"""The item page: an item with its decision form (or a golden item served as one), and what
a reviewer does on it: decide, undo, release, skip, reveal media, load media."""

from __future__ import annotations

import json
from collections.abc import Callable
from contextlib import suppress
from copy import copy
from datetime import timedelta

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from moderation.errors import AlreadyAnswered, ClaimConflict, NotAllowed, StaleRevision
from moderation.filters import QueueFilter, int_or_none
from moderation.forms import GoldenMarkForm
from moderation.http import ranged_file_response
from moderation.models import NOTE_MAX_LENGTH, REVIEWABLE, Decision, GoldenAnswer, Item
from moderation.permissions import (
    can_review_escalated,
    may_see_item,
    reviewer_required,
    senior_required,
)
from moderation.selectors.appeals import item_pending_appeal
from moderation.selectors.authors import author_panel
from moderation.selectors.banks import item_media_restricted
from moderation.selectors.decisions import (
    DECIDABLE,
    decision_actions,
    item_current_decision,
)
from moderation.selectors.golden import (
    golden_answer_given,
    golden_answer_open,
    golden_answered_status,
    golden_shown_status,
)
from moderation.selectors.reports import item_reports_panel
from moderation.selectors.reviewers import exposure, reviewer_settings
from moderation.services.appeals import appeal_decider_problem
from moderation.services.claims import item_claim, item_release
from moderation.services.decisions import decision_record, decision_undo, item_queue
from moderation.services.golden import (
    GOLDEN_ACTIONS,
    golden_answer_record,
    golden_answer_skip,
)
from moderation.services.retention import legal_hold_set
from moderation.services.reviewers import (
    media_reveal_record,
)
from moderation.views.banks import bank_panel


def _reviewable_item(request: HttpRequest, item_id: int, *, own_escalation=False) -> Item:
    """The item, if this reviewer may see it: their sources only, escalated items only for
    seniors (or, to undo it, for the reviewer who escalated). Checked on every view and POST
    that touches an item."""
    item = get_object_or_404(
        Item.objects.select_related("source", "claimed_by", "author"), pk=item_id
    )
    if not may_see_item(request.user, item):
        raise Http404  # another team's queue, or source: not even whether it exists
    senior = own_escalation or can_review_escalated(request.user)
    if item.status == Item.Status.ESCALATED and not senior:
        escalated_by = (
            item.decisions.filter(action=Decision.Action.ESCALATE)
            .order_by("-created_at", "-id")
            .values_list("reviewer_id", flat=True)
            .first()
        )
        if escalated_by == request.user.pk:
            raise PermissionDenied(
                "You escalated this item: it now waits for a senior reviewer, whose decision "
                "closes it. It stays listed under My decisions."
            )
        raise PermissionDenied("Escalated items are for senior reviewers.")
    return item


def _back(request: HttpRequest) -> str:
    """The queue filters the reviewer came with, carried through the item page."""
    return QueueFilter.from_query(request.GET).querystring()


def _next_url(request: HttpRequest, item: Item) -> str:
    """Where "next" goes after this item: the same queue, with the same filters (the
    escalated queue after an escalated item)."""
    filters = QueueFilter.from_query(request.GET)
    if item.status == Item.Status.ESCALATED:
        filters = filters.with_status("escalated")
    return reverse("queue_next") + filters.querystring()


@require_http_methods(["GET", "POST"])
@reviewer_required
def item_detail(request: HttpRequest, item_id: int) -> HttpResponse:
    item = _reviewable_item(request, item_id)
    golden_answer = golden_answer_open(reviewer=request.user, item=item)
    if request.method == "POST":
        if golden_answer is not None:
            return _answer_golden(request, item, golden_answer)
        return _decide(request, item)
    return _item_view(request, item, golden_answer=golden_answer)


def _item_view(
    request: HttpRequest, item: Item, *, golden_answer: GoldenAnswer | None
) -> HttpResponse:
    """The item page as a GET shows it (claiming the item when it waits for review)."""
    if golden_answer is not None:
        return _golden_page(request, item)
    if (given := golden_answer_given(reviewer=request.user, item=item)) is not None:
        return _golden_answered_page(request, item, given)
    claimed = item.status in REVIEWABLE and item_claim(item=item, reviewer=request.user)
    decisions = list(item.decisions.select_related("reviewer", "undoes"))
    return _item_page(
        request,
        item,
        shown=item,
        decisions=decisions,
        escalation=_escalations(decisions) if item.status == Item.Status.ESCALATED else None,
        claimed=claimed,
        golden=_golden_admin_context(request, item),
    )


def _escalations(decisions: list[Decision]) -> list[Decision]:
    """The escalations the item waits on, oldest first: every one since its last approve or
    remove, leaving out undone ones. A senior may escalate again (for another senior): the
    first reviewer's note stays in view."""
    undone = {d.undoes_id for d in decisions if d.undoes_id}
    chain: list[Decision] = []
    for decision in reversed(decisions):
        if decision.action in (Decision.Action.APPROVE, Decision.Action.REMOVE):
            break
        if decision.action == Decision.Action.ESCALATE and decision.pk not in undone:
            chain.append(decision)
    return chain[::-1]


def _item_page(
    request: HttpRequest, item: Item, *, shown: Item, decisions, escalation, claimed, golden
) -> HttpResponse:
    """The item page, for an ordinary item and for a golden one (`shown`: the item as the
    page presents it)."""
    labels = item.labels.select_related("labeler_version__labeler").order_by(
        "-revision", "-violation_score"
    )
    review_settings = reviewer_settings(request.user)
    queue = item_queue(item)
    if queue is not None:
        # The queue's wellness settings win over the reviewer's (in memory, never saved).
        review_settings.blur_media = review_settings.blur_media or queue.always_blur
        review_settings.grayscale_media = review_settings.grayscale_media or queue.always_grayscale
    lease = settings.REVIEW_LEASE_SECONDS
    banks = bank_panel(request, item)
    appeal = item_pending_appeal(item)
    revisions = list(item.revisions.order_by("-number"))
    if item.has_media and not review_settings.blur_media and not banks["media_restricted"]:
        # Media shown without a click is still media seen.
        media_reveal_record(item=item, reviewer=request.user)
    return render(
        request,
        "moderation/item.html",
        {
            "item": shown,
            "labels": labels,
            # Why it was flagged: the current revision's "1"s, with their policy.
            "flagged_by": [
                label for label in labels if label.revision == item.revision and label.label == "1"
            ],
            "decisions": decisions,
            "escalation": escalation,
            "revisions": revisions,
            "claimed": claimed,
            # The hold item_claim just took (or renewed): the page counts it down.
            "claim_until": timezone.now() + timedelta(seconds=lease),
            "claim_seconds": lease,
            "claim_seconds_display": f"{lease // 60}:{lease % 60:02d}",
            "reviewable": REVIEWABLE,
            "actions": [
                choice
                for choice in decision_actions()
                if queue is None or queue.allows(choice.value)
            ],
            "queue": queue,
            "back": _back(request),
            "review_settings": review_settings,
            # The frame's exposure prompt, with the settings read above (after the reveal).
            "exposure": exposure(request.user, settings_row=review_settings),
            "golden": golden,
            "history": _history(item, shown=shown, decisions=decisions, revisions=revisions),
            # JSON, as the product sent it (escaped by the template), not Python's notation.
            "metadata_json": (
                json.dumps(item.metadata, indent=2, ensure_ascii=False, sort_keys=True)
                if item.metadata
                else ""
            ),
            "note_max_length": NOTE_MAX_LENGTH,
            "author_panel": author_panel(item),
            "reports_panel": item_reports_panel(item),
            "pending_appeal": appeal,
            # A senior who may decide it gets the link (never the one who made the removal).
            "appeal_decider": appeal is not None
            and can_review_escalated(request.user)
            and appeal_decider_problem(appeal, request.user) is None,
            # Seniors and admins put an item on legal hold (moderation/services/retention.py).
            "can_hold": can_review_escalated(request.user),
            **banks,
        },
    )


def _history(item: Item, *, shown: Item, decisions, revisions: list | None = None) -> list[dict]:
    """What happened to the item, oldest first: received, each edit by the product, flagged,
    each decision. (`shown`: a golden item's disguise has no flagging time of its own.)"""
    events: list[dict] = [{"at": item.received_at, "text": "received"}]
    if revisions is None:
        revisions = list(item.revisions.order_by("-number"))
    for revision in reversed(revisions):
        if revision.number == 1:
            continue
        events.append(
            {
                "at": revision.received_at,
                "text": f"edited by the product: revision {revision.number}",
            }
        )
    if item.revised_at:
        events.append(
            {
                "at": item.revised_at,
                "text": f"edited by the product: revision {item.revision} (shown above)",
            }
        )
    if shown.flagged_at:
        events.append({"at": shown.flagged_at, "text": "flagged"})
    events += [{"at": d.created_at, "decision": d} for d in decisions]
    # Stable: events at the same instant keep the order above (received before flagged).
    return sorted(events, key=lambda event: event["at"])


def _golden_admin_context(request: HttpRequest, item: Item) -> dict | None:
    """For staff on a decided item: its golden state and the form to mark it."""
    if not request.user.is_staff or item.status != Item.Status.DECIDED:
        return None
    current = item_current_decision(item)
    golden = getattr(item, "golden", None)
    expected = golden.expected_action if golden and golden.active else None
    if expected is None and current and current.action in GOLDEN_ACTIONS:
        expected = current.action
    return {
        "item": golden,
        "form": GoldenMarkForm(initial={"expected_action": expected or "approve"}),
    }


def _golden_page(request: HttpRequest, item: Item) -> HttpResponse:
    """A golden item served to this reviewer, shown exactly as an undecided queue item: its
    status from before it was decided, no decisions in its history, nobody's claim, and
    nothing that says it is golden."""
    shown = copy(item)  # never saved: only what the page shows
    shown.status = golden_shown_status(item)
    shown.decided_at = None
    shown.claimed_by = None
    return _item_page(
        request, item, shown=shown, decisions=[], escalation=None, claimed=True, golden=None
    )


def _golden_answered_page(request: HttpRequest, item: Item, answer: GoldenAnswer) -> HttpResponse:
    """A golden item this reviewer answered, opened again (any URL of it): shown as an item
    they decided themselves, with their answer as its only decision; the real decisions,
    by other reviewers, would give the golden item away."""
    shown = copy(item)  # never saved
    shown.status = golden_answered_status(answer.action)
    shown.decided_at = answer.answered_at
    shown.claimed_by = None
    as_decided = Decision(
        item=item,
        revision=item.revision,
        reviewer=request.user,
        action=answer.action,
        reason=answer.reason,
        note=answer.note,
        created_at=answer.answered_at,
    )
    return _item_page(
        request,
        item,
        shown=shown,
        decisions=[as_decided],
        escalation=None,
        claimed=False,
        golden=None,
    )


def _answer_golden(request: HttpRequest, item: Item, answer: GoldenAnswer) -> HttpResponse:
    """Record the answer to a golden item and move on like after a decision. Nothing is
    offered to undo: the undo bar of an earlier decision is dropped with it."""

    def record(**form) -> None:
        # A double submit (AlreadyAnswered): the first one counted, go on as it did.
        with suppress(AlreadyAnswered):
            golden_answer_record(answer=answer, reviewer=request.user, **form)

    return _decision_post(request, item, record)


def _decide(request: HttpRequest, item: Item) -> HttpResponse:
    def record(**form) -> Decision:
        return decision_record(
            item=item,
            reviewer=request.user,
            decisions_seen=int_or_none(request.POST.get("decisions_seen")),
            may_decide_escalated=can_review_escalated(request.user),
            **form,
        )

    return _decision_post(request, item, record)


def _decision_post(
    request: HttpRequest, item: Item, record: Callable[..., Decision | None]
) -> HttpResponse:
    """The decision form's post, for a real item and a golden one alike: the action and the
    revision the page showed are checked, `record` records them (with the reason and note;
    the decision, or None for a golden answer), a refusal goes back to the item page, and
    the reviewer moves on to the next item or the queue."""
    action = request.POST.get("action", "")
    back = _back(request)
    if action not in DECIDABLE:
        messages.error(request, "Choose approve, remove or escalate.")
        return redirect(reverse("item", args=[item.pk]) + back)
    revision = int_or_none(request.POST.get("revision"))
    if revision is None:
        return _revision_missing(request, item)
    try:
        decision = record(
            action=action,
            reason_id=int_or_none(request.POST.get(f"reason_{action}")),
            note=request.POST.get("note", ""),
            revision=revision,
        )
    except StaleRevision as exc:
        return _edited_meanwhile(request, item, exc, action=action)
    except (ValueError, NotAllowed) as exc:
        messages.error(request, f"Not decided: {exc}.")
        return redirect(reverse("item", args=[item.pk]) + back)
    except ClaimConflict as exc:
        messages.error(request, f"Not decided: {exc}. Look again before deciding.")
        return redirect(reverse("item", args=[item.pk]) + back)
    if decision is None:
        request.session.pop("undo", None)
    else:
        if action == Decision.Action.ESCALATE and item.status == Item.Status.ESCALATED:
            # A senior passing an escalated item on to another senior: their "next" must
            # not hand it straight back to them.
            skipped = request.session.get("skipped", [])
            request.session["skipped"] = ([*skipped, item.pk])[-200:]
        # The next page offers to undo this for a few seconds.
        request.session["undo"] = {"decision": decision.pk, "at": decision.created_at.timestamp()}
    if request.POST.get("next"):
        return redirect(_next_url(request, item))
    return redirect(reverse("queue") + back)


# What the refusal calls the act the reviewer tried: "Your removal was not recorded".
_ACT_NAMES = {
    Decision.Action.APPROVE: "approval",
    Decision.Action.REMOVE: "removal",
    Decision.Action.ESCALATE: "escalation",
    Decision.Action.UNDO: "undo",
}


def _edited_meanwhile(
    request: HttpRequest,
    item: Item,
    exc: StaleRevision,
    *,
    action: str,
    own_escalation: bool = False,
) -> HttpResponse:
    """The post was edited while the reviewer had it open: nothing was recorded. Say so
    plainly and show the new revision at once (409: the request conflicts with the item's
    state), as the item page shows it to anyone opening it now."""
    messages.warning(
        request,
        f"This post was edited while you had it open: here is the new version (revision "
        f"{exc.current}; you saw revision {exc.seen}, kept in the history below). Your "
        f"{_ACT_NAMES.get(action, 'decision')} was not recorded and nothing was sent to the "
        "product. Read it again before deciding.",
        extra_tags="stale-revision",
    )
    fresh = _reviewable_item(request, item.pk, own_escalation=own_escalation)
    golden_answer = golden_answer_open(reviewer=request.user, item=fresh)
    response = _item_view(request, fresh, golden_answer=golden_answer)
    response.status_code = 409
    return response


def _revision_missing(request: HttpRequest, item: Item) -> HttpResponse:
    """A decision that does not say which revision it is about is refused: it could be about
    any of them. (Every item page sends it; an old tab from before it did, does not.)"""
    messages.error(
        request,
        "Not decided: the form did not say which version of the post you saw. Here it is as "
        "it is now; decide again.",
    )
    return redirect(reverse("item", args=[item.pk]) + _back(request))


@require_POST
@reviewer_required
def decision_undo_view(request: HttpRequest, decision_id: int) -> HttpResponse:
    decision = get_object_or_404(Decision, pk=decision_id, reviewer=request.user)
    item = _reviewable_item(
        request, decision.item_id, own_escalation=decision.action == Decision.Action.ESCALATE
    )
    request.session.pop("undo", None)
    try:
        decision_undo(decision=decision, reviewer=request.user)
    except StaleRevision as exc:
        return _edited_meanwhile(
            request,
            item,
            exc,
            action=Decision.Action.UNDO,
            own_escalation=decision.action == Decision.Action.ESCALATE,
        )
    except (NotAllowed, ClaimConflict) as exc:
        messages.error(request, f"Not undone: {exc}.")
        return redirect(reverse("item", args=[item.pk]) + _back(request))
    leaving = int_or_none(request.POST.get("leaving"))
    if leaving is not None and leaving != item.pk:
        # The item the reviewer had moved on to: back to the queue for others at once,
        # rather than held for the rest of its lease while they look at the undone one.
        item_release(item=Item(pk=leaving), reviewer=request.user)
    messages.success(request, f"Undone: item {item.pk} is back with you.")
    return redirect(reverse("item", args=[item.pk]) + _back(request))


@require_POST
@senior_required
def item_legal_hold(request: HttpRequest, item_id: int) -> HttpResponse:
    """A senior or an admin puts the item on legal hold (with a reason) or lifts it."""
    item = _reviewable_item(request, item_id)
    hold = request.POST.get("hold") == "1"
    try:
        legal_hold_set(
            obj=item, hold=hold, reason=request.POST.get("reason", ""), actor=request.user
        )
    except ValueError as exc:
        messages.error(request, str(exc))
    else:
        messages.success(request, "Legal hold set." if hold else "Legal hold lifted.")
    return redirect(reverse("item", args=[item.pk]) + _back(request))


@require_POST
@reviewer_required
def item_release_view(request: HttpRequest, item_id: int) -> HttpResponse:
    """Let go of the item: back to the queue page; others can take it at once."""
    item = _reviewable_item(request, item_id)
    _let_go(request, item)
    messages.info(request, f"Released item {item.pk}.")
    return redirect(reverse("queue") + _back(request))


def _let_go(request: HttpRequest, item: Item) -> None:
    """Skip and release alike: give up the claim, or, on a golden item served to this
    reviewer, record its answer as skipped (neither right nor wrong; see
    golden_answer_skip). The reviewer sees the same as for any item either way."""
    golden_answer = golden_answer_open(reviewer=request.user, item=item)
    if golden_answer is not None:
        golden_answer_skip(answer=golden_answer, reviewer=request.user)
    else:
        item_release(item=item, reviewer=request.user)


@require_POST
@reviewer_required
def item_skip(request: HttpRequest, item_id: int) -> HttpResponse:
    """Let go of the item and take the next one; the skipped item goes back to the queue for
    others and is not handed to this reviewer again this session."""
    item = _reviewable_item(request, item_id)
    _let_go(request, item)
    skipped = request.session.get("skipped", [])
    request.session["skipped"] = ([*skipped, item.pk])[-200:]
    messages.info(request, f"Skipped item {item.pk}.")
    return redirect(_next_url(request, item))


@require_POST
@reviewer_required
def item_reveal(request: HttpRequest, item_id: int) -> HttpResponse:
    """The page reports a media reveal (click or `v`): counted for the reviewer's exposure.
    The answer carries today's count, so the page's counter follows without a reload."""
    item = _reviewable_item(request, item_id)
    if item.has_media and not item_media_restricted(item):
        media_reveal_record(item=item, reviewer=request.user)
    response = HttpResponse(status=204)
    response["X-Reveals-Today"] = str(exposure(request.user).reveals_today)
    return response


@require_GET
@reviewer_required
def item_media(request: HttpRequest, item_id: int, kind: str) -> HttpResponse:
    item = _reviewable_item(request, item_id)
    stored = {"image": item.content_image, "video": item.content_video}.get(kind)
    if not stored or item_media_restricted(item):  # a restricted bank's match: never shown
        raise Http404
    content_type = item.content_image_type if kind == "image" else item.content_video_type
    response = ranged_file_response(request, stored, content_type=content_type)
    # Hostile bytes: never sniffed as HTML, never run as a document.
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "sandbox; default-src 'none'"
    response["Cache-Control"] = "private, max-age=3600"
    return response
