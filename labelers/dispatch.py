"""What is due: route received items to labelers, find due and lost labels (the sweep),
add label rows for a relabel, re-evaluate items after a change. Returns label ids; the
tasks send them."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import transaction
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from labelers import liveness
from labelers.guarded import api_key_refused
from labelers.models import Label, Labeler, LabelerVersion, Reevaluation, RelabelRun
from labelers.routing import model_for, routing_cache, source_routing
from labelers.verdict import item_refresh
from moderation.models import RELABEL_ON_PUBLISH, Item
from moderation.services.verdicts import (
    items_bank_settle,
    items_lock_received,
    items_route_again,
    items_routed,
)

logger = logging.getLogger(__name__)


def items_route(*, limit: int = 5000) -> int:
    """Give received items one pending label per routed labeler version, in one batch.

    Intake only stores the item; this runs in the dispatch, where a thousand items cost one
    INSERT. Rows are locked with SKIP LOCKED so two dispatches never route the same item.
    """
    with transaction.atomic():
        rows = items_lock_received(limit=limit)
        if not rows:
            return 0
        # Hash banks first: an item a bank settles (removed, queued, allowed) is never
        # routed, so no label is paid for it.
        settled = items_bank_settle(item_ids=[row.id for row in rows])
        labels, routed, unrouted = [], [], []
        for row in rows:
            if row.id in settled:
                continue
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
        items_routed(routed=routed, unrouted=unrouted)
    return len(rows)


def dispatch_sweep(*, broker_queued: int | None = None, limit: int = 10_000) -> list[int]:
    """One sweep of beat's dispatch, and it writes: records its heartbeat, takes back the
    labels of dead workers, routes received items, then marks enqueued and returns what is
    due, fresh work first: new labels
    (never enqueued), retries whose time has come, work a dead worker left behind, work whose
    message the broker lost; then relabel (bulk) labels while the labels queue is short.

    `broker_queued`: how many messages the broker's labels queue holds now (None: unknown).
    The database is the record of what is due; a label sent twice is harmless (its task
    claims the row first).
    """
    now = timezone.now()
    heartbeat = liveness.dispatch_heartbeat(now=now)
    # Before the query below: a dead worker's running labels come back in this very sweep.
    liveness.workers_dead(now=now, dispatch=heartbeat)
    items_route()
    stale = now - timedelta(seconds=settings.LABEL_STALE_PENDING_SECONDS)
    if not api_key_refused():
        Label.objects.filter(status=Label.Status.WAITING_KEY).update(
            status=Label.Status.PENDING, enqueued_at=None, next_attempt_at=None, error=""
        )
    waiting = Q(status__in=[Label.Status.PENDING, Label.Status.FAILED_TRANSIENT]) & (
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    )
    abandoned = Q(status=Label.Status.RUNNING, lease_expires_at__lt=now)
    fresh = waiting & ((Q(enqueued_at__isnull=True) & Q(bulk=False)) | Q(enqueued_at__lt=stale))
    ids = list(
        Label.objects.filter(fresh | abandoned).order_by("id").values_list("id", flat=True)[:limit]
    )
    if broker_queued is not None:
        ids += _labels_lost(waiting, broker_queued=broker_queued, now=now, exclude=ids)
        room = settings.LABEL_BULK_QUEUE_TARGET - broker_queued - len(ids)
        if room > 0:
            ids += list(
                Label.objects.filter(waiting, bulk=True, enqueued_at__isnull=True)
                .order_by("id")
                .values_list("id", flat=True)[:room]
            )
    if ids:
        Label.objects.filter(pk__in=ids).update(enqueued_at=now)
        logger.info("dispatch sends %d labels", len(ids))
    return ids


def _labels_lost(waiting: Q, *, broker_queued: int, now, exclude: list[int]) -> list[int]:
    """Labels whose message is gone: a broker restarted with an empty store, or a worker
    killed with -9 while holding prefetched messages (Redis keeps those unacknowledged for
    the visibility timeout, an hour). Without this they would wait for the stale timeout.

    Enqueued, unclaimed labels older than LABEL_LOST_AFTER_SECONDS should all still have a
    message in the queue; when the queue holds fewer messages than there are such labels,
    at least the difference lost theirs. The queue is first in, first out, so the oldest are
    the ones missing (or held by a busy worker's prefetch: a second message for those is only
    a claim that finds the row taken). Labels sent less than the threshold ago are not
    counted, so the check is blind to them until they age into it: none waits much longer
    than twice the threshold.
    """
    lost_after = now - timedelta(seconds=settings.LABEL_LOST_AFTER_SECONDS)
    overdue = Label.objects.filter(waiting, enqueued_at__lt=lost_after).exclude(pk__in=exclude)
    missing = overdue.count() - broker_queued
    if missing <= 0:
        return []
    ids = list(overdue.order_by("enqueued_at", "id").values_list("id", flat=True)[:missing])
    logger.warning("dispatch: %d labels lost their broker message; sending them again", len(ids))
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
    """A queued run; relabel_run_execute (in a task, or the command) does the work."""
    if labeler_version.state != LabelerVersion.State.PUBLISHED:
        # Its labels would sit on items as answers of a version nothing routes to.
        raise ValueError(f"{labeler_version} is a draft: publish it before relabeling with it")
    return RelabelRun.objects.create(
        labeler_version=labeler_version,
        source=source,
        since=since,
        until=until,
        item_ids=list(item_ids) if item_ids is not None else None,
        created_by=created_by,
    )


def relabel_runs_for_items(*, item_ids: list[int], created_by=None) -> list[RelabelRun]:
    """Queued runs that relabel each item with its own source's routing: the current version
    of each active labeler routed to that item's source, never another source's labelers.
    One run per labeler version, over the selected items whose source routes to it."""
    items_by_version: dict[int, list[int]] = {}
    rows = Item.objects.filter(pk__in=item_ids).order_by("id").values_list("id", "source_id")
    for item_id, source_id in rows:
        for route in source_routing(source_id):
            items_by_version.setdefault(route.version_id, []).append(item_id)
    versions = LabelerVersion.objects.in_bulk(list(items_by_version))
    return [
        relabel_run_create(
            labeler_version=versions[version_id], item_ids=ids, created_by=created_by
        )
        for version_id, ids in sorted(items_by_version.items())
    ]


def relabel_runs_for_version(
    *, version: LabelerVersion, since, undecided_only: bool, created_by=None
) -> list[RelabelRun]:
    """Queued runs that relabel, with a newly published version, the items received since
    `since` from each source routed to its labeler (only the undecided ones if asked): one
    run per source, so each run's progress reads per product."""
    runs = []
    for source in version.labeler.sources.order_by("id"):
        item_ids = None
        if undecided_only:
            item_ids = list(
                Item.objects.filter(
                    source=source, received_at__gte=since, status__in=RELABEL_ON_PUBLISH
                ).values_list("id", flat=True)
            )
        runs.append(
            relabel_run_create(
                labeler_version=version,
                source=source,
                since=since,
                item_ids=item_ids,
                created_by=created_by,
            )
        )
    return runs


# A running run whose batches stopped this long ago lost its worker.
RELABEL_RUN_ABANDONED_SECONDS = 600


def relabel_run_execute(
    *, run_id: int, batch_size: int = 1000, progress: Callable[[int], object] | None = None
) -> RelabelRun | None:
    """Add a bulk pending label for the run's version to every selected item that lacks
    one, a batch per commit; the sweep sends them to the workers behind fresh items.

    Claims the run with a conditional UPDATE, so a duplicated message does nothing; a run
    left running by a dead worker is put back in the queue by the sweep (relabel_runs_lost).
    Safe to run twice or to resume after a crash: the unique (item, labeler version)
    constraint makes repeats no-ops, and identical content is served from the label cache.
    """
    claimed = RelabelRun.objects.filter(pk=run_id, state=RelabelRun.State.QUEUED).update(
        state=RelabelRun.State.RUNNING, updated_at=timezone.now()
    )
    if not claimed:
        return None
    run = RelabelRun.objects.select_related("labeler_version").get(pk=run_id)
    try:
        run.total = run.selection().count()
        run.save(update_fields=["total", "updated_at"])
        _relabel_batches(run, batch_size=batch_size, progress=progress)
    except Exception as exc:
        logger.exception("relabel run %s failed", run_id)
        RelabelRun.objects.filter(pk=run_id).update(
            state=RelabelRun.State.FAILED, error=f"{type(exc).__name__}: {exc}"
        )
        raise
    run.state = RelabelRun.State.DONE
    run.save(update_fields=["state", "updated_at"])
    return run


def relabel_runs_lost() -> list[int]:
    """Runs to send again: queued a minute on (their message was lost), or running but not
    moving for ten minutes (their worker died; put back in the queue). Each is sent once a
    minute at most; its claim lets only one task work on it."""
    now = timezone.now()
    abandoned = RelabelRun.objects.filter(
        state=RelabelRun.State.RUNNING,
        updated_at__lt=now - timedelta(seconds=RELABEL_RUN_ABANDONED_SECONDS),
    )
    abandoned.update(state=RelabelRun.State.QUEUED, updated_at=now - timedelta(seconds=61))
    lost = RelabelRun.objects.filter(
        state=RelabelRun.State.QUEUED, updated_at__lt=now - timedelta(seconds=60)
    )
    ids = list(lost.values_list("id", flat=True)[:100])
    RelabelRun.objects.filter(pk__in=ids).update(updated_at=now)
    return ids


def _relabel_batches(
    run: RelabelRun, *, batch_size: int, progress: Callable[[int], object] | None
) -> None:
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
        run.created += _relabel_batch(version, batch)
        run.processed += len(batch)
        # Progress is visible in the admin while the run works.
        run.save(update_fields=["created", "processed", "updated_at"])
        if progress:
            progress(len(batch))


def _relabel_batch(version: LabelerVersion, rows: list[tuple]) -> int:
    """Un-enqueued bulk rows: the database holds the backlog, not the broker."""
    created = Label.objects.bulk_create(
        [
            Label(
                item_id=item_id,
                revision=revision,
                labeler_version=version,
                content_hash=content_hash,
                model=model_for(model=version.model, has_media=bool(image or video)),
                bulk=True,
            )
            for item_id, revision, content_hash, image, video in rows
        ],
        ignore_conflicts=True,
    )
    return len(created)


# Review-flow statuses a change of routing or threshold can move an item out of or into.
_IN_FLOW = (
    Item.Status.LABELING,
    Item.Status.FLAGGED,
    Item.Status.FAILED,
    Item.Status.UNROUTED,
    Item.Status.AUDIT,
    # Reported and not flagged: a lower threshold may flag it (its place can only rise).
    Item.Status.REPORTED,
)


def reevaluation_create(*, reason: str, labeler=None, source=None, created_by=None) -> Reevaluation:
    return Reevaluation.objects.create(
        reason=reason[:200], labeler=labeler, source=source, created_by=created_by
    )


def _reevaluation_items(reevaluation: Reevaluation):
    """Undecided items the change can affect. Items labeled and not flagged ("cleared") are
    left alone unless they carry a "1" that a lower threshold or a reactivated labeler could
    now count: re-reading millions of cleared items would change nothing. The exception: a
    labeler with an auto-approve band or an audit share can move any cleared item (approve it,
    or draw it for audit), so all of them are read."""
    if reevaluation.labeler_id:
        items = Item.objects.filter(labels__labeler_version__labeler=reevaluation.labeler_id)
        ones = Q(labels__labeler_version__labeler=reevaluation.labeler_id, labels__label="1")
        labeler = Labeler.objects.filter(pk=reevaluation.labeler_id).first()
        if labeler is not None and (
            labeler.auto_approve_confidence is not None or labeler.audit_share > 0
        ):
            ones = Q()
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
        items_route_again(source_id=reevaluation.source_id)
    ids = list(_reevaluation_items(reevaluation))
    Reevaluation.objects.filter(pk=reevaluation_id).update(total=len(ids))
    for start in range(0, len(ids), batch_size):
        batch = ids[start : start + batch_size]
        for item_id in batch:
            # One transaction per item, never a batch: an auto-approval locks the item and
            # then its source (to number its decision), as a reviewer's decision does; a
            # batch holding many items' locks would deadlock with them, or make every
            # decision on the source wait for the batch.
            with transaction.atomic():
                item_refresh(item_id=item_id)
        Reevaluation.objects.filter(pk=reevaluation_id).update(done=start + len(batch))
    Reevaluation.objects.filter(pk=reevaluation_id).update(
        state=Reevaluation.State.DONE, finished_at=timezone.now()
    )
    return len(ids)
