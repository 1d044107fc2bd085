"""The seniors' appeals: the queue of pending appeals (oldest first) and an appeal's page,
where a senior who did not make the appealed decision upholds or overturns it."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods

from moderation.errors import ClaimConflict, NotAllowed, StaleRevision
from moderation.filters import int_or_none
from moderation.models import NOTE_MAX_LENGTH, Appeal, Decision
from moderation.permissions import reviewer_source_ids, senior_required
from moderation.selectors.appeals import appeals_queue
from moderation.selectors.authors import author_panel
from moderation.services.appeals import appeal_decide, appeal_decider_problem
from moderation.views.item import _history as item_history


@require_GET
@senior_required
def appeals_list(request: HttpRequest) -> HttpResponse:
    rows, next_cursor = appeals_queue(
        user=request.user,
        source_ids=reviewer_source_ids(request.user),
        after=int_or_none(request.GET.get("after")),
    )
    return render(request, "moderation/appeals.html", {"rows": rows, "next": next_cursor})


def _decidable_appeal(request: HttpRequest, appeal_id: int) -> Appeal:
    """The appeal, if this senior may see it: their sources only, and never an appeal of
    their own decision or of an action they confirmed (checked on GET and POST)."""
    appeal = get_object_or_404(
        Appeal.objects.select_related(
            "source",
            "item__source",
            "item__author",
            "decision__reviewer",
            "account_action__author",
            "account_action__created_by",
            "decided_by",
        ),
        pk=appeal_id,
    )
    allowed = reviewer_source_ids(request.user)
    if allowed is not None and appeal.source_id not in allowed:
        raise Http404
    problem = appeal_decider_problem(appeal, request.user)
    if problem:
        raise PermissionDenied(problem[0].upper() + problem[1:] + ".")
    return appeal


@require_http_methods(["GET", "POST"])
@senior_required
def appeal_detail(request: HttpRequest, appeal_id: int) -> HttpResponse:
    appeal = _decidable_appeal(request, appeal_id)
    if request.method == "POST":
        return _decide(request, appeal)
    context: dict = {"appeal": appeal, "note_max_length": NOTE_MAX_LENGTH}
    item = appeal.item
    if item is not None:
        decisions = list(item.decisions.select_related("reviewer", "undoes"))
        context.update(
            item=item,
            labels=item.labels.select_related("labeler_version__labeler").order_by(
                "-revision", "-violation_score"
            ),
            history=item_history(item, shown=item, decisions=decisions),
            revisions=item.revisions.order_by("-number"),
            author_panel=author_panel(item),
        )
    else:
        action = appeal.account_action
        context["action_decisions"] = list(
            Decision.objects.filter(pk__in=action.decision_ids)
            .select_related("item", "reviewer")
            .order_by("id")
        )
    return render(request, "moderation/appeal.html", context)


def _decide(request: HttpRequest, appeal: Appeal) -> HttpResponse:
    here = reverse("appeal", args=[appeal.pk])
    revision = int_or_none(request.POST.get("revision"))
    if appeal.item_id is not None and revision is None:
        # As a decision: an outcome only ever applies to the content the senior saw.
        messages.error(request, "Not decided: the form did not say which revision you saw.")
        return redirect(here)
    try:
        appeal_decide(
            appeal=appeal,
            senior=request.user,
            outcome=request.POST.get("outcome", ""),
            note=request.POST.get("note", ""),
            revision=revision,
        )
    except StaleRevision as exc:
        messages.error(request, f"Not decided: {exc}. Read it again before deciding.")
        return redirect(here)
    except ClaimConflict as exc:
        messages.error(request, f"Not decided: {exc}.")
        return redirect(here)
    except (ValueError, NotAllowed) as exc:
        messages.error(request, f"Not decided: {exc}.")
        return redirect(here)
    messages.success(request, f"Appeal {appeal.appeal_id}: {request.POST['outcome']}.")
    return redirect("appeals")
