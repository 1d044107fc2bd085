"""Reviewer pages: the queue, the next item, an item with its decision form, its media."""

from __future__ import annotations

from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods

from labelers.models import Labeler
from labelers.selectors import labeling_health, labeling_stalled
from moderation import selectors, services
from moderation.models import IN_QUEUE, Decision, Item, Source


def reviewer_required(view):
    """Reviewers (group "reviewer") and admins (staff) only."""

    @wraps(view)
    @login_required
    def wrapped(request, *args, **kwargs):
        user = request.user
        if not (user.is_staff or user.groups.filter(name="reviewer").exists()):
            raise PermissionDenied
        return view(request, *args, **kwargs)

    return wrapped


def _int_or_none(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None


def _cursor(value: str | None) -> tuple[float, int] | None:
    if not value:
        return None
    score, _, last_id = value.partition("_")
    try:
        return float(score), int(last_id)
    except ValueError:
        return None


@require_GET
@reviewer_required
def queue(request: HttpRequest) -> HttpResponse:
    source_id = _int_or_none(request.GET.get("source"))
    labeler_id = _int_or_none(request.GET.get("labeler"))
    items, following = selectors.queue_page(
        after=_cursor(request.GET.get("after")), source_id=source_id, labeler_id=labeler_id
    )
    return render(
        request,
        "moderation/queue.html",
        {
            "items": items,
            "next_cursor": f"{following[0]!r}_{following[1]}" if following else None,
            "sources": Source.objects.all(),
            "labelers": Labeler.objects.all(),
            "source_id": source_id,
            "labeler_id": labeler_id,
            "now": timezone.now(),
            "health": labeling_health(),
            "stalled": labeling_stalled(),
        },
    )


@require_GET
@reviewer_required
def queue_next(request: HttpRequest) -> HttpResponse:
    source_id = _int_or_none(request.GET.get("source"))
    for _ in range(5):  # another reviewer may claim our pick between the read and the claim
        item = selectors.queue_next(reviewer=request.user, source_id=source_id)
        if item is None:
            messages.info(request, "The queue is empty.")
            return redirect("queue")
        if services.item_claim(item=item, reviewer=request.user):
            return redirect("item", item_id=item.pk)
    return redirect("queue")


@require_http_methods(["GET", "POST"])
@reviewer_required
def item_detail(request: HttpRequest, item_id: int) -> HttpResponse:
    item = get_object_or_404(Item.objects.select_related("source", "claimed_by"), pk=item_id)
    if request.method == "POST":
        action = request.POST.get("action", "")
        if action not in Decision.Action.values:
            messages.error(request, "Choose approve, remove or escalate.")
            return redirect("item", item_id=item.pk)
        try:
            services.decision_record(
                item=item,
                reviewer=request.user,
                action=action,
                reason=request.POST.get("reason", ""),
                note=request.POST.get("note", ""),
                decisions_seen=_int_or_none(request.POST.get("decisions_seen")),
            )
        except services.ClaimConflict as exc:
            messages.error(request, f"Not decided: {exc}. Look again before deciding.")
            return redirect("item", item_id=item.pk)
        messages.success(request, f"Item {item.pk}: {action}.")
        if request.POST.get("next"):
            return redirect("queue_next")
        return redirect("queue")
    claimed = item.status in IN_QUEUE and services.item_claim(item=item, reviewer=request.user)
    labels = item.labels.select_related("labeler_version__labeler").order_by(
        "-revision", "-violation_score"
    )
    return render(
        request,
        "moderation/item.html",
        {
            "item": item,
            "labels": labels,
            "decisions": item.decisions.select_related("reviewer"),
            "revisions": item.revisions.order_by("-number"),
            "claimed": claimed,
            "in_queue": IN_QUEUE,
            "actions": Decision.Action.choices,
        },
    )


@require_GET
@reviewer_required
def item_media(request: HttpRequest, item_id: int, kind: str) -> FileResponse:
    item = get_object_or_404(Item, pk=item_id)
    stored = {"image": item.content_image, "video": item.content_video}.get(kind)
    if not stored:
        raise Http404
    content_type = item.content_image_type if kind == "image" else item.content_video_type
    response = FileResponse(stored.open("rb"), content_type=content_type)
    # Hostile bytes: never sniffed as HTML, never run as a document.
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "sandbox; default-src 'none'"
    response["Cache-Control"] = "private, max-age=3600"
    return response
