"""How well each labeler version agrees with the reviewers, from the decisions they made.

The arithmetic is pure functions over plain rows (tested on constructed sets); the loaders at
the bottom read those rows from the database for the pages.

Definitions (the page states them too):
- An item revision's **effective decision** is its latest decision that is not an undo and
  was not undone. An escalation is not final: a revision whose effective decision is an
  escalation counts as undecided. Only approve (human "0") and remove (human "1") count.
- A version **flags** an item when it answered "1" with a confidence at or above the
  labeler's minimum confidence (none: every "1").
- **Precision**: of the flagged items with an effective decision, the share removed.
- **Agreement**: Cohen's kappa between the version's flag and the reviewers' remove, over
  the labeled items with an effective decision; None where it is undefined (no decided
  items, or both sides gave one answer only, so chance agreement is 1).
- Only people's decisions count: an approval the system made (a labeler's auto-approve
  band) is the labelers agreeing with themselves, so it is left out of every figure here.
- **Recall** (the share of violations the version flags) is estimated, never counted, since
  reviewers mostly see what some labeler flagged, and recall over those alone would flatter
  every version. The version's labeled items fall into three groups, and the violations in
  each are estimated from the decided items of that group:
  flagged by the version (its precision times their number), not flagged by it but flagged
  by another labeler (those go to review; their removal rate times their number), and
  flagged by no labeler (only the audit sample goes to review; its removal rate times the
  group's size; only decisions on audit samples count there, since anything else in that
  group was picked for review for a reason). Recall = the first / the sum of the three;
  None while a group that has items has no such decided item (no audit decisions yet, say).
"""

from __future__ import annotations

import math
import statistics
from bisect import bisect_left
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from django.db.models import Case, Count, Exists, OuterRef, Q, Sum, Value, When
from django.db.models.functions import Coalesce, TruncDay

from labelers.models import Label, Labeler, LabelerVersion
from moderation.models import Decision, Item, ItemRevision

# str(): the choices' values (plain strings, as the rows carry them).
HUMAN_LABEL: dict[str, str] = {
    str(Decision.Action.REMOVE): "1",
    str(Decision.Action.APPROVE): "0",
}
FAILURE_STATUSES: tuple[str, ...] = (
    str(Label.Status.WAITING_KEY),
    str(Label.Status.FAILED),
    str(Label.Status.FAILED_TRANSIENT),
)
# Fewer decided items than this and the advice would follow noise.
ADVICE_MIN_DECIDED = 20


@dataclass(frozen=True)
class DecisionRow:
    id: int
    item_id: int
    revision: int
    action: str
    undoes_id: int | None
    created_at: datetime
    reason: str = ""
    # Where the item stood when decided: "audit" marks a decision on the audit sample.
    status_before: str = ""


@dataclass(frozen=True)
class LabelRow:
    version_id: int
    item_id: int
    revision: int
    status: str
    label: str
    confidence: float | None
    latency_ms: float | None = None
    cache_hit: bool = False
    attempts: int = 0
    labeled_at: datetime | None = None
    # Whether any labeler flagged the item (its flagged_at is set); None: not known.
    item_flagged: bool | None = None
    # How many labels this row stands for: 1, or a group of undecided labels counted in SQL
    # (labeler_report), which are alike in everything the numbers look at.
    count: int = 1


def effective_decisions(rows: Iterable[DecisionRow]) -> dict[tuple[int, int], DecisionRow]:
    """(item, revision) -> its final approve or remove; revisions without one are absent."""
    rows = list(rows)
    undone = {row.undoes_id for row in rows if row.undoes_id is not None}
    latest: dict[tuple[int, int], DecisionRow] = {}
    for row in sorted(rows, key=lambda r: (r.created_at, r.id)):
        if row.action == Decision.Action.UNDO or row.id in undone:
            continue
        latest[(row.item_id, row.revision)] = row
    return {key: row for key, row in latest.items() if row.action in HUMAN_LABEL}


def flags(label: str, confidence: float | None, min_confidence: float | None) -> bool:
    """The same rule as the verdict's: a "1" at or above the minimum confidence."""
    return label == "1" and (min_confidence is None or (confidence or 0.0) >= min_confidence)


def cohen_kappa(pairs: Iterable[tuple[bool, bool]]) -> float | None:
    """Cohen's kappa of two yes/no raters; None when undefined (no pairs, or chance
    agreement is 1 because both raters gave the same single answer throughout)."""
    pairs = list(pairs)
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(a == b for a, b in pairs) / n
    a_yes = sum(a for a, _ in pairs) / n
    b_yes = sum(b for _, b in pairs) / n
    chance = a_yes * b_yes + (1 - a_yes) * (1 - b_yes)
    if chance >= 1.0:
        return None
    return (observed - chance) / (1 - chance)


def percentile(values: list[float], share: float) -> float | None:
    """Nearest-rank percentile (share in 0..1): a value that occurred, no interpolation."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _precision(flagged_human: list[bool]) -> float | None:
    return sum(flagged_human) / len(flagged_human) if flagged_human else None


def _recall(quality: VersionQuality, missed: dict) -> tuple[float | None, float | None]:
    """(estimated violations missed, recall): see the module's docstring. Each group's
    removal rate is read off its decided items; a group with items and no decided one
    leaves both unknown (so does a row whose item's flag is not known)."""
    if missed[None][0] or (quality.precision is None and quality.flagged):
        return None, None
    missed_estimate = 0.0
    for count, decided, removed in (missed[True], missed[False]):
        if not count:
            continue
        if not decided:
            return None, None
        missed_estimate += removed / decided * count
    caught = (quality.precision or 0.0) * quality.flagged
    if caught + missed_estimate == 0:
        return missed_estimate, None
    return missed_estimate, caught / (caught + missed_estimate)


@dataclass
class DayQuality:
    day: date
    labeled: int
    flagged: int
    flagged_decided: int
    precision: float | None


@dataclass
class VersionQuality:
    version_id: int
    labeled: int = 0
    flagged: int = 0
    decided: int = 0
    flagged_decided: int = 0
    flagged_removed: int = 0
    precision: float | None = None
    kappa: float | None = None
    recall: float | None = None  # estimated; see the module's docstring
    # The audit sample: decided items no labeler flagged, and how many reviewers removed.
    audit_decided: int = 0
    audit_removed: int = 0
    # Estimated violations the version did not flag (the recall's missing part).
    missed_estimate: float | None = None
    latency_median_ms: float | None = None
    latency_p95_ms: float | None = None
    calls: int = 0
    cache_hits: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    days: list[DayQuality] = field(default_factory=list)


def version_quality(
    *,
    version_id: int,
    labels: Iterable[LabelRow],
    decisions: dict[tuple[int, int], DecisionRow],
    min_confidence: float | None,
    latencies: list[float] | None = None,
) -> VersionQuality:
    """One version's numbers from its labels and the effective decisions. `latencies`: the
    API latencies of its answered, uncached labels when the caller read them apart (the
    rows then carry none); else they are collected from the rows."""
    quality = VersionQuality(version_id=version_id)
    failures: Counter[str] = Counter()
    collect_latencies = latencies is None
    latencies = [] if latencies is None else latencies
    pairs: list[tuple[bool, bool]] = []
    flagged_human: list[bool] = []
    per_day: dict[date, list] = defaultdict(lambda: [0, 0, []])
    # Items the version did not flag, by whether another labeler did: [count, decided, removed].
    missed = {True: [0, 0, 0], False: [0, 0, 0], None: [0, 0, 0]}
    for row in labels:
        count = row.count
        if row.status in FAILURE_STATUSES:
            failures[row.status] += count
        if row.cache_hit:
            quality.cache_hits += count
        else:
            # A cache hit is claimed (one attempt) but never calls the API.
            quality.calls += row.attempts
            if collect_latencies and row.status == Label.Status.DONE and row.latency_ms is not None:
                latencies.append(row.latency_ms)
        if row.status != Label.Status.DONE:
            continue
        quality.labeled += count
        flagged = flags(row.label, row.confidence, min_confidence)
        quality.flagged += flagged * count
        decision = decisions.get((row.item_id, row.revision))
        human = decision is not None and decision.action == Decision.Action.REMOVE
        if decision is not None:
            pairs.append((flagged, human))
            if flagged:
                flagged_human.append(human)
        if not flagged:
            group = missed[row.item_flagged]
            group[0] += count
            # Where no labeler flagged the item, only the audit sample is a fair draw: other
            # decisions there (an item another labeler failed on, a re-review) were picked
            # for a reason, and would bias the rate.
            fair = row.item_flagged or (decision is not None and decision.status_before == "audit")
            if decision is not None and fair:
                group[1] += 1
                group[2] += human
        if row.labeled_at is not None:
            day = per_day[row.labeled_at.date()]
            day[0] += count
            day[1] += flagged * count
            if flagged and decision is not None:
                day[2].append(human)
    quality.decided = len(pairs)
    quality.flagged_decided = len(flagged_human)
    quality.flagged_removed = sum(flagged_human)
    quality.precision = _precision(flagged_human)
    quality.kappa = cohen_kappa(pairs)
    quality.audit_decided, quality.audit_removed = missed[False][1], missed[False][2]
    quality.missed_estimate, quality.recall = _recall(quality, missed)
    quality.latency_median_ms = statistics.median(latencies) if latencies else None
    quality.latency_p95_ms = percentile(latencies, 0.95)
    quality.failures = {status: failures.get(status, 0) for status in FAILURE_STATUSES}
    quality.days = [
        DayQuality(day, labeled, flagged, len(humans), _precision(humans))
        for day, (labeled, flagged, humans) in sorted(per_day.items())
    ]
    return quality


@dataclass
class ThresholdOutcome:
    min_confidence: float | None
    flagged: int  # over every labeled item, decided or not
    flagged_decided: int
    precision: float | None
    kappa: float | None
    accuracy: float | None


@dataclass
class ThresholdAdvice:
    decided: int
    current: ThresholdOutcome
    advised: ThresholdOutcome

    @property
    def changes(self) -> bool:
        return self.advised.min_confidence != self.current.min_confidence


class _Outcomes:
    """Every threshold's outcome from sorted counts, each in O(log n): the advice tries one
    threshold per distinct confidence of a decided "1" (hundreds), and re-reading every
    label for each (as a plain loop would) grew as thresholds x labels: 43 s for the quality
    page at 200,000 labels (bench/admin_pages.py). The arithmetic is that of flags(),
    _precision() and cohen_kappa() over the same pairs, so the results are the same floats.
    """

    def __init__(
        self,
        done: list[LabelRow],
        decisions: dict[tuple[int, int], DecisionRow],
        one_confidences: list[float | None] | None = None,
    ):
        decided = [
            (row, decisions[(row.item_id, row.revision)])
            for row in done
            if (row.item_id, row.revision) in decisions
        ]
        self.decided = len(decided)
        self.removed = sum(d.action == Decision.Action.REMOVE for _, d in decided)
        # Confidences of every "1", and of each decided "1" with whether it was removed.
        if one_confidences is None:
            one_confidences = [row.confidence for row in done if row.label == "1"]
        self.ones = sorted((confidence or 0.0) for confidence in one_confidences)
        decided_ones = sorted(
            ((row.confidence or 0.0), d.action == Decision.Action.REMOVE)
            for row, d in decided
            if row.label == "1"
        )
        self.decided_ones = [confidence for confidence, _ in decided_ones]
        # removed_from[i]: removals among decided "1"s from the i-th confidence up.
        self.removed_from = [0] * (len(decided_ones) + 1)
        for i in range(len(decided_ones) - 1, -1, -1):
            self.removed_from[i] = self.removed_from[i + 1] + decided_ones[i][1]

    def at(self, min_confidence: float | None) -> ThresholdOutcome:
        # flags(): a "1" at or above the minimum (bisect_left finds the first one >= it).
        first_one = 0 if min_confidence is None else bisect_left(self.ones, min_confidence)
        first_decided = (
            0 if min_confidence is None else bisect_left(self.decided_ones, min_confidence)
        )
        flagged = len(self.ones) - first_one
        flagged_decided = len(self.decided_ones) - first_decided
        flagged_removed = self.removed_from[first_decided]
        n = self.decided
        precision = flagged_removed / flagged_decided if flagged_decided else None
        if n == 0:
            return ThresholdOutcome(min_confidence, flagged, flagged_decided, precision, None, None)
        # Agreement: flagged and removed, or neither.
        agree = flagged_removed + (n - flagged_decided) - (self.removed - flagged_removed)
        flag_share, removed_share = flagged_decided / n, self.removed / n
        chance = flag_share * removed_share + (1 - flag_share) * (1 - removed_share)
        kappa = None if chance >= 1.0 else (agree / n - chance) / (1 - chance)
        return ThresholdOutcome(
            min_confidence=min_confidence,
            flagged=flagged,
            flagged_decided=flagged_decided,
            precision=precision,
            kappa=kappa,
            accuracy=agree / n,
        )


def threshold_advice(
    *,
    labels: Iterable[LabelRow],
    decisions: dict[tuple[int, int], DecisionRow],
    current_min_confidence: float | None,
    min_decided: int = ADVICE_MIN_DECIDED,
    one_confidences: list[float | None] | None = None,
) -> ThresholdAdvice | None:
    """The minimum confidence of a "1" that would have agreed best with the reviewers, or
    None with fewer than `min_decided` decided items.

    Agreement is Cohen's kappa, not accuracy: most decided items are removals or most are
    approvals, and accuracy then rewards flagging everything (or nothing). Ties go to the
    current setting (no churn), then to the lowest threshold (reviewers see more, the safer
    side). Candidates are "no minimum" and each confidence of a decided "1": a threshold
    between two of them changes nothing on this data. A "0" never flags, whatever its
    confidence, since Labeler.min_confidence applies to "1"s only.

    Reviewers mostly decide what was flagged, so the data say little about items below the
    current threshold: the advice is best at raising a threshold, weaker at lowering one.
    """
    done = [row for row in labels if row.status == Label.Status.DONE]
    # `one_confidences`: the confidence of every answered "1" when the caller read them
    # apart (the labels then need only be the decided ones).
    outcomes = _Outcomes(done, decisions, one_confidences)
    if outcomes.decided < min_decided:
        return None
    candidates: list[float | None] = [None]
    candidates += sorted({confidence for confidence in outcomes.decided_ones if confidence})
    current = outcomes.at(current_min_confidence)

    def rank(outcome: ThresholdOutcome) -> tuple[float, float]:
        kappa = outcome.kappa if outcome.kappa is not None else -math.inf
        return (kappa, outcome.accuracy or 0.0)

    best = current
    for candidate in candidates:
        outcome = outcomes.at(candidate)
        # Strictly better only: earlier (lower) candidates and the current setting win ties.
        if rank(outcome) > rank(best):
            best = outcome
    return ThresholdAdvice(decided=outcomes.decided, current=current, advised=best)


# --- Loaders: the rows above, read from the database --------------------------------------


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


@dataclass
class VersionReport:
    version: LabelerVersion
    quality: VersionQuality
    advice: ThresholdAdvice | None


def labeler_report(labeler: Labeler, *, since: datetime | None = None) -> list[VersionReport]:
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
            )
        )
    return reports


# --- Export: decided items as rows for a benchmark set ------------------------------------


def decided_export_rows(*, batch_size: int = 500) -> Iterator[dict[str, Any]]:
    """One dict per decided item revision (effective decision approve or remove), with its
    content and every labeler version's answer for that revision; read a batch of items at a
    time, so the export streams whatever the table's size."""
    last_id = 0
    decided = Item.objects.filter(decisions__isnull=False).distinct().order_by("id")
    while batch := list(decided.filter(id__gt=last_id).values_list("id", flat=True)[:batch_size]):
        last_id = batch[-1]
        decisions = effective_decisions(decision_rows(Decision.objects.filter(item_id__in=batch)))
        if not decisions:
            continue
        items = Item.objects.select_related("source").in_bulk(batch)
        earlier = {
            (r.item_id, r.number): r
            for r in ItemRevision.objects.filter(item_id__in=batch).only(
                "item_id", "number", "content_text", "content_image", "content_video"
            )
        }
        answers: dict[tuple[int, int], list[dict[str, Any]]] = defaultdict(list)
        labels = (
            Label.objects.filter(item_id__in=batch, status=Label.Status.DONE)
            .order_by("labeler_version__labeler__slug", "labeler_version__number")
            .values_list(
                "item_id",
                "revision",
                "labeler_version__labeler__slug",
                "labeler_version__number",
                "label",
                "confidence",
                "violation_score",
                "model",
            )
        )
        for item_id, revision, slug, number, label, confidence, score, model in labels:
            answers[(item_id, revision)].append(
                {
                    "labeler": slug,
                    "version": number,
                    "label": label,
                    "confidence": confidence,
                    "violation_score": score,
                    "model": model,
                }
            )
        for (item_id, revision), decision in sorted(decisions.items()):
            item = items[item_id]
            content = item if revision == item.revision else earlier.get((item_id, revision))
            if content is None:
                continue
            yield {
                "item_id": item_id,
                "revision": revision,
                "source": item.source.slug,
                "external_id": item.external_id,
                "content_text": content.content_text,
                "has_image": bool(content.content_image),
                "has_video": bool(content.content_video),
                "human_label": HUMAN_LABEL[decision.action],
                "action": decision.action,
                "reason": decision.reason,
                "decided_at": decision.created_at.isoformat(),
                "labels": answers.get((item_id, revision), []),
            }


# --- A small chart of volume and precision per day, drawn by the template as SVG -----------


@dataclass
class Bar:
    x: float
    y: float
    width: float
    height: float
    title: str


@dataclass
class Chart:
    width: int
    height: int
    bars: list[Bar]
    precision_points: str  # an SVG polyline's "x,y x,y"; days without decided flags skipped
    dots: list[tuple[float, float, str]]
    first_day: str
    last_day: str
    max_labeled: int

    @property
    def view_box(self) -> str:
        # A margin, so the line's dots at 0 % and 100 % are not cut in half.
        return f"-4 -4 {self.width + 8} {self.height + 8}"


def daily_chart(days: list[DayQuality], *, width: int = 640, height: int = 160) -> Chart | None:
    """Geometry only (numbers, no markup): bars are labeled items per day, scaled to the
    busiest day; the line is precision per day on a fixed 0..1 scale."""
    if not days:
        return None
    top = max(day.labeled for day in days) or 1
    slot = width / len(days)
    bars, points, dots = [], [], []
    for index, day in enumerate(days):
        bar_height = height * day.labeled / top
        x = index * slot
        bars.append(
            Bar(
                x=round(x + slot * 0.1, 1),
                y=round(height - bar_height, 1),
                width=round(slot * 0.8, 1),
                height=round(bar_height, 1),
                title=f"{day.day}: {day.labeled} labeled, {day.flagged} flagged",
            )
        )
        if day.precision is not None:
            cx, cy = round(x + slot / 2, 1), round(height * (1 - day.precision), 1)
            points.append(f"{cx},{cy}")
            dots.append(
                (cx, cy, f"{day.day}: precision {day.precision:.0%} of {day.flagged_decided}")
            )
    return Chart(
        width=width,
        height=height,
        bars=bars,
        precision_points=" ".join(points),
        dots=dots,
        first_day=str(days[0].day),
        last_day=str(days[-1].day),
        max_labeled=top,
    )
