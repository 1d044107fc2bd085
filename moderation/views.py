from __future__ import annotations

import logging
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from labelers.models import Labeler
from moderation import selectors, services
from moderation.errors import IntakeError
from moderation.intake import parse_body
from moderation.models import Decision, Item, Source
from moderation.webhooks import verify

logger = logging.getLogger(__name__)


def _error(status: int, message: str, field: str | None = None) -> JsonResponse:
    return JsonResponse({"error": message, "field": field}, status=status)


def _read_body(request: HttpRequest) -> bytes:
    """Read at most the intake limit; never an unbounded body into memory."""
    limit = settings.INTAKE_MAX_BODY_BYTES
    try:
        declared = int(request.META.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise IntakeError(400, "bad Content-Length header", field="Content-Length") from None
    if declared > limit:
        raise IntakeError(413, f"body is larger than {limit} bytes", field="body")
    body = request.read(limit + 1)
    if len(body) > limit:
        raise IntakeError(413, f"body is larger than {limit} bytes", field="body")
    return body


@csrf_exempt
@require_POST
def webhook(request: HttpRequest, slug: str) -> JsonResponse:
    source = selectors.source_for_intake(slug)
    if source is None:
        return _error(404, "unknown source", "slug")
    try:
        body = _read_body(request)
        webhook_id, _ = verify(
            headers=request.headers,
            body=body,
            secrets=services.source_valid_secrets(source=source),
            tolerance=settings.WEBHOOK_TOLERANCE_SECONDS,
        )
        if not source.active:
            raise IntakeError(403, "this source is deactivated", field="slug")
        payload = parse_body(body)
        item, created = services.item_ingest(source=source, payload=payload, webhook_id=webhook_id)
    except IntakeError as exc:
        return JsonResponse(exc.as_json(), status=exc.status)
    return JsonResponse({"id": item.pk, "status": item.status}, status=202 if created else 200)


def _api_source(request: HttpRequest) -> Source | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return selectors.source_for_token(token.strip())


def api_auth(view):
    @wraps(view)
    def wrapped(request, *args, **kwargs):
        source = _api_source(request)
        if source is None:
            response = _error(401, "missing or invalid bearer token", "Authorization")
            response["WWW-Authenticate"] = "Bearer"
            return response
        return view(request, source, *args, **kwargs)

    return wrapped


@require_GET
@api_auth
def api_item(request: HttpRequest, source: Source, item_id: int) -> JsonResponse:
    item = Item.objects.filter(pk=item_id, source=source).first()
    if item is None:
        return _error(404, "no such item", "id")
    return JsonResponse(selectors.item_api_dict(item))


@require_GET
@api_auth
def api_items(request: HttpRequest, source: Source) -> JsonResponse:
    external_id = request.GET.get("external_id")
    if not external_id:
        return _error(400, "external_id query parameter is required", "external_id")
    item = Item.objects.filter(external_id=external_id, source=source).first()
    if item is None:
        return _error(404, "no such item", "external_id")
    return JsonResponse(selectors.item_api_dict(item))


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
            "health": selectors.labeling_health(),
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
    claimed = item.status == Item.Status.FLAGGED and services.item_claim(
        item=item, reviewer=request.user
    )
    labels = item.labels.select_related("labeler_version__labeler").order_by("-violation_score")
    return render(
        request,
        "moderation/item.html",
        {
            "item": item,
            "labels": labels,
            "decisions": item.decisions.select_related("reviewer"),
            "claimed": claimed,
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
