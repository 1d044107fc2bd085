"""Reviewer pages: the queue, the next item, an item with its decision form, its media."""

from __future__ import annotations

from copy import copy
from dataclasses import replace
from functools import wraps
from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from labelers.models import Labeler
from labelers.selectors import labeling_health, labeling_stalled
from moderation import selectors, services
from moderation.filters import STATUSES, QueueFilter
from moderation.forms import GoldenMarkForm, ReviewerSettingsForm
from moderation.http import ranged_file_response
from moderation.models import REVIEWABLE, Decision, GoldenAnswer, GoldenItem, Item, Source


def reviewer_required(view):
    """Reviewers (the review_item permission: groups reviewer and senior) and admins."""

    @wraps(view)
    @login_required
    def wrapped(request, *args, **kwargs):
        if not selectors.can_review(request.user):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapped


def senior_required(view):
    """Senior reviewers (review_escalated: the senior group) and admins."""

    @wraps(view)
    @reviewer_required
    def wrapped(request, *args, **kwargs):
        if not selectors.can_review_escalated(request.user):
            raise PermissionDenied("Escalated items are for senior reviewers.")
        return view(request, *args, **kwargs)

    return wrapped


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


@require_GET
@reviewer_required
def queue(request: HttpRequest) -> HttpResponse:
    return _queue(request, QueueFilter.from_query(request.GET), title="Review queue")


@require_GET
@senior_required
def escalated_queue(request: HttpRequest) -> HttpResponse:
    """The seniors' own queue: escalated items, sorted and filtered like the main one."""
    filters = QueueFilter.from_query(request.GET).with_status("escalated")
    return _queue(request, filters, title="Escalated items", tabs=False)


def _queue(request: HttpRequest, filters: QueueFilter, *, title: str, tabs=True) -> HttpResponse:
    senior = selectors.can_review_escalated(request.user)
    if filters.status == "escalated" and not senior:
        raise PermissionDenied
    statuses = [status for status in STATUSES if senior or status != "escalated"]
    if not tabs:
        statuses = [filters.status]
    items, next_cursor = selectors.queue_page(
        reviewer=request.user, filters=filters, after=request.GET.get("after")
    )
    counts = selectors.queue_counts(reviewer=request.user, filters=filters, statuses=statuses)
    allowed = selectors.reviewer_source_ids(request.user)
    sources = Source.objects.order_by("name")
    labelers = Labeler.objects.order_by("name")
    if allowed is not None:
        sources = sources.filter(pk__in=allowed)
        labelers = labelers.filter(sources__in=allowed).distinct()
    return render(
        request,
        "moderation/queue.html",
        {
            "title": title,
            "items": items,
            "filters": filters,
            "tabs": [
                {
                    "status": status,
                    "label": STATUSES[status],
                    "count": counts[status],
                    "url": filters.with_status(status).querystring() or "?",
                    "active": status == filters.status,
                }
                for status in statuses
                if tabs
            ],
            "next_url": (
                "?" + urlencode({**filters.params(), "after": next_cursor}) if next_cursor else None
            ),
            "querystring": filters.querystring(),
            "sla": selectors.queue_sla(reviewer=request.user),
            "sources": sources,
            "labelers": labelers,
            "media_choices": [
                ("", "Any"),
                ("image", "Has image"),
                ("video", "Has video"),
                ("text", "Text only"),
            ],
            "now": timezone.now(),
            "health": labeling_health(),
            "stalled": labeling_stalled(),
        },
    )


@require_GET
@reviewer_required
def queue_next(request: HttpRequest) -> HttpResponse:
    """Claim the top free item under the queue's filters and open it; the filters ride
    along in the item's URL so that the next "next" keeps them."""
    filters = QueueFilter.from_query(request.GET)
    if filters.status == "escalated" and not selectors.can_review_escalated(request.user):
        raise PermissionDenied
    for attempt in range(5):  # another reviewer may claim our pick between read and claim
        item, effective = _pick_next(request, filters)
        if item is None:
            messages.info(request, "The queue is empty.")
            return redirect(reverse("queue") + filters.querystring())
        # A golden item only stands in for real work: with an empty queue, an item appearing
        # anyway would give it away.
        if attempt == 0 and (golden := _serve_golden(request, effective)):
            return redirect(reverse("item", args=[golden.golden.item_id]) + filters.querystring())
        if services.item_claim(item=item, reviewer=request.user):
            return redirect(reverse("item", args=[item.pk]) + filters.querystring())
    return redirect(reverse("queue") + filters.querystring())


def _pick_next(request: HttpRequest, filters: QueueFilter) -> tuple[Item | None, QueueFilter]:
    """The next item for this reviewer, and the filters it was found under; over their
    exposure budget, text-only items first."""
    skipped = request.session.get("skipped", [])
    if not filters.media and selectors.exposure(request.user).over_budget:
        text_first = replace(filters, media="text")
        item = selectors.queue_next(reviewer=request.user, filters=text_first, exclude_ids=skipped)
        if item is not None:
            return item, text_first
    return selectors.queue_next(
        reviewer=request.user, filters=filters, exclude_ids=skipped
    ), filters


def _serve_golden(request: HttpRequest, filters: QueueFilter) -> GoldenAnswer | None:
    """With the reviewer's golden share as probability, a golden item (under the same
    filters) instead of the queue's next: served by an open answer, not by a claim, since
    the item is decided and claims are for items waiting."""
    if not selectors.golden_due(request.user):
        return None
    golden = selectors.golden_next(
        reviewer=request.user, filters=filters, exclude_item_ids=request.session.get("skipped", [])
    )
    if golden is None:
        return None
    return services.golden_answer_serve(golden=golden, reviewer=request.user)


@require_GET
@senior_required
def escalated_next(request: HttpRequest) -> HttpResponse:
    filters = QueueFilter.from_query(request.GET).with_status("escalated")
    return redirect(reverse("queue_next") + filters.querystring())


def _reviewable_item(request: HttpRequest, item_id: int, *, own_escalation=False) -> Item:
    """The item, if this reviewer may see it: their sources only, escalated items only for
    seniors (or, to undo it, for the reviewer who escalated). Checked on every view and POST
    that touches an item."""
    item = get_object_or_404(Item.objects.select_related("source", "claimed_by"), pk=item_id)
    allowed = selectors.reviewer_source_ids(request.user)
    if allowed is not None and item.source_id not in allowed:
        raise Http404  # not even whether it exists
    senior = own_escalation or selectors.can_review_escalated(request.user)
    if item.status == Item.Status.ESCALATED and not senior:
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
    golden_answer = selectors.golden_answer_open(reviewer=request.user, item=item)
    if request.method == "POST":
        if golden_answer is not None:
            return _answer_golden(request, item, golden_answer)
        return _decide(request, item)
    if golden_answer is not None:
        return _golden_page(request, item)
    claimed = item.status in REVIEWABLE and services.item_claim(item=item, reviewer=request.user)
    decisions = list(item.decisions.select_related("reviewer", "undoes"))
    escalation = next(
        (d for d in reversed(decisions) if d.action == Decision.Action.ESCALATE), None
    )
    return _item_page(
        request,
        item,
        shown=item,
        decisions=decisions,
        escalation=escalation if item.status == Item.Status.ESCALATED else None,
        claimed=claimed,
        golden=_golden_admin_context(request, item),
    )


def _item_page(
    request: HttpRequest, item: Item, *, shown: Item, decisions, escalation, claimed, golden
) -> HttpResponse:
    """The item page, for an ordinary item and for a golden one (`shown`: the item as the
    page presents it)."""
    labels = item.labels.select_related("labeler_version__labeler").order_by(
        "-revision", "-violation_score"
    )
    review_settings = selectors.reviewer_settings(request.user)
    if item.has_media and not review_settings.blur_media:
        # Media shown without a click is still media seen.
        services.media_reveal_record(item=item, reviewer=request.user)
    return render(
        request,
        "moderation/item.html",
        {
            "item": shown,
            "labels": labels,
            "decisions": decisions,
            "escalation": escalation,
            "revisions": item.revisions.order_by("-number"),
            "claimed": claimed,
            "reviewable": REVIEWABLE,
            "actions": selectors.decision_actions(),
            "back": _back(request),
            "review_settings": review_settings,
            "golden": golden,
        },
    )


def _golden_admin_context(request: HttpRequest, item: Item) -> dict | None:
    """For staff on a decided item: its golden state and the form to mark it."""
    if not request.user.is_staff or item.status != Item.Status.DECIDED:
        return None
    current = selectors.item_current_decision(item)
    golden = getattr(item, "golden", None)
    expected = golden.expected_action if golden and golden.active else None
    if expected is None and current and current.action in services.GOLDEN_ACTIONS:
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
    shown.status = selectors.golden_shown_status(item)
    shown.decided_at = None
    shown.claimed_by = None
    return _item_page(
        request, item, shown=shown, decisions=[], escalation=None, claimed=True, golden=None
    )


def _answer_golden(request: HttpRequest, item: Item, answer: GoldenAnswer) -> HttpResponse:
    """Record the answer to a golden item and move on like after a decision. Nothing is
    offered to undo: the undo bar of an earlier decision is dropped with it."""
    action = request.POST.get("action", "")
    back = _back(request)
    if action not in selectors.DECIDABLE:
        messages.error(request, "Choose approve, remove or escalate.")
        return redirect(reverse("item", args=[item.pk]) + back)
    try:
        services.golden_answer_record(
            answer=answer,
            reviewer=request.user,
            action=action,
            reason_id=_int_or_none(request.POST.get(f"reason_{action}")),
            note=request.POST.get("note", ""),
        )
    except (ValueError, services.NotAllowed) as exc:
        messages.error(request, f"Not decided: {exc}.")
        return redirect(reverse("item", args=[item.pk]) + back)
    except services.AlreadyAnswered:
        pass  # a double submit: the first one counted, go on as it did
    request.session.pop("undo", None)
    if request.POST.get("next"):
        return redirect(_next_url(request, item))
    return redirect(reverse("queue") + back)


@require_POST
@reviewer_required
def item_golden(request: HttpRequest, item_id: int) -> HttpResponse:
    """Staff: mark a decided item as golden (with the expected action and a note), or
    unmark it."""
    if not request.user.is_staff:
        raise PermissionDenied
    item = get_object_or_404(Item, pk=item_id)
    if "unmark" in request.POST:
        golden = get_object_or_404(GoldenItem, item=item)
        services.golden_item_unmark(golden=golden)
        messages.success(request, f"Item {item.pk} is no longer golden.")
        return redirect("item", item.pk)
    form = GoldenMarkForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Not marked: choose approve or remove as the expected action.")
        return redirect("item", item.pk)
    try:
        services.golden_item_mark(item=item, created_by=request.user, **form.cleaned_data)
    except ValueError as exc:
        messages.error(request, f"Not marked: {exc}.")
        return redirect("item", item.pk)
    messages.success(
        request,
        f"Item {item.pk} is golden: reviewers are expected to "
        f"{form.cleaned_data['expected_action']} it.",
    )
    return redirect("item", item.pk)


def _decide(request: HttpRequest, item: Item) -> HttpResponse:
    action = request.POST.get("action", "")
    back = _back(request)
    if action not in selectors.DECIDABLE:
        messages.error(request, "Choose approve, remove or escalate.")
        return redirect(reverse("item", args=[item.pk]) + back)
    try:
        decision = services.decision_record(
            item=item,
            reviewer=request.user,
            action=action,
            reason_id=_int_or_none(request.POST.get(f"reason_{action}")),
            note=request.POST.get("note", ""),
            decisions_seen=_int_or_none(request.POST.get("decisions_seen")),
            may_decide_escalated=selectors.can_review_escalated(request.user),
        )
    except (ValueError, services.NotAllowed) as exc:
        messages.error(request, f"Not decided: {exc}.")
        return redirect(reverse("item", args=[item.pk]) + back)
    except services.ClaimConflict as exc:
        messages.error(request, f"Not decided: {exc}. Look again before deciding.")
        return redirect(reverse("item", args=[item.pk]) + back)
    # The next page offers to undo this for a few seconds.
    request.session["undo"] = {"decision": decision.pk, "at": decision.created_at.timestamp()}
    if request.POST.get("next"):
        return redirect(_next_url(request, item))
    return redirect(reverse("queue") + back)


@require_POST
@reviewer_required
def decision_undo(request: HttpRequest, decision_id: int) -> HttpResponse:
    decision = get_object_or_404(Decision, pk=decision_id, reviewer=request.user)
    item = _reviewable_item(
        request, decision.item_id, own_escalation=decision.action == Decision.Action.ESCALATE
    )
    request.session.pop("undo", None)
    try:
        services.decision_undo(decision=decision, reviewer=request.user)
    except (services.NotAllowed, services.ClaimConflict) as exc:
        messages.error(request, f"Not undone: {exc}.")
        return redirect(reverse("item", args=[item.pk]) + _back(request))
    messages.success(request, f"Undone: item {item.pk} is back with you.")
    return redirect(reverse("item", args=[item.pk]) + _back(request))


@require_POST
@reviewer_required
def item_release(request: HttpRequest, item_id: int) -> HttpResponse:
    """Let go of the item: back to the queue page; others can take it at once."""
    item = _reviewable_item(request, item_id)
    _let_go(request, item)
    messages.info(request, f"Released item {item.pk}.")
    return redirect(reverse("queue") + _back(request))


def _let_go(request: HttpRequest, item: Item) -> None:
    """Skip and release alike: give up the claim, or, on a golden item served to this
    reviewer, record its answer as skipped (neither right nor wrong; see
    golden_answer_skip). The reviewer sees the same as for any item either way."""
    golden_answer = selectors.golden_answer_open(reviewer=request.user, item=item)
    if golden_answer is not None:
        services.golden_answer_skip(answer=golden_answer, reviewer=request.user)
    else:
        services.item_release(item=item, reviewer=request.user)


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
    """The page reports a media reveal (click or `v`): counted for the reviewer's exposure."""
    item = _reviewable_item(request, item_id)
    if item.has_media:
        services.media_reveal_record(item=item, reviewer=request.user)
    return HttpResponse(status=204)


@require_GET
@reviewer_required
def item_media(request: HttpRequest, item_id: int, kind: str) -> HttpResponse:
    item = _reviewable_item(request, item_id)
    stored = {"image": item.content_image, "video": item.content_video}.get(kind)
    if not stored:
        raise Http404
    content_type = item.content_image_type if kind == "image" else item.content_video_type
    response = ranged_file_response(request, stored, content_type=content_type)
    # Hostile bytes: never sniffed as HTML, never run as a document.
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "sandbox; default-src 'none'"
    response["Cache-Control"] = "private, max-age=3600"
    return response


@require_GET
@reviewer_required
def my_decisions(request: HttpRequest) -> HttpResponse:
    before = _int_or_none(request.GET.get("before"))
    decisions, following = selectors.decisions_by(reviewer=request.user, before=before)
    return render(
        request,
        "moderation/my_decisions.html",
        {"decisions": decisions, "following": following},
    )


@require_http_methods(["GET", "POST"])
@reviewer_required
def my_settings(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        if "break" in request.POST:
            services.reviewer_break_taken(reviewer=request.user)
            messages.success(request, "Break taken: your exposure count starts again.")
            return redirect("queue")
        form = ReviewerSettingsForm(request.POST)
        if form.is_valid():
            services.reviewer_settings_save(reviewer=request.user, **form.cleaned_data)
            messages.success(request, "Settings saved.")
            return redirect("my_settings")
    else:
        current = selectors.reviewer_settings(request.user)
        form = ReviewerSettingsForm(
            initial={name: getattr(current, name) for name in ReviewerSettingsForm.base_fields}
        )
    return render(
        request,
        "moderation/settings.html",
        {"form": form, "exposure": selectors.exposure(request.user)},
    )


@require_GET
@reviewer_required
def team(request: HttpRequest) -> HttpResponse:
    """For leads and admins: today's decisions and media exposure per reviewer (a wellness
    signal, not a ranking)."""
    if not request.user.is_staff:
        raise PermissionDenied
    return render(
        request,
        "moderation/team.html",
        {
            "rows": selectors.team_exposure(),
            "golden": [_with_bars(row) for row in selectors.golden_agreement()],
        },
    )


# The per-week bars of golden agreement on /team/: an inline SVG drawn by the server.
BAR_WIDTH, BAR_GAP, BAR_HEIGHT = 14, 4, 32


def _with_bars(row: selectors.GoldenAgreement) -> dict:
    bars = []
    for n, week in enumerate(row.weeks):
        # At least 1 px, so 0 % correct still shows; a week without answers is drawn grey.
        height = max(1, round((week.share or 0) * BAR_HEIGHT))
        bars.append(
            {
                "week": week,
                "x": n * (BAR_WIDTH + BAR_GAP),
                "y": BAR_HEIGHT - height,
                "height": height,
            }
        )
    return {
        "row": row,
        "bars": bars,
        "width": len(bars) * (BAR_WIDTH + BAR_GAP) - BAR_GAP,
        "bar_width": BAR_WIDTH,
        "height": BAR_HEIGHT,
    }


@require_GET
@reviewer_required
def team_golden_wrong(request: HttpRequest, user_id: int) -> HttpResponse:
    """For leads: the golden items a reviewer answered differently from the expected action."""
    if not request.user.is_staff:
        raise PermissionDenied
    reviewer = get_object_or_404(get_user_model(), pk=user_id)
    return render(
        request,
        "moderation/team_golden_wrong.html",
        {"reviewer": reviewer, "answers": selectors.golden_wrong_answers(reviewer_id=user_id)},
    )
