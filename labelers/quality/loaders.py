"""The rows the figures are computed from, read from the database; a labeler's report per
version for its quality page."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime

from django.db.models import Case, Count, Exists, F, OuterRef, Q, QuerySet, Sum, Value, When
from django.db.models.functions import Coalesce, TruncDay

from labelers.models import Label, Labeler, LabelerVersion
from labelers.quality.figures import (
    DecisionRow,
    LabelRow,
    ThresholdAdvice,
    VersionQuality,
    advice_from_counts,
    effective_decisions,
    quality_from_counts,
    threshold_advice,
    version_quality,
)
from labelers.quality.rollups import read_in_steps, version_counts_steps
from lib.batch import read_together
from moderation.models import Appeal, ChangedItem, Decision


def labeler_decisions(
    labeler: Labeler, *, since: datetime | None = None
) -> dict[tuple[int, int], DecisionRow]:
    """Effective decisions of every item revision the labeler labeled (since `since`)."""
    labels = Label.objects.filter(labeler_version__labeler=labeler)
    if since is not None:
        labels = labels.filter(labeled_at__gte=since)
    labeled_items = labels.values("item_id")
    return effective_decisions(decision_rows(Decision.objects.filter(item_id__in=labeled_items)))


def decision_rows(decisions) -> Iterator[DecisionRow]:
    """People's decisions only: the system's approvals (auto-approve band) are the labelers
    agreeing with themselves, and never stand for a human label."""
    for row in (
        decisions.filter(reviewer__isnull=False)
        .values_list(
            "id",
            "item_id",
            "revision",
            "action",
            "undoes_id",
            "created_at",
            "reason",
            "status_before",
        )
        .iterator()
    ):
        yield DecisionRow(*row)


def _window(version_id: int, since: datetime | None):
    """A version's labels; with `since`, those answered since then and those still open
    (failures by kind are about now)."""
    labels = Label.objects.filter(labeler_version_id=version_id)
    if since is not None:
        labels = labels.filter(Q(labeled_at__gte=since) | Q(labeled_at__isnull=True))
    return labels


def _label_rows(labels, *, with_latency: bool = True) -> Iterator[LabelRow]:
    rows = labels.values_list(
        "labeler_version_id",
        "item_id",
        "revision",
        "status",
        "label",
        "confidence",
        "latency_ms",
        "cache_hit",
        "attempts",
        "labeled_at",
        "item__flagged_at",
    )
    for row in rows.iterator():
        yield LabelRow(
            version_id=row[0],
            item_id=row[1],
            revision=row[2],
            status=row[3],
            label=row[4],
            confidence=row[5],
            latency_ms=row[6] if with_latency else None,
            cache_hit=row[7],
            attempts=row[8],
            labeled_at=row[9],
            item_flagged=row[10] is not None,
        )


def version_labels(version_id: int, *, since: datetime | None = None) -> Iterator[LabelRow]:
    """Every label of the version in the window, one row each (the plain reading that
    version_rows must agree with)."""
    return _label_rows(_window(version_id, since))


def version_rows(
    version_id: int, *, since: datetime | None, min_confidence: float | None
) -> tuple[list[LabelRow], list[float], list[float | None]]:
    """A version's labels as version_quality and threshold_advice need them, cheaply:
    (rows, latencies, confidences of its "1"s).

    Labels a person decided are read one by one (their effective decision is worked out
    here, undo chains and all). The rest, most of them, are counted in SQL, grouped by what
    the numbers look at (status, flagged or not at `min_confidence`, day, whether another
    labeler flagged the item, cache hit) and read as weighted rows. Latencies and the "1"s'
    confidences are single columns. Reading every label as a full row cost ~2 s per 180,000
    labels (bench/admin_pages.py); the result is the same (tested against version_labels).
    """
    labels = _window(version_id, since)
    by_people = Decision.objects.filter(
        item_id=OuterRef("item_id"), revision=OuterRef("revision"), reviewer__isnull=False
    )
    decided = labels.filter(Exists(by_people))
    # Their latencies are read with all the others below.
    rows = list(_label_rows(decided, with_latency=False))
    flag = Q(label="1")
    if min_confidence is not None:
        flag &= Q(confidence__gte=min_confidence)
    groups = (
        labels.filter(~Exists(by_people))
        .annotate(
            flag=Case(When(flag, then=Value(True)), default=Value(False)),
            day=TruncDay("labeled_at"),
            item_flagged=Case(
                When(item__flagged_at__isnull=False, then=Value(True)), default=Value(False)
            ),
        )
        .values("status", "label", "flag", "day", "item_flagged", "cache_hit")
        .annotate(n=Count("id"), attempts_sum=Coalesce(Sum("attempts"), 0))
        .order_by()
    )
    for group in groups:
        # A representative label and confidence that flags() judges as SQL did.
        if group["flag"]:
            label, confidence = "1", 1.0
        elif group["label"] == "1":
            label, confidence = "1", 0.0  # a "1" under the minimum (there is one, then)
        else:
            label, confidence = group["label"], None
        rows.append(
            LabelRow(
                version_id=version_id,
                item_id=0,  # no item: never matches a decision
                revision=0,
                status=group["status"],
                label=label,
                confidence=confidence,
                cache_hit=group["cache_hit"],
                attempts=group["attempts_sum"],
                labeled_at=group["day"],
                item_flagged=group["item_flagged"],
                count=group["n"],
            )
        )
    latencies = list(
        labels.filter(
            status=Label.Status.DONE, cache_hit=False, latency_ms__isnull=False
        ).values_list("latency_ms", flat=True)
    )
    ones = list(
        labels.filter(status=Label.Status.DONE, label="1").values_list("confidence", flat=True)
    )
    return rows, latencies, ones


@dataclass(frozen=True)
class Overturns:
    """Decided appeals of removals of items the version flagged, and how many overturned."""

    decided: int
    overturned: int

    @property
    def rate(self) -> float | None:
        return self.overturned / self.decided if self.decided else None


def version_overturns(version_id: int, *, since: datetime | None = None) -> Overturns:
    """Appeals decided (since `since`) of removals of items this version flagged: a "1" on
    the revision removed. An overturn says the removal, and the flag behind it, was wrong."""
    return versions_overturns([version_id], since=since).get(version_id, Overturns(0, 0))


def versions_overturns(
    version_ids: list[int], *, since: datetime | None = None
) -> dict[int, Overturns]:
    """version_overturns of each version (those with none left out), in one query."""
    return _overturns(_overturns_query(version_ids, since=since))


def _overturns_query(version_ids: list[int], *, since: datetime | None) -> QuerySet:
    appeals = Appeal.objects.filter(
        status__in=[Appeal.Status.UPHELD, Appeal.Status.OVERTURNED],
        decision__isnull=False,
        item__labels__labeler_version_id__in=version_ids,
        item__labels__label="1",
        item__labels__revision=F("decision__revision"),
    )
    if since is not None:
        appeals = appeals.filter(decided_at__gte=since)
    return (
        appeals.values_list("item__labels__labeler_version_id")
        .annotate(
            decided=Count("id", distinct=True),
            overturned=Count("id", distinct=True, filter=Q(status=Appeal.Status.OVERTURNED)),
        )
        .order_by()
    )


def _overturns(rows) -> dict[int, Overturns]:
    return {version_id: Overturns(decided, overturned) for version_id, decided, overturned in rows}


@dataclass
class VersionReport:
    version: LabelerVersion
    quality: VersionQuality
    advice: ThresholdAdvice | None
    overturns: Overturns = Overturns(0, 0)


def labeler_report(
    labeler: Labeler, *, since: datetime | None = None, now: datetime | None = None
) -> list[VersionReport]:
    """Quality and threshold advice for each published version, newest first, over the
    labels answered since `since` (None: all): the closed days from their daily counts
    (rollups.py), the rest live. The same numbers as labeler_report_raw (tested), in time
    that grows with the days shown and today's labels, not with every label."""
    versions = list(
        labeler.versions.filter(state=LabelerVersion.State.PUBLISHED).order_by("-number")
    )
    # Together (lib/batch.py): every version's overturns, and ChangedItem's items read once
    # for every version (few: the task deletes those it handled).
    overturn_rows, changed_items = read_together(
        _overturns_query([version.pk for version in versions], since=since),
        ChangedItem.objects.values_list("item_id", flat=True).distinct(),
    )
    overturns = _overturns(overturn_rows)
    # Every version's reading in the same two round trips.
    counts = read_in_steps(
        [
            version_counts_steps(
                version.pk,
                min_confidence=labeler.min_confidence,
                since=since,
                now=now,
                changed_items=changed_items,
            )
            for version in versions
        ]
    )
    reports = []
    for version, (days, total) in zip(versions, counts, strict=True):
        reports.append(
            VersionReport(
                version=version,
                quality=quality_from_counts(version_id=version.pk, days=days, total=total),
                advice=advice_from_counts(total, current_min_confidence=labeler.min_confidence),
                overturns=overturns.get(version.pk, Overturns(0, 0)),
            )
        )
    return reports


def labeler_report_raw(labeler: Labeler, *, since: datetime | None = None) -> list[VersionReport]:
    """Quality and threshold advice for each published version, newest first, over the
    labels answered since `since` (None: all). Undecided labels are counted in SQL and
    decided ones read one by one (version_rows): fine for a page an admin opens, not for a
    dashboard polled every second."""
    decisions = labeler_decisions(labeler, since=since)
    reports = []
    versions = labeler.versions.filter(state=LabelerVersion.State.PUBLISHED).order_by("-number")
    for version in versions:
        rows, latencies, ones = version_rows(
            version.pk, since=since, min_confidence=labeler.min_confidence
        )
        reports.append(
            VersionReport(
                version=version,
                quality=version_quality(
                    version_id=version.pk,
                    labels=rows,
                    decisions=decisions,
                    min_confidence=labeler.min_confidence,
                    latencies=latencies,
                ),
                advice=threshold_advice(
                    labels=rows,
                    decisions=decisions,
                    current_min_confidence=labeler.min_confidence,
                    one_confidences=ones,
                ),
                overturns=version_overturns(version.pk, since=since),
            )
        )
    return reports
