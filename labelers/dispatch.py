"""What is due: route received items to labelers, find due and lost labels (the sweep),
add label rows for a relabel, re-evaluate items after a change. Returns label ids; the
tasks send them."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from labelers.fetch import api_key_refused
from labelers.models import Label, LabelerVersion, Reevaluation, RelabelRun
from labelers.services import model_for, routing_cache, source_routing
from labelers.verdict import item_refresh
from moderation import services as moderation_services
from moderation.models import Item

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
            for route in routing:
                labels.append(
                    Label(
                        item_id=row.id,
                        revision=row.revision,
                        labeler_version_id=route.version_id,
                        content_hash=row.content_hash,
                        model=model_for(model=route.model, has_media=row.has_media),
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
    labeled = Label.objects.filter(
        item=OuterRef("pk"), revision=OuterRef("revision"), labeler_version=version
    )
    todo = (
        run.selection()
        .exclude(Exists(labeled))  # the current revision of each item, once per version
        .order_by("id")
        .values_list("id", "revision", "content_hash", "content_image", "content_video")
    )
    last_id = 0
    # Keyset pages read whole before each write: a cursor held open across the batches'
    # commits makes SQLite refuse the write (its read snapshot went stale under WAL).
    while batch := list(todo.filter(id__gt=last_id)[:batch_size]):
        last_id = batch[-1][0]
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
                    revision=revision,
                    labeler_version=version,
                    content_hash=content_hash,
                    model=model_for(model=version.model, has_media=bool(image or video)),
                    enqueued_at=now,
                )
                for item_id, revision, content_hash, image, video in rows
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


# Review-flow statuses a change of routing or threshold can move an item out of or into.
_IN_FLOW = (
    Item.Status.LABELING,
    Item.Status.FLAGGED,
    Item.Status.FAILED,
    Item.Status.UNROUTED,
)


def reevaluation_create(*, reason: str, labeler=None, source=None, created_by=None) -> Reevaluation:
    return Reevaluation.objects.create(
        reason=reason[:200], labeler=labeler, source=source, created_by=created_by
    )


def _reevaluation_items(reevaluation: Reevaluation):
    """Undecided items the change can affect. Items labeled and not flagged ("cleared") are
    left alone unless they carry a "1" that a lower threshold or a reactivated labeler could
    now count: re-reading millions of cleared items would change nothing."""
    if reevaluation.labeler_id:
        items = Item.objects.filter(labels__labeler_version__labeler=reevaluation.labeler_id)
        ones = Q(labels__labeler_version__labeler=reevaluation.labeler_id, labels__label="1")
    else:
        items = Item.objects.filter(source=reevaluation.source_id)
        ones = Q(labels__label="1")
    return (
        items.filter(Q(status__in=_IN_FLOW) | (Q(status=Item.Status.LABELED) & ones))
        .values_list("id", flat=True)
        .distinct()
        .order_by("id")
    )


def reevaluation_run(*, reevaluation_id: int, batch_size: int = 500) -> int:
    """Recompute the verdict of every affected item, a batch per commit; resumable (a rerun
    recomputes from the labels again, which changes nothing twice)."""
    claimed = Reevaluation.objects.filter(
        pk=reevaluation_id, state__in=[Reevaluation.State.QUEUED, Reevaluation.State.RUNNING]
    ).update(state=Reevaluation.State.RUNNING, done=0)
    if not claimed:
        return 0
    reevaluation = Reevaluation.objects.get(pk=reevaluation_id)
    # The change that asked for this may be a second old in this process's routing cache.
    routing_cache.clear()
    if reevaluation.source_id:
        # Items that waited because nothing was routed to their source are routed now.
        moderation_services.items_route_again(source_id=reevaluation.source_id)
    ids = list(_reevaluation_items(reevaluation))
    Reevaluation.objects.filter(pk=reevaluation_id).update(total=len(ids))
    for start in range(0, len(ids), batch_size):
        batch = ids[start : start + batch_size]
        with transaction.atomic():
            for item_id in batch:
                item_refresh(item_id=item_id)
        Reevaluation.objects.filter(pk=reevaluation_id).update(done=start + len(batch))
    Reevaluation.objects.filter(pk=reevaluation_id).update(
        state=Reevaluation.State.DONE, finished_at=timezone.now()
    )
    return len(ids)
