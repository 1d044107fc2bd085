"""Quality arithmetic on a constructed set of labels and decisions, worked out by hand."""

import random
from datetime import UTC, date, datetime, timedelta

import pytest

from labelers.quality.chart import daily_chart
from labelers.quality.figures import (
    DayQuality,
    DecisionRow,
    LabelRow,
    cohen_kappa,
    effective_decisions,
    percentile,
    threshold_advice,
    version_quality,
)

T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)
_ids = iter(range(1, 1000))


def decision(item, action, *, minutes, undoes=None):
    return DecisionRow(
        id=next(_ids),
        item_id=item,
        revision=1,
        action=action,
        undoes_id=undoes.id if undoes else None,
        created_at=T0 + timedelta(minutes=minutes),
    )


def done(item, label, confidence, *, latency=None, attempts=1, cache_hit=False, day=1):
    return LabelRow(
        version_id=1,
        item_id=item,
        revision=1,
        status="done",
        label=label,
        confidence=confidence,
        latency_ms=latency,
        cache_hit=cache_hit,
        attempts=attempts,
        labeled_at=datetime(2026, 11, day, 9, tzinfo=UTC),
    )


def constructed_set():
    """Ten labeled items (item: label confidence -> reviewers):
    1: 1 .90 -> remove            6: 0 .80 -> approve
    2: 1 .80 -> remove            7: 0 .60 -> remove
    3: 1 .70 -> approve           8: 1 .95 -> escalate only (undecided)
    4: 1 .60 -> remove, undone, approve     9: 0 .70 (cache hit) -> no decision
    5: 0 .90 -> approve           10: 1 .55 -> approve, then remove (changed mind)
    plus three labels that failed, one of each kind."""
    removed_4 = decision(4, "remove", minutes=1)
    decisions = [
        decision(1, "remove", minutes=1),
        decision(2, "remove", minutes=1),
        decision(3, "approve", minutes=1),
        removed_4,
        decision(4, "undo", minutes=2, undoes=removed_4),
        decision(4, "approve", minutes=3),
        decision(5, "approve", minutes=1),
        decision(6, "approve", minutes=1),
        decision(7, "remove", minutes=1),
        decision(8, "escalate", minutes=1),
        decision(10, "approve", minutes=1),
        decision(10, "remove", minutes=5),
    ]
    labels = [
        done(1, "1", 0.90, latency=100, day=1),
        done(2, "1", 0.80, latency=200, day=1),
        done(3, "1", 0.70, latency=300, attempts=3, day=1),
        done(4, "1", 0.60, latency=400, day=2),
        done(5, "0", 0.90, latency=500, day=2),
        done(6, "0", 0.80, latency=600, day=2),
        done(7, "0", 0.60, latency=700, day=2),
        done(8, "1", 0.95, latency=800, day=2),
        done(9, "0", 0.70, latency=0, cache_hit=True, day=2),
        done(10, "1", 0.55, latency=900, day=2),
        LabelRow(1, 11, 1, "failed", "", None, attempts=2),
        LabelRow(1, 12, 1, "waiting_key", "", None, attempts=0),
        LabelRow(1, 13, 1, "failed_transient", "", None, attempts=4),
    ]
    return labels, effective_decisions(decisions)


def test_the_effective_decision_skips_undos_undone_decisions_and_lone_escalations():
    _, decisions = constructed_set()
    assert {item: row.action for (item, _), row in decisions.items()} == {
        1: "remove",
        2: "remove",
        3: "approve",
        4: "approve",
        5: "approve",
        6: "approve",
        7: "remove",
        10: "remove",
    }


def test_an_escalation_decided_by_a_senior_counts_as_the_seniors_decision():
    rows = [decision(1, "escalate", minutes=1), decision(1, "approve", minutes=2)]
    assert effective_decisions(rows)[(1, 1)].action == "approve"


def test_an_undone_decision_leaves_the_revision_undecided():
    removed = decision(1, "remove", minutes=1)
    assert effective_decisions([removed, decision(1, "undo", minutes=2, undoes=removed)]) == {}


def test_precision_and_kappa_on_the_constructed_set():
    labels, decisions = constructed_set()
    quality = version_quality(version_id=1, labels=labels, decisions=decisions, min_confidence=None)
    # Flags: the six "1"s (1, 2, 3, 4, 8, 10); decided: eight items (8 escalated, 9 none).
    assert (quality.labeled, quality.flagged, quality.decided) == (10, 6, 8)
    # Flagged and decided: 1, 2, 3, 4, 10; removed among them: 1, 2, 10.
    assert (quality.flagged_decided, quality.flagged_removed) == (5, 3)
    assert quality.precision == pytest.approx(3 / 5)
    # Agreement on 1, 2, 5, 6, 10: po = 5/8. Flag "yes" 5/8, remove "yes" 4/8:
    # pe = 5/8 * 4/8 + 3/8 * 4/8 = 1/2. kappa = (5/8 - 1/2) / (1 - 1/2) = 1/4.
    assert quality.kappa == pytest.approx(0.25)
    assert quality.recall is None


def test_a_minimum_confidence_changes_what_the_version_flags():
    labels, decisions = constructed_set()
    quality = version_quality(version_id=1, labels=labels, decisions=decisions, min_confidence=0.75)
    # Flags 1 (.90), 2 (.80), 8 (.95); decided flags 1 and 2, both removed.
    assert (quality.flagged, quality.flagged_decided, quality.precision) == (3, 2, 1.0)
    # Agreement on 1, 2, 3, 4, 5, 6: po = 6/8; pe = 2/8 * 4/8 + 6/8 * 4/8 = 1/2; kappa 1/2.
    assert quality.kappa == pytest.approx(0.5)


def test_latency_calls_cache_hits_and_failures_by_kind():
    labels, decisions = constructed_set()
    quality = version_quality(version_id=1, labels=labels, decisions=decisions, min_confidence=None)
    # Nine latencies 100..900 (the cache hit made no call): median 500, p95 the 9th of 9.
    assert (quality.latency_median_ms, quality.latency_p95_ms) == (500, 900)
    # Eight calls of one attempt, item 3 took three, failed labels 2 + 0 + 4.
    assert quality.calls == 8 + 3 + 6
    assert quality.cache_hits == 1
    assert quality.failures == {"waiting_key": 1, "failed": 1, "failed_transient": 1}


def test_volume_and_precision_per_day():
    labels, decisions = constructed_set()
    days = version_quality(
        version_id=1, labels=labels, decisions=decisions, min_confidence=None
    ).days
    # Day 1: items 1, 2, 3 flagged, 1 and 2 removed. Day 2: 4..10, flags 4, 8, 10; decided
    # flags 4 (approved) and 10 (removed).
    assert [(d.day.day, d.labeled, d.flagged, d.flagged_decided) for d in days] == [
        (1, 3, 3, 3),
        (2, 7, 3, 2),
    ]
    assert days[0].precision == pytest.approx(2 / 3) and days[1].precision == 0.5


def test_kappa_is_undefined_without_pairs_or_when_both_sides_never_vary():
    assert cohen_kappa([]) is None
    assert cohen_kappa([(True, True), (True, True)]) is None
    assert cohen_kappa([(True, False), (False, True)]) == pytest.approx(-1.0)


def test_percentile_is_the_nearest_rank():
    assert percentile([], 0.95) is None
    assert percentile(list(range(1, 101)), 0.95) == 95
    assert percentile([5.0], 0.95) == 5.0


def test_threshold_advice_picks_the_minimum_confidence_with_the_best_kappa():
    labels, decisions = constructed_set()
    advice = threshold_advice(
        labels=labels, decisions=decisions, current_min_confidence=None, min_decided=8
    )
    # Kappa by minimum confidence over the eight decided items: none or .55 -> 1/4,
    # .60 -> 0, .70 -> 1/4, .80 -> 1/2, .90 -> 1/4. Best: .80.
    assert advice is not None and advice.decided == 8
    assert advice.advised.min_confidence == 0.8
    assert advice.advised.kappa == pytest.approx(0.5)
    assert advice.advised.accuracy == pytest.approx(6 / 8)
    # What it changes, over all ten labeled items: flagged 6 -> 3 (1, 2 and the undecided
    # 8), precision 3/5 -> 2/2.
    assert (advice.current.flagged, advice.advised.flagged) == (6, 3)
    assert advice.current.precision == pytest.approx(0.6) and advice.advised.precision == 1.0
    assert advice.changes


def test_threshold_advice_keeps_the_current_setting_when_it_is_already_best():
    labels, decisions = constructed_set()
    advice = threshold_advice(
        labels=labels, decisions=decisions, current_min_confidence=0.75, min_decided=8
    )
    # .75 flags the same decided items as .80: a tie, and the current setting wins it.
    assert advice is not None and advice.advised.min_confidence == 0.75
    assert not advice.changes


def test_no_threshold_advice_below_twenty_decided_items():
    labels, decisions = constructed_set()
    assert threshold_advice(labels=labels, decisions=decisions, current_min_confidence=None) is None


def test_the_daily_chart_scales_bars_to_the_busiest_day_and_precision_to_the_height():
    days = [
        DayQuality(date(2026, 11, 1), labeled=10, flagged=4, flagged_decided=4, precision=0.5),
        DayQuality(date(2026, 11, 2), labeled=5, flagged=0, flagged_decided=0, precision=None),
    ]
    chart = daily_chart(days, width=200, height=100)
    assert chart is not None
    assert [(bar.x, bar.height, bar.width) for bar in chart.bars] == [
        (10.0, 100.0, 80.0),
        (110.0, 50.0, 80.0),
    ]
    assert chart.precision_points == "50.0,50.0"
    assert daily_chart([]) is None


def audit(item, action):
    return DecisionRow(
        id=next(_ids),
        item_id=item,
        revision=1,
        action=action,
        undoes_id=None,
        created_at=T0,
        status_before="audit",
    )


def labeled(item, label, confidence, *, item_flagged):
    return LabelRow(
        version_id=1,
        item_id=item,
        revision=1,
        status="done",
        label=label,
        confidence=confidence,
        labeled_at=datetime(2026, 11, 1, 9, tzinfo=UTC),
        item_flagged=item_flagged,
    )


def test_recall_is_estimated_from_each_group_of_unflagged_items():
    """Version flags items 1-4 (3 removed of 4 decided: precision 0.75, 3 caught);
    items 5-7 it did not flag but another labeler did: 1 removed of 2 decided, 3 items,
    so 1.5 missed; items 8-27 nobody flagged (20): the audit decided 4, removed 1, so 5
    missed. Recall = 3 / (3 + 1.5 + 5) = 0.3158."""
    labels = [labeled(n, "1", 0.9, item_flagged=True) for n in range(1, 5)]
    labels += [labeled(n, "0", 0.8, item_flagged=True) for n in range(5, 8)]
    labels += [labeled(n, "0", 0.9, item_flagged=False) for n in range(8, 28)]
    actions = {1: "remove", 2: "remove", 3: "remove", 4: "approve", 5: "remove", 6: "approve"}
    audits = {8: "remove", 9: "approve", 10: "approve", 11: "approve"}
    # Item 12 nobody flagged went to review for another reason (not an audit): left out.
    decisions = effective_decisions(
        [decision(item, action, minutes=1) for item, action in actions.items()]
        + [audit(item, action) for item, action in audits.items()]
        + [decision(12, "remove", minutes=1)]
    )
    quality = version_quality(version_id=1, labels=labels, decisions=decisions, min_confidence=None)
    assert quality.precision == 0.75
    assert (quality.audit_decided, quality.audit_removed) == (4, 1)
    assert quality.missed_estimate == pytest.approx(1.5 + 5.0)
    assert quality.recall == pytest.approx(3 / 9.5)


def test_recall_is_unknown_until_the_audit_sample_has_decisions():
    labels = [labeled(1, "1", 0.9, item_flagged=True), labeled(2, "0", 0.9, item_flagged=False)]
    decisions = effective_decisions([decision(1, "remove", minutes=1)])
    quality = version_quality(version_id=1, labels=labels, decisions=decisions, min_confidence=None)
    assert quality.precision == 1.0
    assert quality.recall is None and quality.audit_decided == 0


def test_recall_is_one_when_no_audited_item_was_a_violation():
    labels = [labeled(1, "1", 0.9, item_flagged=True), labeled(2, "0", 0.9, item_flagged=False)]
    decisions = effective_decisions([decision(1, "remove", minutes=1), audit(2, "approve")])
    quality = version_quality(version_id=1, labels=labels, decisions=decisions, min_confidence=None)
    assert quality.recall == 1.0 and quality.missed_estimate == 0.0


def test_recall_is_zero_when_the_version_flags_nothing_and_audits_found_violations():
    labels = [labeled(1, "0", 0.9, item_flagged=False), labeled(2, "0", 0.9, item_flagged=False)]
    decisions = effective_decisions([audit(1, "remove")])
    quality = version_quality(version_id=1, labels=labels, decisions=decisions, min_confidence=None)
    assert quality.flagged == 0 and quality.precision is None
    assert quality.missed_estimate == 2.0 and quality.recall == 0.0


def reference_advice(labels, decisions, current):
    """The plain definition, a full pass over the labels per threshold: what the fast
    threshold_advice must equal exactly."""
    done = [row for row in labels if row.status == "done"]

    def outcome(minimum):
        pairs, flagged_human, flagged = [], [], 0
        for row in done:
            flag = row.label == "1" and (minimum is None or (row.confidence or 0.0) >= minimum)
            flagged += flag
            decision = decisions.get((row.item_id, row.revision))
            if decision is None:
                continue
            human = decision.action == "remove"
            pairs.append((flag, human))
            if flag:
                flagged_human.append(human)
        precision = sum(flagged_human) / len(flagged_human) if flagged_human else None
        accuracy = sum(a == b for a, b in pairs) / len(pairs) if pairs else None
        return (minimum, flagged, len(flagged_human), precision, cohen_kappa(pairs), accuracy)

    decided = [row for row in done if (row.item_id, row.revision) in decisions]
    candidates = [None] + sorted({r.confidence for r in decided if r.label == "1" and r.confidence})
    best = current_outcome = outcome(current)
    for candidate in candidates:
        tried = outcome(candidate)
        if (tried[4] if tried[4] is not None else -1e9, tried[5] or 0) > (
            best[4] if best[4] is not None else -1e9,
            best[5] or 0,
        ):
            best = tried
    return current_outcome, best


@pytest.mark.parametrize("seed", range(12))
def test_threshold_advice_equals_the_plain_definition_on_random_sets(seed):
    rng = random.Random(seed)
    labels, rows = [], []
    for item in range(1, rng.randrange(25, 400)):
        label = rng.choice("0011")
        confidence = rng.choice([None, round(rng.uniform(0.5, 1.0), rng.choice([1, 2, 3]))])
        labels.append(
            LabelRow(1, item, 1, rng.choice(["done"] * 9 + ["failed"]), label, confidence)
        )
        if rng.random() < 0.6:
            removal_odds = 0.8 if label == "1" else 0.2
            action = "remove" if rng.random() < removal_odds else "approve"
            rows.append(DecisionRow(item, item, 1, action, None, T0))
    decisions = effective_decisions(rows)
    current = rng.choice([None, 0.6, 0.75, 0.9])
    advice = threshold_advice(
        labels=labels, decisions=decisions, current_min_confidence=current, min_decided=1
    )
    expected_current, expected_best = reference_advice(labels, decisions, current)

    def as_tuple(outcome):
        return (
            outcome.min_confidence,
            outcome.flagged,
            outcome.flagged_decided,
            outcome.precision,
            outcome.kappa,
            outcome.accuracy,
        )

    assert as_tuple(advice.current) == expected_current
    assert as_tuple(advice.advised) == expected_best
