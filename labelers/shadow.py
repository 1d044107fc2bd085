"""Shadow runs: a labeler version (usually a draft) tried on a sample of a source's recent
items, beside the published version, without touching any item.

The writes (create, execute, the sweep's lost runs), then the comparison: pure functions over
plain rows (tested on constructed sets), with loaders at the bottom. Sends no messages: the
tasks in tasks.py do.

A shadow answer is a ShadowLabel, never a Label, and nothing here writes an item or calls
item_refresh: a shadow run cannot move an item's status, its verdict or the queue.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache

from django.conf import settings
from django.db.models import Exists, OuterRef
from django.utils import timezone

from labelers import client as api
from labelers import fetch
from labelers.guarded import BreakerOpen, api_key_refused, label_call, record_refusal
from labelers.models import Label, LabelerVersion, ShadowLabel, ShadowRun
from labelers.quality.figures import DecisionRow, cohen_kappa, effective_decisions, flags
from labelers.quality.loaders import decision_rows
from labelers.routing import model_for
from moderation.models import Decision, Item

logger = logging.getLogger(__name__)

# A sample is paid for (one call per item not answered before): keep it to what a person
# would read through.
SAMPLE_MAX = 5000
# Passing faults are retried in the task itself, a few times with capped backoff, then the
# item is recorded as failed: a shadow run is a measurement, not work that must finish.
SHADOW_ATTEMPTS = 3
SHADOW_BACKOFF_CAP = 30.0
# A running run whose progress stopped moving this long ago lost its worker. Above the
# longest wait for one item (three attempts at the read timeout plus the backoff).
SHADOW_RUN_ABANDONED_SECONDS = 600
# Lists of ids go to the database in chunks (SQLite's limit on query parameters).
CHUNK = 500


class ShadowStopped(Exception):
    """The run cannot go on until a person acts (the key was refused, or there is none)."""


class ShadowPaused(Exception):
    """The labeling API as a whole is failing (the breaker is open): try the rest later."""


def policy_hash(*, criteria_text: str, labeler_id: str, labeler_version_id: str, model: str) -> str:
    """SHA-256 of exactly the policy fields sent to the API (as LabelRequest.body() builds
    them, so a criteria policy ignores a stray remote version id), model included."""
    body = api.LabelRequest(
        criteria_text=criteria_text,
        labeler_id=labeler_id,
        labeler_version_id=labeler_version_id,
        model=model,
    ).body()
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def _chunks(ids: list[int]) -> Iterator[list[int]]:
    for start in range(0, len(ids), CHUNK):
        yield ids[start : start + CHUNK]


def decided_revisions(item_ids: Iterable[int]) -> dict[tuple[int, int], DecisionRow]:
    """(item, revision) -> its effective approve or remove (quality.effective_decisions)."""
    found: dict[tuple[int, int], DecisionRow] = {}
    for chunk in _chunks(list(item_ids)):
        # People's decisions only (quality.decision_rows): a system approval is a labeler
        # agreeing with itself, not a reviewer's answer to compare with.
        found.update(effective_decisions(decision_rows(Decision.objects.filter(item_id__in=chunk))))
    return found


def _sample(*, source, size: int, decided_only: bool) -> list[int]:
    """The source's `size` most recent items; with `decided_only`, the most recent whose
    current revision has an effective approve or remove (what the shadow labels is the
    current content, so a decision on an older revision says nothing about it)."""
    # Items whose content was purged or erased have nothing left to label.
    recent = Item.objects.filter(source=source, purged_at__isnull=True).order_by(
        "-received_at", "-id"
    )
    if not decided_only:
        return list(recent.values_list("id", flat=True)[:size])
    candidates = recent.filter(
        Exists(Decision.objects.filter(item=OuterRef("pk"), reviewer__isnull=False))
    )
    picked: list[int] = []
    offset = 0
    while len(picked) < size:
        page = list(candidates.values_list("id", "revision")[offset : offset + CHUNK])
        if not page:
            break
        offset += CHUNK
        decided = decided_revisions(item_id for item_id, _ in page)
        picked += [item_id for item_id, revision in page if (item_id, revision) in decided]
    return picked[:size]


def shadow_run_create(
    *, version: LabelerVersion, source, sample_size: int, decided_only: bool, created_by=None
) -> ShadowRun:
    """A queued run over a sample fixed now, with the version's policy copied: editing the
    draft later does not change what this run measures. The baseline is the labeler's
    current published version (none when the version run is that very one)."""
    if not 1 <= sample_size <= SAMPLE_MAX:
        raise ValueError(f"a sample is 1 to {SAMPLE_MAX} items")
    current = version.labeler.current_version
    item_ids = _sample(source=source, size=sample_size, decided_only=decided_only)
    return ShadowRun.objects.create(
        version=version,
        baseline=current if current is not None and current.pk != version.pk else None,
        source=source,
        sample_size=sample_size,
        decided_only=decided_only,
        criteria_text=version.criteria_text,
        remote_labeler_id=version.remote_labeler_id,
        remote_version_id=version.remote_version_id if version.remote_labeler_id else "",
        model=version.model,
        item_ids=item_ids,
        total=len(item_ids),
        created_by=created_by,
    )


def shadow_run_resume(*, run: ShadowRun) -> bool:
    """A failed run (its key was fixed, say) goes back in the queue; what it answered is kept
    and only the missing items are asked for. True if it was failed."""
    return bool(
        ShadowRun.objects.filter(pk=run.pk, state=ShadowRun.State.FAILED).update(
            state=ShadowRun.State.QUEUED, finished_at=None, updated_at=timezone.now()
        )
    )


def shadow_run_execute(*, run_id: int) -> ShadowRun | None:
    """Answer every sampled item the run has no ShadowLabel for, updating `done` as it goes.

    Claimed with a conditional UPDATE (queued -> running), so a redelivered message does
    nothing; resumable (a run put back in the queue by the sweep skips the items it answered).
    """
    claimed = ShadowRun.objects.filter(pk=run_id, state=ShadowRun.State.QUEUED).update(
        state=ShadowRun.State.RUNNING, error="", updated_at=timezone.now()
    )
    if not claimed:
        return None
    run = ShadowRun.objects.get(pk=run_id)
    try:
        _answer_missing(run)
    except ShadowStopped as exc:
        logger.error("shadow run %s stopped: %s", run_id, exc)
        _finish(run, state=ShadowRun.State.FAILED, error=str(exc))
    except ShadowPaused as exc:
        # Back in the queue: the sweep sends it again a minute on, and its claim finds the
        # breaker closed by then or pauses it again. No item is recorded as failed for it.
        ShadowRun.objects.filter(pk=run_id, state=ShadowRun.State.RUNNING).update(
            state=ShadowRun.State.QUEUED, error=str(exc), updated_at=timezone.now()
        )
    except Exception as exc:
        logger.exception("shadow run %s failed", run_id)
        _finish(run, state=ShadowRun.State.FAILED, error=f"{type(exc).__name__}: {exc}")
        raise
    else:
        _finish(run, state=ShadowRun.State.DONE, error="", done=run.total)
    run.refresh_from_db()
    return run


def _finish(run: ShadowRun, **fields) -> None:
    ShadowRun.objects.filter(pk=run.pk, state=ShadowRun.State.RUNNING).update(
        finished_at=timezone.now(), updated_at=timezone.now(), **fields
    )


def _answer_missing(run: ShadowRun, *, batch_size: int = 50) -> None:
    answered = set(run.labels.values_list("item_id", flat=True))
    todo = [item_id for item_id in run.item_ids if item_id not in answered]
    done = run.total - len(todo)
    ShadowRun.objects.filter(pk=run.pk).update(done=done, updated_at=timezone.now())
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        items = Item.objects.in_bulk(batch)
        for item_id in batch:
            if (item := items.get(item_id)) is not None:  # deleted since: nothing to ask
                _answer(run, item)
            done += 1
            # Progress for the page, and proof of life for the sweep (updated_at).
            ShadowRun.objects.filter(pk=run.pk).update(done=done, updated_at=timezone.now())


def _answer(run: ShadowRun, item: Item) -> None:
    """One item's shadow answer: reused if this policy answered this content before (no
    call paid), else asked of the API. Stored as a ShadowLabel and nothing else."""
    model = model_for(model=run.model, has_media=item.has_media)
    policy = policy_hash(
        criteria_text=run.criteria_text,
        labeler_id=run.remote_labeler_id,
        labeler_version_id=run.remote_version_id,
        model=model,
    )
    answer = ShadowLabel(
        run=run,
        item=item,
        revision=item.revision,
        content_hash=item.content_hash,
        policy_hash=policy,
        status=ShadowLabel.Status.DONE,
    )
    cached = _cached_answer(run, item, model=model, policy=policy)
    if cached is not None:
        answer.label, answer.confidence = cached
        answer.cache_hit = True
    else:
        try:
            result = _call(run, item, model=model)
        except api.TransientLabelError as exc:
            answer.status, answer.error = ShadowLabel.Status.FAILED, f"transient: {exc}"
        except api.AuthenticationError as exc:
            record_refusal(settings.ZENTROPI_API_KEY)
            raise ShadowStopped(
                f"The labeling API refused the key ({exc}). Fix ZENTROPI_API_KEY, then resume "
                "the run: the items answered so far are kept."
            ) from None
        except api.PermanentLabelError as exc:
            answer.status, answer.error = ShadowLabel.Status.FAILED, f"refused: {exc}"
        else:
            answer.label, answer.confidence = result.label, result.confidence
            answer.latency_ms = result.latency * 1000
    if answer.status == ShadowLabel.Status.DONE:
        answer.violation_score = api.violation_score(answer.label, answer.confidence)
    # The unique (run, item) makes a second answer for the same item a no-op.
    ShadowLabel.objects.bulk_create([answer], ignore_conflicts=True)


def _cached_answer(run: ShadowRun, item: Item, *, model: str, policy: str):
    """(label, confidence) already paid for with the very same policy and content: an
    earlier shadow answer, or a published version's label with the same policy and model."""
    shadow = ShadowLabel.objects.filter(
        status=ShadowLabel.Status.DONE, content_hash=item.content_hash, policy_hash=policy
    )
    labels = Label.objects.filter(
        status=Label.Status.DONE,
        content_hash=item.content_hash,
        model=model,
        labeler_version__state=LabelerVersion.State.PUBLISHED,
        labeler_version__criteria_text=run.criteria_text,
        labeler_version__remote_labeler_id=run.remote_labeler_id,
    )
    if run.remote_labeler_id:
        labels = labels.filter(labeler_version__remote_version_id=run.remote_version_id)
        if run.remote_version_id in ("", "latest"):
            # "latest" can change on the API side without a version here (as in fetch):
            # reuse only recent answers.
            recent = timezone.now() - timedelta(seconds=settings.LABEL_REMOTE_LATEST_CACHE_SECONDS)
            shadow = shadow.filter(labeled_at__gte=recent)
            labels = labels.filter(labeled_at__gte=recent)
    return (
        shadow.values_list("label", "confidence").first()
        or labels.values_list("label", "confidence").first()
    )


def _call(run: ShadowRun, item: Item, *, model: str) -> api.LabelResult:
    """Ask the API through the guarded call labeling uses (guarded.py); passing faults are
    retried here with capped backoff, SHADOW_ATTEMPTS times in all."""
    if api_key_refused():
        raise ShadowStopped(
            "No usable API key: ZENTROPI_API_KEY is unset or was refused. Fix it, then resume "
            "the run: the items answered so far are kept."
        )
    # The item's media is read once, by the first call the breaker lets by; label_call turns
    # missing or unreadable media into a PermanentLabelError, as for labeling.
    request = cache(
        lambda: fetch.label_request(
            item,
            criteria_text=run.criteria_text,
            labeler_id=run.remote_labeler_id,
            labeler_version_id=run.remote_version_id,
            model=model,
        )
    )
    for attempt in range(1, SHADOW_ATTEMPTS + 1):
        try:
            return label_call(request)
        except BreakerOpen as exc:
            raise ShadowPaused(str(exc)) from None
        except api.TransientLabelError as exc:
            if attempt == SHADOW_ATTEMPTS:
                raise
            time.sleep(min(SHADOW_BACKOFF_CAP, fetch.backoff_seconds(attempt, exc.retry_after)))
    raise AssertionError("unreachable")  # the loop returns or raises


def shadow_runs_lost() -> list[int]:
    """Runs to send again (the pattern of dispatch.relabel_runs_lost): running but not
    moving for SHADOW_RUN_ABANDONED_SECONDS (their worker died: back in the queue), or queued
    a minute on (their message was lost, or they were paused). Each is sent once a minute
    at most; its claim lets only one task work on it."""
    now = timezone.now()
    ShadowRun.objects.filter(
        state=ShadowRun.State.RUNNING,
        updated_at__lt=now - timedelta(seconds=SHADOW_RUN_ABANDONED_SECONDS),
    ).update(state=ShadowRun.State.QUEUED, updated_at=now - timedelta(seconds=61))
    lost = ShadowRun.objects.filter(
        state=ShadowRun.State.QUEUED, updated_at__lt=now - timedelta(seconds=60)
    )
    ids = list(lost.values_list("id", flat=True)[:100])
    ShadowRun.objects.filter(pk__in=ids).update(updated_at=now)
    return ids


# --- The comparison: pure functions over plain rows ----------------------------------------


@dataclass(frozen=True)
class ShadowRow:
    item_id: int
    revision: int
    status: str
    label: str
    confidence: float | None
    cache_hit: bool = False


@dataclass(frozen=True)
class Disagreement:
    item_id: int
    revision: int
    shadow_flag: bool
    baseline_flag: bool | None  # None: the baseline has no answer for this revision
    action: str  # the reviewers' effective decision ("approve", "remove"), or ""
    with_baseline: bool
    with_reviewers: bool


@dataclass
class ShadowComparison:
    labeled: int = 0  # shadow answers (done)
    failed: int = 0
    cache_hits: int = 0
    flagged: int = 0
    # Over the labeled items the baseline also answered (the same revision).
    compared: int = 0
    flagged_compared: int = 0  # the shadow's flags among those, for a like-for-like count
    baseline_flagged: int = 0
    agreement_baseline: float | None = None  # share of the compared items flagged alike
    kappa_baseline: float | None = None
    # Over the labeled items with an effective decision.
    decided: int = 0
    agreement_reviewers: float | None = None
    kappa_reviewers: float | None = None
    precision: float | None = None  # share of the shadow's decided flags that were removed
    flagged_decided: int = 0
    # The baseline on the same decided items, beside it.
    baseline_decided: int = 0
    baseline_kappa_reviewers: float | None = None
    baseline_precision: float | None = None
    baseline_flagged_decided: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    disagreements: list[Disagreement] = field(default_factory=list)


def _share(hits: list[bool]) -> float | None:
    return sum(hits) / len(hits) if hits else None


def shadow_comparison(
    *,
    shadow: Iterable[ShadowRow],
    baseline: dict[tuple[int, int], tuple[str, float | None]],
    decisions: dict[tuple[int, int], DecisionRow],
    min_confidence: float | None,
) -> ShadowComparison:
    """The shadow's answers beside the baseline's (label, confidence) per (item, revision)
    and the reviewers' effective decisions. Both sides flag by the labeler's rule (a "1" at
    or above min_confidence). Kappas are None where undefined (quality.cohen_kappa)."""
    result = ShadowComparison()
    failures: dict[str, int] = {}
    with_baseline: list[tuple[bool, bool]] = []
    with_reviewers: list[tuple[bool, bool]] = []
    baseline_with_reviewers: list[tuple[bool, bool]] = []
    shadow_flags_removed: list[bool] = []
    baseline_flags_removed: list[bool] = []
    for row in sorted(shadow, key=lambda r: (r.item_id, r.revision)):
        if row.status != ShadowLabel.Status.DONE:
            result.failed += 1
            failures[row.status] = failures.get(row.status, 0) + 1
            continue
        result.labeled += 1
        result.cache_hits += row.cache_hit
        key = (row.item_id, row.revision)
        flag = flags(row.label, row.confidence, min_confidence)
        result.flagged += flag
        base = baseline.get(key)
        base_flag = flags(base[0], base[1], min_confidence) if base is not None else None
        if base_flag is not None:
            with_baseline.append((flag, base_flag))
            result.flagged_compared += flag
            result.baseline_flagged += base_flag
        decision = decisions.get(key)
        human = decision.action == Decision.Action.REMOVE if decision is not None else None
        if human is not None:
            with_reviewers.append((flag, human))
            if flag:
                shadow_flags_removed.append(human)
            if base_flag is not None:
                baseline_with_reviewers.append((base_flag, human))
                if base_flag:
                    baseline_flags_removed.append(human)
        off_baseline = base_flag is not None and base_flag != flag
        off_reviewers = human is not None and human != flag
        if off_baseline or off_reviewers:
            result.disagreements.append(
                Disagreement(
                    item_id=row.item_id,
                    revision=row.revision,
                    shadow_flag=flag,
                    baseline_flag=base_flag,
                    action=decision.action if decision is not None else "",
                    with_baseline=off_baseline,
                    with_reviewers=off_reviewers,
                )
            )
    result.compared = len(with_baseline)
    result.agreement_baseline = _share([a == b for a, b in with_baseline])
    result.kappa_baseline = cohen_kappa(with_baseline)
    result.decided = len(with_reviewers)
    result.agreement_reviewers = _share([a == b for a, b in with_reviewers])
    result.kappa_reviewers = cohen_kappa(with_reviewers)
    result.flagged_decided = len(shadow_flags_removed)
    result.precision = _share(shadow_flags_removed)
    result.baseline_decided = len(baseline_with_reviewers)
    result.baseline_kappa_reviewers = cohen_kappa(baseline_with_reviewers)
    result.baseline_flagged_decided = len(baseline_flags_removed)
    result.baseline_precision = _share(baseline_flags_removed)
    result.failures = failures
    return result


# --- Loaders: the rows above, read from the database ----------------------------------------


def shadow_run_comparison(run: ShadowRun) -> ShadowComparison:
    """The comparison of a run's answers so far (all of them once it is done)."""
    rows = [
        ShadowRow(*row)
        for row in run.labels.values_list(
            "item_id", "revision", "status", "label", "confidence", "cache_hit"
        )
    ]
    item_ids = [row.item_id for row in rows]
    baseline: dict[tuple[int, int], tuple[str, float | None]] = {}
    if run.baseline_id:
        for chunk in _chunks(item_ids):
            answers = Label.objects.filter(
                labeler_version_id=run.baseline_id, item_id__in=chunk, status=Label.Status.DONE
            ).values_list("item_id", "revision", "label", "confidence")
            baseline.update({(i, r): (label, c) for i, r, label, c in answers})
    return shadow_comparison(
        shadow=rows,
        baseline=baseline,
        decisions=decided_revisions(item_ids),
        min_confidence=run.version.labeler.min_confidence,
    )


def shadow_run_failures(run: ShadowRun, *, limit: int = 20) -> list[tuple[int, str]]:
    """(item id, error) of the run's failed items, for the page."""
    failed = run.labels.filter(status=ShadowLabel.Status.FAILED).order_by("item_id")
    return list(failed.values_list("item_id", "error")[:limit])


def item_snippets(item_ids: list[int], *, length: int = 120) -> dict[int, str]:
    """The start of each item's text, for the list of disagreements (escaped by the page)."""
    snippets = {}
    for chunk in _chunks(item_ids):
        for item_id, text in Item.objects.filter(pk__in=chunk).values_list("id", "content_text"):
            snippets[item_id] = text if len(text) <= length else text[: length - 1] + "…"
    return snippets
