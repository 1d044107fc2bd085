"""How well each labeler version agrees with the reviewers, from the decisions they made.

The arithmetic is pure functions over plain rows (tested on constructed sets); loaders.py reads
those rows from the database for the pages.

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
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from labelers.models import Label
from moderation.models import Decision

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
    return kappa_from_counts(
        n=len(pairs),
        agree=sum(a == b for a, b in pairs),
        a_yes=sum(a for a, _ in pairs),
        b_yes=sum(b for _, b in pairs),
    )


def kappa_from_counts(*, n: int, agree: int, a_yes: int, b_yes: int) -> float | None:
    """cohen_kappa from the counts of its pairs (how many, agreeing, each rater's yeses):
    the same arithmetic, so the same float."""
    if n == 0:
        return None
    observed = agree / n
    a_share = a_yes / n
    b_share = b_yes / n
    chance = a_share * b_share + (1 - a_share) * (1 - b_share)
    if chance >= 1.0:
        return None
    return (observed - chance) / (1 - chance)


def percentile(values: list[float], share: float) -> float | None:
    """Nearest-rank percentile (share in 0..1): a value that occurred, no interpolation."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _nth(histogram: list[tuple[int, int]], index: int) -> int:
    """The index-th (from 0) of the values a sorted [(value, count)] histogram holds."""
    for value, count in histogram:
        if index < count:
            return value
        index -= count
    raise IndexError(index)


def histogram_median(histogram: dict[int, int]) -> float | None:
    """statistics.median of the values the histogram counts, without listing them."""
    ordered = sorted(histogram.items())
    n = sum(histogram.values())
    if n == 0:
        return None
    if n % 2:
        return _nth(ordered, n // 2)
    return (_nth(ordered, n // 2 - 1) + _nth(ordered, n // 2)) / 2


def histogram_percentile(histogram: dict[int, int], share: float) -> float | None:
    """percentile() of the values the histogram counts."""
    n = sum(histogram.values())
    if n == 0:
        return None
    return _nth(sorted(histogram.items()), max(0, math.ceil(share * n) - 1))


def latency_ms(value: float) -> int:
    """Latencies count in whole milliseconds (as the page shows them): so they can be kept
    as a histogram per day, exactly."""
    return math.floor(value)


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
    latencies = [latency_ms(value) for value in latencies]
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
        *,
        ones: Counter[float],
        decided_ones: Counter[tuple[float, bool]],
        decided: int,
        removed: int,
    ):
        """`ones`: how many answered "1"s at each confidence (None as 0.0); `decided_ones`:
        how many decided "1"s at each (confidence, removed); `decided`, `removed`: decided
        labels and how many of them were removed. Counts, so that the rows need not be
        listed one by one (a day's counts add up: rollups.py)."""
        self.decided = decided
        self.removed = removed
        self.ones = sorted(ones)
        # ones_from[i]: answered "1"s from the i-th distinct confidence up.
        self.ones_from = [0] * (len(self.ones) + 1)
        for i in range(len(self.ones) - 1, -1, -1):
            self.ones_from[i] = self.ones_from[i + 1] + ones[self.ones[i]]
        self.decided_ones = sorted({confidence for confidence, _ in decided_ones})
        # decided_from[i], removed_from[i]: decided "1"s (and removals among them) from the
        # i-th distinct confidence up.
        self.decided_from = [0] * (len(self.decided_ones) + 1)
        self.removed_from = [0] * (len(self.decided_ones) + 1)
        for i in range(len(self.decided_ones) - 1, -1, -1):
            confidence = self.decided_ones[i]
            removed_here = decided_ones[(confidence, True)]
            self.decided_from[i] = (
                self.decided_from[i + 1] + decided_ones[(confidence, False)] + removed_here
            )
            self.removed_from[i] = self.removed_from[i + 1] + removed_here

    @classmethod
    def from_rows(
        cls,
        done: list[LabelRow],
        decisions: dict[tuple[int, int], DecisionRow],
        one_confidences: list[float | None] | None = None,
    ) -> _Outcomes:
        decided = [
            (row, decisions[(row.item_id, row.revision)])
            for row in done
            if (row.item_id, row.revision) in decisions
        ]
        # Confidences of every "1", and of each decided "1" with whether it was removed.
        if one_confidences is None:
            one_confidences = [row.confidence for row in done if row.label == "1"]
        return cls(
            ones=Counter((confidence or 0.0) for confidence in one_confidences),
            decided_ones=Counter(
                ((row.confidence or 0.0), d.action == Decision.Action.REMOVE)
                for row, d in decided
                if row.label == "1"
            ),
            decided=len(decided),
            removed=sum(d.action == Decision.Action.REMOVE for _, d in decided),
        )

    def at(self, min_confidence: float | None) -> ThresholdOutcome:
        # flags(): a "1" at or above the minimum (bisect_left finds the first one >= it).
        first_one = 0 if min_confidence is None else bisect_left(self.ones, min_confidence)
        first_decided = (
            0 if min_confidence is None else bisect_left(self.decided_ones, min_confidence)
        )
        flagged = self.ones_from[first_one]
        flagged_decided = self.decided_from[first_decided]
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
    return _advice(
        _Outcomes.from_rows(done, decisions, one_confidences),
        current_min_confidence=current_min_confidence,
        min_decided=min_decided,
    )


def _advice(
    outcomes: _Outcomes, *, current_min_confidence: float | None, min_decided: int
) -> ThresholdAdvice | None:
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


# A done label as the figures see it once its item and decision are known: (flags, item
# flagged by some labeler, effective action "approve"/"remove" or None, decided on the
# audit sample).
CellKey = tuple[bool, bool, str | None, bool]


@dataclass
class DayCounts:
    """Labels in counts that add up (one day's, or several days' merged): every figure of
    version_quality and threshold_advice follows from them, exactly, at the minimum
    confidence they were counted at (flags are counted, not recomputed)."""

    cells: Counter[CellKey] = field(default_factory=Counter)
    calls: int = 0
    cache_hits: int = 0
    failures: Counter[str] = field(default_factory=Counter)
    latencies: Counter[int] = field(default_factory=Counter)  # whole ms -> answers
    ones: Counter[float] = field(default_factory=Counter)  # confidence of a "1" -> answers
    decided_ones: Counter[tuple[float, bool]] = field(default_factory=Counter)

    def add(self, other: DayCounts) -> None:
        self.cells.update(other.cells)
        self.calls += other.calls
        self.cache_hits += other.cache_hits
        self.failures.update(other.failures)
        self.latencies.update(other.latencies)
        self.ones.update(other.ones)
        self.decided_ones.update(other.decided_ones)

    def subtract_histograms(self, other: DayCounts) -> None:
        """Take `other`'s histograms out of these (a day's out of a running total)."""
        pairs: list[tuple[Counter[Any], Counter[Any]]] = [
            (self.latencies, other.latencies),
            (self.ones, other.ones),
            (self.decided_ones, other.decided_ones),
        ]
        for mine, theirs in pairs:
            for key, n in theirs.items():
                left = mine[key] - n
                if left:
                    mine[key] = left
                else:
                    del mine[key]

    def figures_json(self) -> dict:
        """The small part: a few dozen numbers whatever the volume."""
        return {
            "cells": [[*key, n] for key, n in self.cells.items()],
            "calls": self.calls,
            "cache_hits": self.cache_hits,
            "failures": dict(self.failures),
        }

    def histograms_json(self) -> dict:
        """The histograms: one entry per distinct latency (ms) and confidence of a "1"."""
        return {
            "latencies": sorted(self.latencies.items()),
            "ones": sorted(self.ones.items()),
            "decided_ones": [[c, removed, n] for (c, removed), n in self.decided_ones.items()],
        }

    def as_json(self) -> dict:
        return {**self.figures_json(), **self.histograms_json()}

    @classmethod
    def from_json(cls, data: dict) -> DayCounts:
        return cls(
            cells=Counter({(f, i, a, au): n for f, i, a, au, n in data.get("cells", [])}),
            calls=data.get("calls", 0),
            cache_hits=data.get("cache_hits", 0),
            failures=Counter(data.get("failures", {})),
            latencies=Counter({ms: n for ms, n in data.get("latencies", [])}),
            ones=Counter({c: n for c, n in data.get("ones", [])}),
            decided_ones=Counter({(c, r): n for c, r, n in data.get("decided_ones", [])}),
        )


def quality_from_counts(
    *, version_id: int, days: dict[date, DayCounts], total: DayCounts
) -> VersionQuality:
    """version_quality from counts: `days` the done labels' cells by the day they were
    answered (the chart), `total` every label of the window (done or not) counted together.
    The same arithmetic on the same integers, so the same numbers (rollups are tested
    against version_quality)."""
    quality = VersionQuality(version_id=version_id)
    quality.calls, quality.cache_hits = total.calls, total.cache_hits
    agree = flag_yes = removed_yes = 0
    missed = {True: [0, 0, 0], False: [0, 0, 0], None: [0, 0, 0]}
    for (flagged, item_flagged, action, audit), n in total.cells.items():
        quality.labeled += n
        quality.flagged += flagged * n
        human = action == Decision.Action.REMOVE
        if action is not None:
            quality.decided += n
            agree += (flagged == human) * n
            flag_yes += flagged * n
            removed_yes += human * n
            if flagged:
                quality.flagged_decided += n
                quality.flagged_removed += human * n
        if not flagged:
            group = missed[item_flagged]
            group[0] += n
            if action is not None and (item_flagged or audit):
                group[1] += n
                group[2] += human * n
    quality.precision = (
        quality.flagged_removed / quality.flagged_decided if quality.flagged_decided else None
    )
    quality.kappa = kappa_from_counts(
        n=quality.decided, agree=agree, a_yes=flag_yes, b_yes=removed_yes
    )
    quality.audit_decided, quality.audit_removed = missed[False][1], missed[False][2]
    quality.missed_estimate, quality.recall = _recall(quality, missed)
    quality.latency_median_ms = histogram_median(total.latencies)
    quality.latency_p95_ms = histogram_percentile(total.latencies, 0.95)
    quality.failures = {status: total.failures.get(status, 0) for status in FAILURE_STATUSES}
    for day, counts in sorted(days.items()):
        labeled = flagged_count = decided = removed = 0
        for (flagged, _, action, _), n in counts.cells.items():
            labeled += n
            flagged_count += flagged * n
            if flagged and action is not None:
                decided += n
                removed += (action == Decision.Action.REMOVE) * n
        if labeled:
            quality.days.append(
                DayQuality(
                    day, labeled, flagged_count, decided, removed / decided if decided else None
                )
            )
    return quality


def advice_from_counts(
    counts: DayCounts,
    *,
    current_min_confidence: float | None,
    min_decided: int = ADVICE_MIN_DECIDED,
) -> ThresholdAdvice | None:
    """threshold_advice from counts (all the days merged)."""
    decided = removed = 0
    for (_, _, action, _), n in counts.cells.items():
        if action is not None:
            decided += n
            removed += (action == Decision.Action.REMOVE) * n
    outcomes = _Outcomes(
        ones=counts.ones, decided_ones=counts.decided_ones, decided=decided, removed=removed
    )
    return _advice(outcomes, current_min_confidence=current_min_confidence, min_decided=min_decided)
