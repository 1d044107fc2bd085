"""What is due for labeling: route received items to labelers, find due and lost labels
(the sweep), add label rows for a relabel. Returns label ids; the tasks send them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import timedelta
from itertools import islice

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from labelers.fetch import api_key_refused
from labelers.models import Label, LabelerVersion, RelabelRun
from labelers.services import model_for, source_routing
from moderation import services as moderation_services

logger = logging.getLogger(__name__)


def items_route(*, limit: int = 5000) -> int:
    """Give received items one pending label per routed labeler version, in one batch.

    Intake only stores the item; this runs in the dispatch, where a thousand items cost one
    INSERT. Rows are locked with SKIP LOCKED so two dispatches never route the same item.
    """
    with transaction.atomic():
        rows = moderation_services.items_lock_received(limit=limit)
        if not rows:
            return 0
        labels, routed, unrouted = [], [], []
        for row in rows:
            routing = source_routing(row.source_id)
            (routed if routing else unrouted).append(row.id)
            for version_id, model in routing:
                labels.append(
                    Label(
                        item_id=row.id,
                        labeler_version_id=version_id,
                        content_hash=row.content_hash,
                        model=model_for(model=model, has_media=row.has_media),
                    )
                )
        Label.objects.bulk_create(labels, ignore_conflicts=True)
        moderation_services.items_routed(routed=routed, unrouted=unrouted)
    return len(rows)


def labels_due(*, limit: int = 10_000) -> list[int]:
    """Route received items, then mark and return what is due: new labels (never enqueued),
    retries whose time has come, work a lost broker message or a dead worker left behind.
    The database is the record of what is due; a label sent twice is harmless (its task
    claims the row first)."""
    items_route()
    now = timezone.now()
    stale = now - timedelta(seconds=settings.LABEL_STALE_PENDING_SECONDS)
    if not api_key_refused():
        Label.objects.filter(status=Label.Status.WAITING_KEY).update(
            status=Label.Status.PENDING, enqueued_at=None, next_attempt_at=None, error=""
        )
    due = (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)) & (
        Q(enqueued_at__isnull=True) | Q(enqueued_at__lt=stale)
    )
    query = (Q(status__in=[Label.Status.PENDING, Label.Status.FAILED_TRANSIENT]) & due) | Q(
        status=Label.Status.RUNNING, lease_expires_at__lt=now
    )
    ids = list(Label.objects.filter(query).order_by("id").values_list("id", flat=True)[:limit])
    if ids:
        Label.objects.filter(pk__in=ids).update(enqueued_at=now)
        logger.info("sweep re-enqueued %d labels", len(ids))
    return ids


def relabel_run_create(
    *,
    labeler_version: LabelerVersion,
    source=None,
    since=None,
    until=None,
    item_ids=None,
    created_by=None,
) -> RelabelRun:
    run = RelabelRun.objects.create(
        labeler_version=labeler_version,
        source=source,
        since=since,
        until=until,
        item_ids=list(item_ids) if item_ids is not None else None,
        created_by=created_by,
    )
    run.total = run.selection().count()
    run.save(update_fields=["total"])
    return run


def relabel_batches(
    run: RelabelRun, *, batch_size: int = 1000, progress: Callable[[int], object] | None = None
) -> Iterator[list[int]]:
    """Add a pending label for the run's version to every selected item that lacks one, a
    batch per commit; yields the new labels' ids once each batch is committed.

    Safe to run twice or to resume after a crash: the unique (item, labeler version)
    constraint makes repeats no-ops, and identical content is served from the label cache.
    """
    version = run.labeler_version
    todo = (
        run.selection()
        .exclude(labels__labeler_version=version)
        .order_by("id")
        .values_list("id", "content_hash", "content_image", "content_video")
    )
    rows = todo.iterator(chunk_size=batch_size)
    while batch := list(islice(rows, batch_size)):
        ids = _relabel_batch(version, batch)
        run.created += len(ids)
        yield ids
        if progress:
            progress(len(batch))
    run.save(update_fields=["created"])


def _relabel_batch(version: LabelerVersion, rows: list[tuple]) -> list[int]:
    now = timezone.now()
    with transaction.atomic():
        Label.objects.bulk_create(
            [
                Label(
                    item_id=item_id,
                    labeler_version=version,
                    content_hash=content_hash,
                    model=model_for(model=version.model, has_media=bool(image or video)),
                    enqueued_at=now,
                )
                for item_id, content_hash, image, video in rows
            ],
            ignore_conflicts=True,
        )
        return list(
            Label.objects.filter(
                labeler_version=version,
                item_id__in=[row[0] for row in rows],
                status=Label.Status.PENDING,
                enqueued_at=now,
            ).values_list("id", flat=True)
        )
