"""Writes for labelers and labels: versions, label rows, fetching a label, the sweep."""

from __future__ import annotations

import base64
import hashlib
import logging
import random
import time
from datetime import timedelta
from itertools import islice

from django.conf import settings
from django.db import transaction
from django.db.models import F, OuterRef, Q, Subquery
from django.utils import timezone

from config.cache import TTLCache
from labelers import client as api
from labelers.models import ApiKeyRefusal, Label, Labeler, LabelerVersion, RelabelRun
from labelers.throttle import get_throttle

logger = logging.getLogger(__name__)

DEFAULT_CRITERIA = (
    "Label 1 if the content harasses, threatens or demeans a person or group, incites "
    "violence, or promotes self-harm; label 0 otherwise."
)
FAILED_TRANSIENT_RETRY_SECONDS = 600
# Countdowns longer than this are left to the sweep: Redis's visibility timeout is an hour,
# and a message held for longer than that would be handed to a second worker.
MAX_COUNTDOWN_SECONDS = 300

OPEN_STATUSES = (
    Label.Status.PENDING,
    Label.Status.RUNNING,
    Label.Status.WAITING_KEY,
    Label.Status.FAILED_TRANSIENT,
)


def labeler_default() -> Labeler:
    labeler, created = Labeler.objects.get_or_create(
        slug="default", defaults={"name": "Default policy", "kind": Labeler.Kind.CRITERIA}
    )
    if created or not labeler.versions.exists():
        labeler_version_create(labeler=labeler, criteria_text=DEFAULT_CRITERIA)
    return labeler


@transaction.atomic
def labeler_version_create(
    *,
    labeler: Labeler,
    criteria_text: str = "",
    remote_labeler_id: str = "",
    remote_version_id: str = "latest",
    model: str = "",
    created_by=None,
) -> LabelerVersion:
    """Versions are immutable: an edit is the next number; old labels keep their version."""
    if bool(criteria_text.strip()) == bool(remote_labeler_id.strip()):
        raise ValueError("give exactly one of criteria_text or remote_labeler_id")
    if model and model not in api.MODELS:
        raise ValueError(f"unknown model {model!r}")
    if model in api.DEPRECATED_MODELS:
        logger.warning("labeler %s uses %s: %s", labeler.slug, model, api.DEPRECATED_MODELS[model])
    locked = Labeler.objects.select_for_update().get(pk=labeler.pk)
    last = locked.versions.order_by("-number").values_list("number", flat=True).first() or 0
    return LabelerVersion.objects.create(
        labeler=locked,
        number=last + 1,
        criteria_text=criteria_text.strip(),
        remote_labeler_id=remote_labeler_id.strip(),
        remote_version_id=(remote_version_id or "latest").strip() if remote_labeler_id else "",
        model=model,
        created_by=created_by,
    )


def model_for(*, model: str, has_media: bool) -> str:
    """The model to ask: the version's choice, else the multimodal one for media."""
    if model:
        return model
    return api.MEDIA_MODEL if has_media else "cope-latest"


# Intake and dispatch read routing for every item; it changes rarely and saves clear it.
routing_cache: TTLCache[tuple[tuple[int, str], ...]] = TTLCache(seconds=2.0)


def source_routing(source_id: int) -> tuple[tuple[int, str], ...]:
    """(labeler version id, model setting) of the current version of each active labeler
    the source routes to."""

    def load():
        current: dict[int, tuple[int, str]] = {}
        versions = (
            LabelerVersion.objects.filter(labeler__sources=source_id, labeler__active=True)
            .order_by("labeler_id", "-number")
            .values_list("labeler_id", "id", "model")
        )
        for labeler_id, version_id, model in versions:
            current.setdefault(labeler_id, (version_id, model))
        return tuple(current.values())

    return routing_cache.get(source_id, load)


def items_route(*, limit: int = 5000) -> int:
    """Give received items one pending label per routed labeler version, in one batch.

    Intake only stores the item; this runs in the dispatch, where a thousand items cost one
    INSERT. Rows are locked with SKIP LOCKED so two dispatches never route the same item.
    """
    from moderation.models import Item

    with transaction.atomic():
        rows = list(
            Item.objects.filter(status=Item.Status.RECEIVED)
            .select_for_update(skip_locked=True)
            .order_by("id")
            .values_list("id", "source_id", "content_hash", "content_image", "content_video")[
                :limit
            ]
        )
        if not rows:
            return 0
        labels, routed, unrouted = [], [], []
        for item_id, source_id, content_hash, image, video in rows:
            routing = source_routing(source_id)
            (routed if routing else unrouted).append(item_id)
            for version_id, model in routing:
                labels.append(
                    Label(
                        item_id=item_id,
                        labeler_version_id=version_id,
                        content_hash=content_hash,
                        model=model_for(model=model, has_media=bool(image or video)),
                    )
                )
        Label.objects.bulk_create(labels, ignore_conflicts=True)
        Item.objects.filter(pk__in=routed).update(status=Item.Status.LABELING)
        # A source routed to no labeler: nothing will label these, say so rather than wait.
        Item.objects.filter(pk__in=unrouted).update(status=Item.Status.LABELED)
    return len(rows)


def labels_enqueue(label_ids, *, countdown: float | None = None) -> None:
    """Send the tasks once the rows they name are committed, over one broker connection."""
    from labelers.tasks import label_fetch

    label_ids = list(label_ids)
    if not label_ids:
        return

    def send():
        with label_fetch.app.producer_or_acquire() as producer:
            for label_id in label_ids:
                label_fetch.apply_async((label_id,), countdown=countdown, producer=producer)

    transaction.on_commit(send)


def _key_fingerprint(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


# Per process: (fingerprint, refused, checked_at). The refusal table is read at most every
# few seconds instead of once per label; a refusal seen here is recorded here at once.
_refusal_seen: dict[str, tuple[bool, float]] = {}
REFUSAL_CHECK_SECONDS = 5.0


def api_key_refused() -> bool:
    key = settings.ZENTROPI_API_KEY
    if not key:
        return True
    fingerprint = _key_fingerprint(key)
    seen = _refusal_seen.get(fingerprint)
    if seen is not None and time.monotonic() - seen[1] < REFUSAL_CHECK_SECONDS:
        return seen[0]
    refused = ApiKeyRefusal.objects.filter(fingerprint=fingerprint).exists()
    _refusal_seen[fingerprint] = (refused, time.monotonic())
    return refused


def _record_refusal(key: str) -> None:
    fingerprint = _key_fingerprint(key)
    ApiKeyRefusal.objects.get_or_create(fingerprint=fingerprint)
    _refusal_seen[fingerprint] = (True, time.monotonic())


def _build_request(label: Label) -> api.LabelRequest:
    item, version = label.item, label.labeler_version
    media = {}
    for field_name in ("content_image", "content_video"):
        stored = getattr(item, field_name)
        if stored:
            with stored.open("rb") as handle:
                data = base64.b64encode(handle.read()).decode()
            media[field_name] = f"data:{getattr(item, field_name + '_type')};base64,{data}"
    return api.LabelRequest(
        content_text=item.content_text,
        criteria_text=version.criteria_text,
        labeler_id=version.remote_labeler_id,
        labeler_version_id=version.remote_version_id,
        model=label.model,
        **media,
    )


def backoff_seconds(attempt: int, retry_after: float | None = None) -> float:
    """Exponential with full jitter on top of a floor; Retry-After, when given, is a floor."""
    base = settings.LABEL_BACKOFF_BASE * (2 ** max(0, attempt - 1))
    delay = min(settings.LABEL_BACKOFF_CAP, base) * (0.5 + random.random() / 2)
    return max(delay, retry_after or 0.0)


def _claim(label_id: int) -> bool:
    """Claim with a conditional UPDATE so a redelivered message never makes a second call."""
    now = timezone.now()
    ready = Q(status__in=[Label.Status.PENDING, Label.Status.FAILED_TRANSIENT]) & (
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    )
    abandoned = Q(status=Label.Status.RUNNING, lease_expires_at__lt=now)
    return bool(
        Label.objects.filter(ready | abandoned, pk=label_id).update(
            status=Label.Status.RUNNING,
            lease_expires_at=now + timedelta(seconds=settings.LABEL_LEASE_SECONDS),
            attempts=F("attempts") + 1,
        )
    )


def label_fetch(*, label_id: int) -> str:
    """Fetch one label; returns what happened ("done", "cached", "retry", ...)."""
    from moderation.services import item_labels_changed

    if api_key_refused():
        # Do not hammer the API with a key it refused (or with no key at all).
        waiting = Label.objects.filter(
            pk=label_id, status__in=[Label.Status.PENDING, Label.Status.FAILED_TRANSIENT]
        ).update(
            status=Label.Status.WAITING_KEY,
            error="waiting for a valid API key (ZENTROPI_API_KEY)",
            lease_expires_at=None,
        )
        return "waiting_key" if waiting else "skipped"
    if not _claim(label_id):
        return "skipped"
    # The label, its item and version, and the id of an identical label already paid for
    # (same content, labeler version and model: the cost guard), in one query.
    same_content = Label.objects.filter(
        content_hash=OuterRef("content_hash"),
        labeler_version_id=OuterRef("labeler_version_id"),
        model=OuterRef("model"),
        status=Label.Status.DONE,
    ).exclude(pk=OuterRef("pk"))
    label = (
        Label.objects.select_related("item", "labeler_version__labeler")
        .annotate(cached_id=Subquery(same_content.values("pk")[:1]))
        .get(pk=label_id)
    )
    cached = Label.objects.get(pk=label.cached_id) if label.cached_id else None
    if cached is not None:
        _finish(label, cached.label, cached.confidence, cached.compute_time, 0.0, cache_hit=True)
        return "cached"

    try:
        try:
            request = _build_request(label)
        except OSError as exc:  # the stored media is missing or unreadable here
            raise api.PermanentLabelError(f"cannot read the item's media: {exc}") from None
        throttle = get_throttle()
        with throttle.slot():
            if throttle.limited:
                _renew_lease(label)  # waiting for a slot must not cost us the claim
            result = api.get_client().label(request)
    except api.AuthenticationError as exc:
        _record_refusal(settings.ZENTROPI_API_KEY)
        logger.error("label %s: API key refused; labeling paused until the key is fixed", label_id)
        _store(label, status=Label.Status.WAITING_KEY, error=str(exc))
        return "waiting_key"
    except api.PermanentLabelError as exc:
        logger.warning("label %s failed for good: %s", label_id, exc)
        with transaction.atomic():
            if _store(label, status=Label.Status.FAILED, error=str(exc)):
                item_labels_changed(item_id=label.item_id)
        return "failed"
    except api.TransientLabelError as exc:
        return _schedule_retry(label, exc)
    except Exception as exc:
        # A bug or an outage of our own (database, storage): retry like a passing fault,
        # visibly, rather than leave the label running until its lease runs out.
        logger.exception("label %s: unexpected error", label_id)
        return _schedule_retry(label, api.TransientLabelError(f"unexpected {type(exc).__name__}"))

    _finish(label, result.label, result.confidence, result.compute_time, result.latency * 1000)
    return "done"


def _finish(label: Label, answer: str, confidence, compute_time, latency_ms, cache_hit=False):
    """Store an answer and refresh the item it changes, in one commit."""
    from moderation.services import item_labels_changed

    with transaction.atomic():
        stored = _store(
            label,
            status=Label.Status.DONE,
            label=answer,
            confidence=confidence,
            violation_score=api.violation_score(answer, confidence),
            compute_time=compute_time,
            latency_ms=latency_ms,
            cache_hit=cache_hit,
            labeled_at=timezone.now(),
            error="",
        )
        if stored:
            item_labels_changed(item_id=label.item_id)


def _mine(target: Label):
    """The row, only while this attempt still holds it: a worker whose lease ran out (and
    whose label another worker has since claimed or finished) must not write over it."""
    return Label.objects.filter(pk=target.pk, status=Label.Status.RUNNING, attempts=target.attempts)


def _store(target: Label, **fields) -> int:
    fields.setdefault("lease_expires_at", None)
    return _mine(target).update(**fields)


def _renew_lease(target: Label) -> None:
    lease = timedelta(seconds=settings.LABEL_LEASE_SECONDS)
    _mine(target).update(lease_expires_at=timezone.now() + lease)


def _schedule_retry(label: Label, exc: api.TransientLabelError) -> str:
    attempts = label.attempts  # already counts this attempt
    now = timezone.now()
    if attempts % settings.LABEL_MAX_ATTEMPTS == 0:
        # Out of quick retries: park it; the sweep tries again later, nothing is dropped.
        _store(
            label,
            status=Label.Status.FAILED_TRANSIENT,
            error=str(exc),
            next_attempt_at=now + timedelta(seconds=FAILED_TRANSIENT_RETRY_SECONDS),
            enqueued_at=None,
        )
        return "failed_transient"
    delay = backoff_seconds(attempts, exc.retry_after)
    when = now + timedelta(seconds=delay)
    if delay <= MAX_COUNTDOWN_SECONDS:
        if _store(
            label,
            status=Label.Status.PENDING,
            error=str(exc),
            next_attempt_at=when,
            enqueued_at=when,
        ):
            labels_enqueue([label.pk], countdown=delay)
    else:
        _store(
            label,
            status=Label.Status.PENDING,
            error=str(exc),
            next_attempt_at=when,
            enqueued_at=None,
        )
    return "retry"


def labels_sweep(*, limit: int = 10_000) -> int:
    """Enqueue what is due: new labels (never enqueued), retries whose time has come, work a
    lost broker message or a dead worker left behind. The database is the record of what is
    due; a label enqueued twice is harmless (its task claims the row first)."""
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
        with transaction.atomic():
            Label.objects.filter(pk__in=ids).update(enqueued_at=now)
            labels_enqueue(ids)
        logger.info("sweep re-enqueued %d labels", len(ids))
    return len(ids)


def labels_resume_waiting_key() -> int:
    """An admin says the key is fixed: forget refusals and put waiting work back in line."""
    ApiKeyRefusal.objects.all().delete()
    _refusal_seen.clear()
    return labels_sweep()


def relabel_start(
    *,
    labeler_version: LabelerVersion,
    source=None,
    since=None,
    until=None,
    item_ids=None,
    created_by=None,
    batch_size: int = 1000,
    progress=None,
) -> RelabelRun:
    """Add a pending label for `labeler_version` to every selected item that lacks one.

    Safe to run twice or to resume after a crash: the unique (item, labeler version)
    constraint makes repeats no-ops, and identical content is served from the label cache.
    """
    run = RelabelRun.objects.create(
        labeler_version=labeler_version,
        source=source,
        since=since,
        until=until,
        item_ids=list(item_ids) if item_ids is not None else None,
        created_by=created_by,
    )
    items = run.selection().exclude(labels__labeler_version=labeler_version)
    run.total = run.selection().count()
    run.save(update_fields=["total"])
    todo = items.order_by("id").values_list("id", "content_hash", "content_image", "content_video")
    rows = todo.iterator(chunk_size=batch_size)
    while batch := list(islice(rows, batch_size)):
        run.created += _relabel_batch(labeler_version, batch)
        if progress:
            progress(len(batch))
    run.save(update_fields=["created"])
    return run


def _relabel_batch(version: LabelerVersion, rows: list[tuple]) -> int:
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
        ids = list(
            Label.objects.filter(
                labeler_version=version,
                item_id__in=[row[0] for row in rows],
                status=Label.Status.PENDING,
                enqueued_at=now,
            ).values_list("id", flat=True)
        )
        labels_enqueue(ids)
    return len(ids)
