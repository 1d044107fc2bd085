"""Hash banks on the reviewer's pages: the item page's bank panel (matches, "bank this")."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from labelers.tasks import bank_retro_start
from lib.text import plural
from moderation.filters import int_or_none
from moderation.models import Bank, Item
from moderation.permissions import reviewer_required, reviewer_source_ids
from moderation.selectors.banks import (
    banks_to_pick,
    item_bank_matches,
    item_removed,
)
from moderation.services.banks import bank_item_add


def bank_panel(request: HttpRequest, item: Item) -> dict:
    """The item page's context for banks: each match, whether media is withheld, and the
    banks offered by "bank this" (on a removed item only)."""
    removed = item_removed(item)
    matches = item_bank_matches(item)
    return {
        "bank_matches": matches,
        # As item_media_restricted says, from the matches read for the panel.
        "media_restricted": any(match.bank.restricted for match in matches),
        "bank_choices": banks_to_pick(user=request.user) if removed else [],
    }


@require_POST
@reviewer_required
def item_bank(request: HttpRequest, item_id: int) -> HttpResponse:
    """ "Bank this": the removed item's hashes (of the revision the page showed) into a bank;
    recent items are matched against them in the background."""
    item = get_object_or_404(Item, pk=item_id)
    allowed = reviewer_source_ids(request.user)
    if allowed is not None and item.source_id not in allowed:
        raise Http404
    bank = get_object_or_404(Bank, pk=int_or_none(request.POST.get("bank")) or 0)
    revision = int_or_none(request.POST.get("revision"))
    if revision is None or not item_removed(item):
        messages.error(request, "Only a removed item can be banked, from its page.")
        return redirect("item", item_id=item.pk)
    added = bank_item_add(bank=bank, item=item, revision=revision, user=request.user)
    bank_retro_start([h.pk for h in added])
    messages.success(
        request,
        f"{plural(len(added), 'new hash', 'new hashes')} in {bank.name}; "
        "recent items are being matched against them.",
    )
    return redirect("item", item_id=item.pk)
