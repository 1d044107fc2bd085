"""Staff mark a decided item as golden (with the expected action), or unmark it."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.views.decorators.http import require_POST

from moderation.errors import StaleRevision
from moderation.filters import int_or_none
from moderation.forms import GoldenMarkForm
from moderation.models import GoldenItem, Item
from moderation.permissions import (
    reviewer_required,
)
from moderation.services.golden import (
    golden_item_mark,
    golden_item_unmark,
)


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
        golden_item_unmark(golden=golden, by=request.user)
        messages.success(request, f"Item {item.pk} is no longer golden.")
        return redirect("item", item.pk)
    form = GoldenMarkForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Not marked: choose approve or remove as the expected action.")
        return redirect("item", item.pk)
    revision = int_or_none(request.POST.get("revision"))
    if revision is None:
        # As a decision: a mark that does not say which revision it vouches for could be
        # about any of them.
        messages.error(
            request,
            "Not marked: the form did not say which version of the post you saw. Here it is "
            "as it is now; mark it again.",
        )
        return redirect("item", item.pk)
    try:
        golden_item_mark(item=item, created_by=request.user, revision=revision, **form.cleaned_data)
    except StaleRevision as exc:
        messages.error(
            request,
            f"Not marked: this post was edited since you opened the page (you saw revision "
            f"{exc.seen}, it is at revision {exc.current}). Here is the new version.",
        )
        return redirect("item", item.pk)
    except ValueError as exc:
        messages.error(request, f"Not marked: {exc}.")
        return redirect("item", item.pk)
    messages.success(
        request,
        f"Item {item.pk} is golden: reviewers are expected to "
        f"{form.cleaned_data['expected_action']} it.",
    )
    return redirect("item", item.pk)
