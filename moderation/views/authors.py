"""The author's page (a timeline of their items, strikes and account actions, and deciding
all their open items at once) and the seniors' "Accounts" list of proposed account actions."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_POST

from lib.text import plural
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
    OpenBatch,
    author_open_batch,
    author_panel_for,
    author_timeline,
    authors_overview,
    proposals_open,
)
from moderation.selectors.decisions import decision_actions
from moderation.services.authors import (
    ProposalClosed,
    ProposalLapsed,
    proposal_confirm,
    proposal_dismiss,
)
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
    # What "remove all" acts on: exactly these items (the oldest batch), at these revisions.
    open_items, open_total = author_open_batch(author) if senior else OpenBatch([], None)
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
            "open_count": len(open_items),
            "open_total": open_total,  # more than one batch: how many in all
            "open_seen": ",".join(f"{pk}:{revision}" for pk, revision in open_items),
            "remove_reasons": remove.reasons,
            "proposals": proposals_open(author=author),
            "action_choices": AccountAction.Action.choices,
        },
    )


def _open_seen(value: str) -> dict[int, int] | None:
    """The open items the author's page showed, "id:revision,...", or None if malformed."""
    seen = {}
    for pair in value.split(","):
        pk, _, revision = pair.partition(":")
        if int_or_none(pk) is None or int_or_none(revision) is None:
            return None
        seen[int(pk)] = int(revision)
    return seen


@require_POST
@senior_required
def author_remove_open(request: HttpRequest, author_id: int) -> HttpResponse:
    """Remove all the author's open items: exactly those the senior saw, at the revisions
    they saw (the count they confirmed must still be right)."""
    author = _visible_author(request, author_id)
    page = reverse("author", args=[author.pk])
    expected = int_or_none(request.POST.get("expected"))
    seen = _open_seen(request.POST.get("seen", ""))
    reason_id = int_or_none(request.POST.get("reason"))
    if expected is None or expected < 1 or seen is None or len(seen) != expected:
        messages.error(request, "Nothing removed: confirm how many open items to remove.")
        return redirect(page)
    try:
        done = author_open_items_decide(
            author=author,
            reviewer=request.user,
            action="remove",
            reason_id=reason_id,
            seen=seen,
            note=request.POST.get("note", ""),
        )
    except CountChanged as exc:
        messages.error(request, f"Nothing removed: {exc}. Look again and confirm the new count.")
        return redirect(page)
    except (ValueError, NotAllowed) as exc:
        messages.error(request, f"Nothing removed: {exc}.")
        return redirect(page)
    text = f"Removed {plural(len(done.decisions), 'item')}."
    if done.left:
        text += (
            f" {plural(done.left, 'item was', 'items were')} left: another reviewer is on "
            "them, or decided them meanwhile."
        )
    messages.success(request, text)
    if done.edited:
        messages.warning(
            request,
            f"Not removed: {plural(len(done.edited), 'item was', 'items were')} edited since "
            f"your page was shown ({'item' if len(done.edited) == 1 else 'items'} "
            + ", ".join(str(pk) for pk in done.edited)
            + "). Open each and read the new version before deciding.",
        )
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
                lapsed_ok=request.POST.get("lapsed_ok") == "1",
            )
            messages.success(
                request,
                f"Confirmed: {action.get_action_display().lower()} "
                f"{proposal.author.external_id}; the product is told.",
            )
    except (ValueError, ProposalClosed, ProposalLapsed) as exc:
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
