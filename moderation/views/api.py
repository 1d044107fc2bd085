"""Machine endpoints: the signed webhooks (items, reports), the item API for products (bearer
token), and the OpenAPI document that describes them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import cache, wraps
from pathlib import Path

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from lib import logs, metrics
from lib.machine import machine_endpoint
from moderation.errors import IntakeError
from moderation.intake import parse_body, parse_report_body
from moderation.models import LIVE, Author, Item, Source
from moderation.selectors.authors import author_api_dict, events_page
from moderation.selectors.decisions import DECISIONS_PAGE_MAX, DECISIONS_PAGE_SIZE, decisions_page
from moderation.selectors.erasures import erasure_for, erasure_receipt
from moderation.selectors.items import item_api_dict
from moderation.selectors.sources import source_for_intake, source_for_token
from moderation.services.appeals import appeal_receive, parse_appeal_body
from moderation.services.erasures import erasure_request, parse_erasure_body
from moderation.services.items import item_ingest
from moderation.services.reports import report_ingest
from moderation.services.sources import source_valid_secrets
from moderation.tasks import erasure_run_task
from moderation.webhooks import REQUIRED_HEADERS, verify

logger = logging.getLogger(__name__)

OPENAPI_PATH = Path(settings.BASE_DIR) / "openapi.yaml"


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


@machine_endpoint
@csrf_exempt
@require_POST
def webhook(request: HttpRequest, slug: str) -> JsonResponse:
    response = _webhook(request, slug)
    metrics.counted(metrics.INTAKE_REQUESTS, response.status_code)
    return response


# The Standard Webhooks headers as WSGI names them: read from META directly, not through
# request.headers, which builds a mapping of every header (~25 µs a webhook).
_SIGNATURE_META = {name: "HTTP_" + name.upper().replace("-", "_") for name in REQUIRED_HEADERS}


def _signature_headers(request: HttpRequest) -> dict[str, str]:
    meta = request.META
    return {name: meta.get(key, "") for name, key in _SIGNATURE_META.items()}


def _verified_body(request: HttpRequest, source: Source) -> tuple[bytes, str]:
    """The body of a signed request to one of the source's webhooks, and its webhook-id:
    size limits, signature and replay window checked, the source active (IntakeError)."""
    body = _read_body(request)
    webhook_id, _ = verify(
        headers=_signature_headers(request),
        body=body,
        secrets=source_valid_secrets(source=source),
        tolerance=settings.WEBHOOK_TOLERANCE_SECONDS,
    )
    if not source.active:
        raise IntakeError(403, "this source is deactivated", field="slug")
    return body, webhook_id


def _signed_intake(
    request: HttpRequest,
    slug: str,
    kind: str,
    receive: Callable[[Source, bytes, str], JsonResponse],
) -> JsonResponse:
    """The path every signed webhook (items, reports, appeals) shares: its source, the body
    checked (_verified_body), then `receive(source, body, webhook_id)`; an IntakeError from
    any step is its 4xx, logged as "<kind> refused"."""
    source = source_for_intake(slug)
    if source is None:
        return _error(404, "unknown source", "slug")
    logs.bind(source_id=source.pk, source=slug)
    try:
        body, webhook_id = _verified_body(request, source)
        return receive(source, body, webhook_id)
    except IntakeError as exc:
        logger.info("%s refused: %s %s", kind, exc.status, exc.as_json().get("field"))
        return JsonResponse(exc.as_json(), status=exc.status)


def _webhook(request: HttpRequest, slug: str) -> JsonResponse:
    def receive(source: Source, body: bytes, webhook_id: str) -> JsonResponse:
        payload = parse_body(body)
        item, created = item_ingest(source=source, payload=payload, webhook_id=webhook_id)
        logs.bind(item_id=item.pk, revision=item.revision)
        logger.info("webhook %s item", "stored" if created else "repeated")
        return JsonResponse(
            {"id": item.pk, "revision": item.revision, "status": item.status},
            status=202 if created else 200,
        )

    return _signed_intake(request, slug, "webhook", receive)


@machine_endpoint
@csrf_exempt
@require_POST
def report_webhook(request: HttpRequest, slug: str) -> JsonResponse:
    """A user's report of an item, signed as the item webhook is (moderation/services/
    reports.py): 202 for a new report, 200 for its report_id again."""
    response = _report_webhook(request, slug)
    metrics.counted(metrics.REPORT_REQUESTS, response.status_code)
    return response


def _report_webhook(request: HttpRequest, slug: str) -> JsonResponse:
    def receive(source: Source, body: bytes, webhook_id: str) -> JsonResponse:
        payload = parse_report_body(body)
        receipt, created = report_ingest(source=source, payload=payload, webhook_id=webhook_id)
        logs.bind(item_id=receipt.item_id, report_id=receipt.id)
        logger.info("report %s", "stored" if created else "repeated")
        return JsonResponse(
            {"id": receipt.id, "item": receipt.item_id, "status": receipt.item_status},
            status=202 if created else 200,
        )

    return _signed_intake(request, slug, "report", receive)


def _api_source(request: HttpRequest) -> Source | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return source_for_token(token.strip())


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
    return JsonResponse(item_api_dict(item))


@require_GET
@api_auth
def api_items(request: HttpRequest, source: Source) -> JsonResponse:
    external_id = request.GET.get("external_id")
    if not external_id:
        return _error(400, "external_id query parameter is required", "external_id")
    # The live item with this external_id; else the latest one an erasure removed (shown as
    # erased: its external_id was free for a new item, none came).
    item = (
        Item.objects.filter(LIVE, external_id=external_id, source=source).first()
        or Item.objects.filter(external_id=external_id, source=source).order_by("-pk").first()
    )
    if item is None:
        return _error(404, "no such item", "external_id")
    return JsonResponse(item_api_dict(item))


@require_GET
@api_auth
def api_decisions(request: HttpRequest, source: Source) -> JsonResponse:
    """The source's decisions after a cursor, oldest first: a product that missed callbacks
    catches up from the last cursor it kept. With `events=all`, every event type (decisions
    and account actions) as {type, data}, under a cursor that keeps a place in each."""
    all_events = request.GET.get("events") == "all"
    try:
        # "<decision id>" or, from an events=all answer, "<decision id>.<action id>" or
        # "<decision id>.<action id>.<appeal feed position>".
        parts = (request.GET.get("since") or "0").split(".")
        if len(parts) > 3:
            raise ValueError
        since, after_action, after_appeal = (int(part) for part in [*parts, "0", "0"][:3])
        if since < 0 or after_action < 0 or after_appeal < 0:
            raise ValueError
    except ValueError:
        return _error(400, "since must be a cursor from an earlier answer (or 0)", "since")
    try:
        limit = int(request.GET.get("limit") or DECISIONS_PAGE_SIZE)
        if not 1 <= limit <= DECISIONS_PAGE_MAX:
            raise ValueError
    except ValueError:
        return _error(400, f"limit must be an integer from 1 to {DECISIONS_PAGE_MAX}", "limit")
    if all_events:
        typed, (last_decision, last_action, last_appeal), more = events_page(
            source=source,
            since=since,
            since_action=after_action,
            since_appeal=after_appeal,
            size=limit,
        )
        # A third part only once the source has appeal outcomes: cursors products kept from
        # before appeals existed keep their shape.
        cursor = f"{last_decision}.{last_action}" + (f".{last_appeal}" if last_appeal else "")
        return JsonResponse({"events": typed, "next": cursor, "has_more": more})
    events, cursor, more = decisions_page(source=source, since=since, size=limit)
    return JsonResponse({"decisions": events, "next": str(cursor), "has_more": more})


@require_GET
@api_auth
def api_author(request: HttpRequest, source: Source, author_id: str) -> JsonResponse:
    """An author of this source by the product's id: counts, active strikes, actions."""
    author = (
        Author.objects.select_related("source").filter(source=source, external_id=author_id).first()
    )
    if author is None:
        return _error(404, "no such author", "id")
    return JsonResponse(author_api_dict(author))


@machine_endpoint
@csrf_exempt
@require_POST
def appeals_webhook(request: HttpRequest, slug: str) -> JsonResponse:
    """An appeal of an item's removal or of an account action: signed, checked and refused
    exactly as the item webhook is (a 4xx naming the field, nothing half-stored)."""

    def receive(source: Source, body: bytes, webhook_id: str) -> JsonResponse:
        payload = parse_appeal_body(body)
        appeal, created = appeal_receive(source=source, payload=payload, webhook_id=webhook_id)
        logger.info("appeal %s %s", appeal.pk, "stored" if created else "repeated")
        return JsonResponse(
            {"id": appeal.pk, "status": appeal.status}, status=202 if created else 200
        )

    return _signed_intake(request, slug, "appeal", receive)


@csrf_exempt
@require_POST
@api_auth
def api_erasures(request: HttpRequest, source: Source) -> JsonResponse:
    """A product's erasure request (moderation/services/erasures.py): 202 with the receipt's
    id and status; the same erasure_id again answers 200 with the same receipt."""
    try:
        payload = parse_erasure_body(_read_body(request))
        erasure, created = erasure_request(source=source, payload=payload)
    except IntakeError as exc:
        logger.info("erasure refused: %s %s", exc.status, exc.field)
        return JsonResponse(exc.as_json(), status=exc.status)
    if created:
        erasure_run_task.delay_on_commit(erasure.pk)
    logger.info("erasure %s %s", erasure.pk, "stored" if created else "repeated")
    return JsonResponse(
        {"id": erasure.erasure_id, "status": erasure.status}, status=202 if created else 200
    )


@require_GET
@api_auth
def api_erasure(request: HttpRequest, source: Source, erasure_id: str) -> JsonResponse:
    """An erasure's receipt: what was erased, what a legal hold kept, what named nothing."""
    erasure = erasure_for(source=source, erasure_id=erasure_id)
    if erasure is None:
        return _error(404, "no such erasure", "id")
    return JsonResponse(erasure_receipt(erasure))


@cache
def _openapi_document() -> bytes:
    # Read on first request, not at import: a missing file must not break every other URL.
    return OPENAPI_PATH.read_bytes()


@require_GET
def openapi_document(request: HttpRequest) -> HttpResponse:
    return HttpResponse(_openapi_document(), content_type="application/yaml")
