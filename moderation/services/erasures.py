"""Erasure: a product asks (POST /api/erasures/, its bearer token) that the content of some
items, or of every item of one author, be removed everywhere. The request is stored (an
Erasure row: the receipt), a worker does the work in batches (erasure_run), and the product
reads the receipt (GET /api/erasures/<id>/).

A legal hold wins over an erasure: a held item (or every item of a held author) keeps its
content and is listed in the receipt as held, with whether the hold is on the item or on the
author; the hold's own words stay inside the team. Erased items keep their ids, decisions,
labels' figures and dates; their external_id is free again (the same external_id sent
afterwards is a new item)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from audit.services import audit_record
from moderation.errors import IntakeError
from moderation.intake import id_string, load_object
from moderation.models import LIVE, Author, Erasure, Item, Source
from moderation.services.retention import (
    author_content_remove,
    held_reason,
    items_content_remove,
)

# External ids per request: a receipt stays a readable size, and one request's work a few
# batches. More ids: several requests.
MAX_EXTERNAL_IDS = 1000
# Items erased per transaction.
ERASURE_BATCH = 200
# A running erasure whose worker died is resumed by the sweep after this; a worker stops
# after ERASURE_SLICE_SECONDS and sends itself again (a task's time limit is ~3 minutes).
ERASURE_LEASE_SECONDS = 300
ERASURE_SLICE_SECONDS = 60
# A pending erasure whose message was lost is sent again after this.
ERASURE_LOST_AFTER_SECONDS = 60
FIELDS = ("erasure_id", "external_ids", "author_id")


@dataclass(frozen=True)
class ErasurePayload:
    erasure_id: str | None
    external_ids: tuple[str, ...] = ()
    author_id: str = ""


def parse_erasure_body(body: bytes) -> ErasurePayload:
    """`{"external_ids": [...]}` or `{"author_id": "..."}`, with an optional `erasure_id`:
    IntakeError (422) naming the field otherwise."""
    data = load_object(body)
    for key in data:
        if key not in FIELDS:
            raise IntakeError(422, f"unknown field {str(key)[:50]!r}", field=str(key)[:50])
    erasure_id = data.get("erasure_id")
    if erasure_id is not None:
        erasure_id = id_string(erasure_id, "erasure_id")
    external_ids, author_id = data.get("external_ids"), data.get("author_id")
    if external_ids is not None and author_id is not None:
        raise IntakeError(422, "send either external_ids or author_id, not both", field="author_id")
    if author_id is not None:
        return ErasurePayload(erasure_id, author_id=id_string(author_id, "author_id"))
    if external_ids is None:
        raise IntakeError(422, "external_ids or author_id is required", field="external_ids")
    if not isinstance(external_ids, list) or not external_ids:
        raise IntakeError(422, "external_ids must be a non-empty list", field="external_ids")
    if len(external_ids) > MAX_EXTERNAL_IDS:
        raise IntakeError(
            422, f"external_ids holds more than {MAX_EXTERNAL_IDS} ids", field="external_ids"
        )
    ids = [id_string(value, "external_ids") for value in external_ids]
    return ErasurePayload(erasure_id, external_ids=tuple(dict.fromkeys(ids)))


def _same_request(erasure: Erasure, payload: ErasurePayload) -> bool:
    return list(erasure.external_ids) == list(payload.external_ids) and (
        erasure.author_id == payload.author_id
    )


def erasure_request(*, source: Source, payload: ErasurePayload) -> tuple[Erasure, bool]:
    """Store the request (created: True) or answer with the one stored under the same
    erasure_id (False); the same erasure_id for another request is refused (409). Audited.
    The caller starts erasure_run_task once this commits."""
    if payload.erasure_id is not None:
        earlier = Erasure.objects.filter(source=source, erasure_id=payload.erasure_id).first()
        if earlier is not None:
            if not _same_request(earlier, payload):
                raise IntakeError(
                    409, "this erasure_id was sent with another request", field="erasure_id"
                )
            return earlier, False
    erasure_id = payload.erasure_id or f"er_{uuid.uuid4().hex}"
    try:
        with transaction.atomic():
            erasure = Erasure.objects.create(
                source=source,
                erasure_id=erasure_id,
                external_ids=list(payload.external_ids),
                author_id=payload.author_id,
                enqueued_at=timezone.now(),
            )
            audit_record(
                action="erasure.request",
                obj=erasure,
                actor_username=f"source:{source.slug}"[:150],
                after={
                    "source": source.slug,
                    "erasure_id": erasure_id[:200],
                    "by": "author" if payload.author_id else "external_ids",
                    "count": len(payload.external_ids) or 1,
                },
            )
    except IntegrityError:
        # The same erasure_id racing itself: one row; the other request answers with it.
        return erasure_request(source=source, payload=payload)
    return erasure, True


def _claim(erasure_pk: int, now) -> bool:
    """A conditional UPDATE: a redelivered message, or two workers, never run it twice at
    once; a running erasure whose lease ran out (a dead worker) is taken over."""
    lease = now + timedelta(seconds=ERASURE_LEASE_SECONDS)
    free = Q(status=Erasure.Status.PENDING) | Q(
        status=Erasure.Status.RUNNING, lease_expires_at__lt=now
    )
    return bool(
        Erasure.objects.filter(free, pk=erasure_pk).update(
            status=Erasure.Status.RUNNING, lease_expires_at=lease
        )
    )


def _erase_batch(erasure: Erasure, candidates: list[int]) -> list[int]:
    """Erase these items (ids) unless held, in one transaction, adding them to the receipt.
    The items whose content was erased or found held are returned."""
    now = timezone.now()
    with transaction.atomic():
        receipt = Erasure.objects.select_for_update().get(pk=erasure.pk)
        rows = Item.objects.filter(LIVE, pk__in=candidates).order_by("pk")
        if connection.features.has_select_for_update:
            rows = rows.select_for_update()
        items = list(
            rows.only(
                "pk", "external_id", "content_image", "content_video", "legal_hold", "author_id"
            )
        )
        # Locked too: a hold set on an author meanwhile is seen (legal_hold_set locks it).
        authors = Author.objects.filter(pk__in={item.author_id for item in items}, legal_hold=True)
        if connection.features.has_select_for_update:
            authors = authors.select_for_update()
        held_authors = set(authors.values_list("pk", flat=True))
        erase, seen = [], []
        held_ids = {row["item_id"] for row in receipt.held}
        for item in items:
            seen.append(item.pk)
            reason = held_reason(item, item.author_id in held_authors)
            if reason is None:
                erase.append(item)
                receipt.erased.append({"item_id": item.pk, "external_id": item.external_id})
            elif item.pk not in held_ids:
                receipt.held.append(
                    {"item_id": item.pk, "external_id": item.external_id, "legal_hold": reason}
                )
        items_content_remove(items=erase, now=now, erase=True)
        receipt.lease_expires_at = now + timedelta(seconds=ERASURE_LEASE_SECONDS)
        receipt.save(update_fields=["erased", "held", "lease_expires_at"])
    erasure.erased, erasure.held = receipt.erased, receipt.held
    return seen


def _item_ids(erasure: Erasure, author: Author | None, after: int) -> list[int]:
    rows = Item.objects.filter(LIVE, source_id=erasure.source_id, pk__gt=after)
    if author is not None:
        rows = rows.filter(author=author)
    else:
        rows = rows.filter(external_id__in=erasure.external_ids)
    return list(rows.order_by("pk").values_list("pk", flat=True)[:ERASURE_BATCH])


def erasure_run(*, erasure_pk: int) -> str:
    """Do an erasure: "done", "more" (the slice ran out: send the task again) or "not-due"
    (another worker has it, or it is done). Resumable: erased items left the live set, held
    ones are skipped by id, so a crash at any point loses at most one batch's transaction."""
    started = timezone.now()
    if not _claim(erasure_pk, started):
        return "not-due"
    erasure = Erasure.objects.select_related("source").get(pk=erasure_pk)
    author = None
    if erasure.author_id:
        author = Author.objects.filter(
            source_id=erasure.source_id, external_id=erasure.author_id
        ).first()
    after = 0
    if not erasure.author_id or author is not None:
        while True:
            candidates = _item_ids(erasure, author, after)
            if not candidates:
                break
            _erase_batch(erasure, candidates)
            after = candidates[-1]
            if (timezone.now() - started).total_seconds() > ERASURE_SLICE_SECONDS:
                # Let the next message go on; lease_expires_at now, so a lost message is
                # resumed by the sweep at once.
                Erasure.objects.filter(pk=erasure.pk).update(lease_expires_at=timezone.now())
                return "more"
    _finish(erasure, author)
    return "done"


def _finish(erasure: Erasure, author: Author | None) -> None:
    now = timezone.now()
    with transaction.atomic():
        receipt = Erasure.objects.select_for_update().get(pk=erasure.pk)
        if author is not None:
            author = Author.objects.select_for_update().get(pk=author.pk)
            if not author.legal_hold:
                author_content_remove(author=author, now=now)
        named = {row["external_id"] for row in [*receipt.erased, *receipt.held]}
        if erasure.author_id:
            receipt.not_found = [] if author is not None else [erasure.author_id]
        else:
            receipt.not_found = [x for x in receipt.external_ids if x not in named]
        receipt.status = Erasure.Status.DONE
        receipt.finished_at = now
        receipt.lease_expires_at = None
        receipt.save(update_fields=["not_found", "status", "finished_at", "lease_expires_at"])
        audit_record(
            action="erasure.done",
            obj=receipt,
            actor_username=f"source:{erasure.source.slug}"[:150],
            after={
                "erasure_id": receipt.erasure_id[:200],
                "erased": len(receipt.erased),
                "held": len(receipt.held),
                "not_found": len(receipt.not_found),
                "author_erased": author is not None and not author.legal_hold,
            },
        )


def erasures_due(*, now=None) -> list[int]:
    """The sweep's work: pending erasures whose message was lost, running ones whose worker
    died (lease ran out). Each counts as sent again now."""
    now = now or timezone.now()
    lost = now - timedelta(seconds=ERASURE_LOST_AFTER_SECONDS)
    stuck = Q(status=Erasure.Status.PENDING, enqueued_at__lt=lost) | Q(
        status=Erasure.Status.RUNNING, lease_expires_at__lt=now
    )
    due = list(
        Erasure.objects.exclude(status=Erasure.Status.DONE)
        .filter(stuck)
        .order_by("pk")
        .values_list("pk", flat=True)[:100]
    )
    Erasure.objects.filter(pk__in=due).update(enqueued_at=now)
    return due
