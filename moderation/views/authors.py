"""The author's page (a timeline of their items, strikes and account actions, and deciding
all their open items at once) and the seniors' "Accounts" list of proposed account actions."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from moderation.errors import NotAllowed
from moderation.filters import int_or_none
from moderation.models import AccountAction, AccountActionProposal, Author
from moderation.permissions import (
    can_review_escalated,
    reviewer_required,
    reviewer_source_ids,
    senior_required,
)
from moderation.selectors.authors import (
    OVERVIEW_SORTS,
    author_open_items,
    author_panel_for,
    author_timeline,
    authors_overview,
    proposals_open,
)
from moderation.selectors.decisions import decision_actions
from moderation.services.authors import ProposalClosed, proposal_confirm, proposal_dismiss
from moderation.services.decisions import CountChanged, author_open_items_decide


def _visible_author(request: HttpRequest, author_id: int) -> Author:
    """The author, if the reviewer may review their source (else 404: not even whether it
    exists)."""
    author = get_object_or_404(Author.objects.select_related("source"), pk=author_id)
    allowed = reviewer_source_ids(request.user)
    if allowed is not None and author.source_id not in allowed:
        raise Http404
    return author


@require_GET
@reviewer_required
def author_page(request: HttpRequest, author_id: int) -> HttpResponse:
    author = _visible_author(request, author_id)
    entries, following = author_timeline(author, after=request.GET.get("after"))
    senior = can_review_escalated(request.user)
    remove = next(a for a in decision_actions() if a.value == "remove")
    return render(
        request,
        "moderation/author.html",
        {
            "author": author,
            "panel": author_panel_for(author),
            "entries": entries,
            "next_url": f"?after={following}" if following else None,
            "first_page": not request.GET.get("after"),
            "senior": senior,
            "open_count": author_open_items(author).count() if senior else 0,
            "remove_reasons": remove.reasons,
            "proposals": list(
                AccountActionProposal.objects.filter(
                    author=author, status=AccountActionProposal.Status.PROPOSED
                ).order_by("id")
            ),
            "action_choices": AccountAction.Action.choices,
        },
    )


@require_POST
@senior_required
def author_remove_open(request: HttpRequest, author_id: int) -> HttpResponse:
    """Remove all the author's open items: the count the senior saw must still be right."""
    author = _visible_author(request, author_id)
    page = reverse("author", args=[author.pk])
    expected = int_or_none(request.POST.get("expected"))
    reason_id = int_or_none(request.POST.get("reason"))
    if expected is None or expected < 1:
        messages.error(request, "Nothing removed: confirm how many open items to remove.")
        return redirect(page)
    try:
        decisions, left = author_open_items_decide(
            author=author,
            reviewer=request.user,
            action="remove",
            reason_id=reason_id,
            expected=expected,
            note=request.POST.get("note", ""),
        )
    except CountChanged as exc:
        messages.error(request, f"Nothing removed: {exc}. Look again and confirm the new count.")
        return redirect(page)
    except (ValueError, NotAllowed) as exc:
        messages.error(request, f"Nothing removed: {exc}.")
        return redirect(page)
    text = f"Removed {len(decisions)} item{'s' if len(decisions) != 1 else ''}."
    if left:
        text += f" {left} left: another reviewer is on them."
    messages.success(request, text)
    return redirect(page)


@require_GET
@senior_required
def accounts(request: HttpRequest) -> HttpResponse:
    """Proposed account actions waiting for a senior, oldest first."""
    return render(
        request,
        "moderation/accounts.html",
        {
            "proposals": proposals_open(source_ids=reviewer_source_ids(request.user)),
            "action_choices": AccountAction.Action.choices,
        },
    )


@require_POST
@senior_required
def proposal_decide(request: HttpRequest, proposal_id: int) -> HttpResponse:
    """Confirm (as proposed, or with another action or length) or dismiss, with a note."""
    proposal = get_object_or_404(
        AccountActionProposal.objects.select_related("author"), pk=proposal_id
    )
    _visible_author(request, proposal.author_id)
    back = request.POST.get("back") == "author"
    where = reverse("author", args=[proposal.author_id]) if back else reverse("accounts")
    note = request.POST.get("note", "")
    try:
        if request.POST.get("decision") == "dismiss":
            proposal_dismiss(proposal=proposal, senior=request.user, note=note)
            messages.success(request, f"Dismissed: no action on {proposal.author.external_id}.")
        else:
            action = proposal_confirm(
                proposal=proposal,
                senior=request.user,
                action=request.POST.get("action") or None,
                days=int_or_none(request.POST.get("days")),
                note=note,
            )
            messages.success(
                request,
                f"Confirmed: {action.get_action_display().lower()} "
                f"{proposal.author.external_id}; the product is told.",
            )
    except (ValueError, ProposalClosed) as exc:
        messages.error(request, f"Not done: {exc}.")
    return redirect(where)


@require_GET
@reviewer_required
def authors_list(request: HttpRequest) -> HttpResponse:
    """For leads: authors with the most active strikes and open items, sortable."""
    if not request.user.is_staff:
        raise PermissionDenied
    sort = request.GET.get("sort", "strikes")
    sort = sort if sort in OVERVIEW_SORTS else "strikes"
    return render(
        request,
        "moderation/authors.html",
        {"rows": authors_overview(sort=sort), "sort": sort},
    )
