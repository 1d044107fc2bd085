"""Retention and legal hold: an item's content is purged its source's `retention_days` after
its final decision (or after it was cleared: labeled, not flagged), unless a legal hold on the
item or on its author stops it. Erasure (moderation/services/erasures.py) removes content
with the same `items_content_remove`.

What goes: the item's text, media files (through Django's storage: local or S3) and product
metadata; every revision's; the text of labels' and shadow answers' errors (the API's
messages may quote the content); report comments; appeal statements; the notes people wrote
about the item (decision, appeal and golden notes: they quote content); the receivers'
answers logged with its callbacks. What stays: ids, dates, statuses, labels' figures (label,
confidence, scores, model, latency, content hash: "no /v1/label paid twice" keeps working
without holding content), decisions and reasons, strikes, hashes (ItemHash, BankHash: a hash
is not content), the audit log (which never holds content).

Callbacks hold no content of their own: a delivery is a row pointing at its decision, and the
body is built when it is sent, from ids, reasons and the statement of reasons. A pending
callback of a purged or erased item thus sends no content either.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from django.apps import apps
from django.core.files.storage import default_storage
from django.db import connection, transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from audit.services import audit_record
from moderation.models import (
    Appeal,
    Author,
    CallbackAttempt,
    Decision,
    GoldenAnswer,
    GoldenItem,
    Item,
    ItemRevision,
    Report,
    Source,
)

# Items purged per transaction: each batch commits on its own, so a crash loses at most one
# batch's work (the rest is marked purged_at and never picked again), and locks stay short.
PURGE_BATCH = 200
# Batches per beat run: about 5,000 items, well inside a task's time limit; the next run
# continues where this one stopped.
PURGE_MAX_BATCHES = 25
# What replaces an answer's error text (the API may quote the content in it).
ERROR_REMOVED = "(error text removed with the item's content)"


def _media_names(items: list[Item]) -> set[str]:
    ids = [item.pk for item in items]
    names = {name for item in items for name in (item.content_image.name, item.content_video.name)}
    for image, video in ItemRevision.objects.filter(item_id__in=ids).values_list(
        "content_image", "content_video"
    ):
        names |= {image, video}
    names.discard("")
    names.discard(None)  # type: ignore[arg-type]
    return names


def _still_shown(names: set[str]) -> set[str]:
    """Media is stored by content (the same bytes once, whoever sent them): of these files,
    those an item or a revision still shows (another item's identical upload, a held one).
    The `<> ''` conditions are the partial indexes' own, so each lookup is an index scan."""
    shown: set[str] = set()
    for model in (Item, ItemRevision):
        for column in ("content_image", "content_video"):
            rows = model.objects.exclude(**{column: ""}).filter(**{f"{column}__in": names})
            shown.update(rows.values_list(column, flat=True))
    return shown


def items_content_remove(*, items: list[Item], now: datetime, erase: bool) -> None:
    """Remove these items' content everywhere (see the module's docstring), in the caller's
    transaction, with the items locked by the caller. Media files are deleted before the
    commit: a rollback then leaves a row naming a missing file (purged again on the next
    run), never content that was meant to be gone."""
    if not items:
        return
    ids = [item.pk for item in items]
    names = _media_names(items)
    content_gone = {
        "content_text": "",
        "content_image": "",
        "content_image_type": "",
        "content_video": "",
        "content_video_type": "",
        "metadata": {},
    }
    fields: dict = {**content_gone, "purged_at": now}
    if erase:
        fields.update(erased_at=now, claimed_by=None, claim_expires_at=None)
    Item.objects.filter(pk__in=ids).update(**fields)
    if erase:
        # An undecided item leaves every queue for good (status "erased"), and is never
        # labeled again (its labels still pending are superseded below). A decided one stays
        # "decided": its decision, and the figures counting it (the author's removals, the
        # dashboard), stand; content_state says it is erased.
        Item.objects.filter(pk__in=ids).exclude(status=Item.Status.DECIDED).update(
            status=Item.Status.ERASED, queue_score=None, queue_key=None
        )
    ItemRevision.objects.filter(item_id__in=ids).update(**content_gone)
    # Labels and shadow answers live in the labelers app, which moderation's services do not
    # import (tests/test_layers.py); the app registry reaches their tables all the same.
    label_model = apps.get_model("labelers", "Label")
    shadow_model = apps.get_model("labelers", "ShadowLabel")
    label_model.objects.filter(item_id__in=ids).exclude(error="").update(error=ERROR_REMOVED)
    shadow_model.objects.filter(item_id__in=ids).exclude(error="").update(error=ERROR_REMOVED)
    if erase:
        label_model.objects.filter(
            item_id__in=ids, status__in=["pending", "failed_transient", "waiting_key"]
        ).update(status="superseded", next_attempt_at=None, enqueued_at=None)
        GoldenItem.objects.filter(item_id__in=ids).update(active=False)
    Report.objects.filter(item_id__in=ids).exclude(comment="").update(comment="")
    Appeal.objects.filter(item_id__in=ids).update(statement="", note="")
    Decision.objects.filter(item_id__in=ids).exclude(note="").update(note="")
    GoldenItem.objects.filter(item_id__in=ids).exclude(note="").update(note="")
    GoldenAnswer.objects.filter(golden__item_id__in=ids).exclude(note="").update(note="")
    CallbackAttempt.objects.filter(
        Q(delivery__decision__item_id__in=ids) | Q(delivery__appeal__item_id__in=ids)
    ).exclude(response_body="").update(response_body="")
    if names:
        for name in sorted(names - _still_shown(names)):
            default_storage.delete(name)


def author_content_remove(*, author: Author, now: datetime) -> None:
    """An erasure by author id: the name, url and account date the product sent go; the id
    stays (it is how the product names the account, and strikes count by it)."""
    Author.objects.filter(pk=author.pk).update(
        name="", url="", account_created_at=None, erased_at=now
    )


def held_reason(item: Item, author_held: bool) -> str | None:
    """Why an item may not lose its content: "item" or "author" (a legal hold), or None."""
    if item.legal_hold:
        return "item"
    return "author" if author_held else None


@dataclass(frozen=True)
class PurgeResult:
    purged: int
    more: bool  # a batch was full when the run stopped: work is left for the next run


def _eligible(source: Source, *, now: datetime) -> list[tuple[Q, str]]:
    """The two scans (each one range of its partial index): decided items by the time of
    their final decision, cleared ones (labeled, never flagged) since their content came."""
    assert source.retention_days is not None
    cutoff = now - timedelta(days=source.retention_days)
    return [
        (Q(status=Item.Status.DECIDED, decided_at__lt=cutoff), "decided_at"),
        (Q(status=Item.Status.LABELED, waiting_since__lt=cutoff), "waiting_since"),
    ]


def _not_held() -> Q:
    held_author = Author.objects.filter(pk=OuterRef("author_id"), legal_hold=True)
    # An appeal still waiting needs the content for the senior; an active golden item is
    # still served to reviewers. Both are purged once that is over.
    pending_appeal = Appeal.objects.filter(item_id=OuterRef("pk"), status=Appeal.Status.PENDING)
    golden = GoldenItem.objects.filter(item_id=OuterRef("pk"), active=True)
    return (
        Q(purged_at__isnull=True, legal_hold=False)
        & ~Exists(held_author)
        & ~Exists(pending_appeal)
        & ~Exists(golden)
    )


def _purge_batch(source: Source, scope: Q, order: str, *, now: datetime, size: int) -> int:
    with transaction.atomic():
        # By the index's own order (no tie-break on id, which would sort every due row).
        rows = Item.objects.filter(scope, _not_held(), source=source).order_by(order)
        if connection.features.has_select_for_update_skip_locked:
            # Two purges (a slow run and the next) never wait on each other, nor on a
            # reviewer's open transaction: each takes the rows nobody holds.
            rows = rows.select_for_update(skip_locked=True, of=("self",))
        elif connection.features.has_select_for_update:
            rows = rows.select_for_update()
        items = list(
            rows.only("pk", "content_image", "content_video", "legal_hold", "author_id")[:size]
        )
        items_content_remove(items=items, now=now, erase=False)
    return len(items)


def retention_purge(
    *, now: datetime | None = None, batch: int = PURGE_BATCH, max_batches: int = PURGE_MAX_BATCHES
) -> PurgeResult:
    """Beat's purge: every source with a retention period, in batches of `batch` items per
    transaction, at most `max_batches` per run. Idempotent and resumable: a purged item
    carries purged_at and leaves the scans' indexes; a held item is never selected."""
    now = now or timezone.now()
    purged, batches = 0, 0
    for source in Source.objects.filter(retention_days__isnull=False).order_by("pk"):
        for scope, order in _eligible(source, now=now):
            while True:
                if batches >= max_batches:
                    return PurgeResult(purged, True)
                done = _purge_batch(source, scope, order, now=now, size=batch)
                batches += 1
                purged += done
                if done < batch:
                    break
    return PurgeResult(purged, False)


def legal_hold_set(
    *, obj: Item | Author, hold: bool, reason: str, actor, request=None
) -> Item | Author:
    """An admin (or a senior, on the item page) puts a legal hold on an item or an author, or
    lifts it. Audited; the reason is the admin's own words (no content), at most 200
    characters."""
    reason = (reason or "").strip()
    if len(reason) > 200:
        raise ValueError("the reason is longer than 200 characters")
    if hold and not reason:
        raise ValueError("say why the content is held (a case or request reference)")
    model = type(obj)
    with transaction.atomic():
        row = model.objects.select_for_update().get(pk=obj.pk)
        before = {"legal_hold": row.legal_hold, "reason": row.legal_hold_reason}
        row.legal_hold = hold
        row.legal_hold_reason = reason if hold else ""
        row.save(update_fields=["legal_hold", "legal_hold_reason"])
        audit_record(
            action=f"{model._meta.model_name}.{'legal_hold' if hold else 'legal_hold_lift'}",
            actor=actor,
            obj=row,
            before=before,
            after={"legal_hold": row.legal_hold, "reason": row.legal_hold_reason},
            request=request,
        )
    return row
