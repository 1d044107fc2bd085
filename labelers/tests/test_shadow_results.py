"""A shadow run's comparison on a constructed set, worked out by hand."""

from datetime import UTC, datetime, timedelta

import pytest

from labelers.quality.figures import DecisionRow
from labelers.shadow import Disagreement, ShadowRow, shadow_comparison

T0 = datetime(2026, 11, 1, 12, tzinfo=UTC)


def decided(*pairs):
    """(item, action) -> the effective decisions dict, each on revision 1."""
    return {
        (item, 1): DecisionRow(
            id=n, item_id=item, revision=1, action=action, undoes_id=None, created_at=T0
        )
        for n, (item, action) in enumerate(pairs, start=1)
    }


def constructed_set():
    """Eight items (item: shadow answer / published answer / reviewers):
    1: 1 .90 / 1 .90 / remove     5: 0 .80 / 0 .80 / undecided
    2: 1 .80 / 0 .70 / remove     6: 1 .55 / none  / remove
    3: 1 .60 / 1 .80 / approve    7: failed
    4: 0 .90 / 1 .90 / approve    8: 0 .70 (from the cache) / 0 .60 / remove"""
    shadow = [
        ShadowRow(1, 1, "done", "1", 0.90),
        ShadowRow(2, 1, "done", "1", 0.80),
        ShadowRow(3, 1, "done", "1", 0.60),
        ShadowRow(4, 1, "done", "0", 0.90),
        ShadowRow(5, 1, "done", "0", 0.80),
        ShadowRow(6, 1, "done", "1", 0.55),
        ShadowRow(7, 1, "failed", "", None),
        ShadowRow(8, 1, "done", "0", 0.70, cache_hit=True),
    ]
    baseline = {
        (1, 1): ("1", 0.90),
        (2, 1): ("0", 0.70),
        (3, 1): ("1", 0.80),
        (4, 1): ("1", 0.90),
        (5, 1): ("0", 0.80),
        (8, 1): ("0", 0.60),
    }
    decisions = decided(
        (1, "remove"), (2, "remove"), (3, "approve"), (4, "approve"), (6, "remove"), (8, "remove")
    )
    return shadow, baseline, decisions


def compare(min_confidence=None):
    shadow, baseline, decisions = constructed_set()
    return shadow_comparison(
        shadow=shadow, baseline=baseline, decisions=decisions, min_confidence=min_confidence
    )


def test_it_counts_answers_failures_and_cache_hits():
    c = compare()
    assert (c.labeled, c.failed, c.cache_hits) == (7, 1, 1)
    assert c.failures == {"failed": 1}


def test_it_counts_what_each_version_would_flag():
    c = compare()
    # The shadow flags 1, 2, 3, 6; of the six items both answered (1-5, 8) it flags 1, 2, 3
    # and the published version flags 1, 3, 4.
    assert (c.flagged, c.compared, c.flagged_compared, c.baseline_flagged) == (4, 6, 3, 3)


def test_agreement_with_the_published_version_is_a_share_and_a_kappa():
    c = compare()
    # Alike on 1, 3, 5, 8 of six: observed 4/6; both flag half the items: chance 1/2;
    # kappa (2/3 - 1/2) / (1/2) = 1/3.
    assert c.agreement_baseline == pytest.approx(4 / 6)
    assert c.kappa_baseline == pytest.approx(1 / 3)


def test_agreement_with_reviewers_and_precision_count_decided_items_only():
    c = compare()
    # Decided: 1, 2, 3, 4, 6, 8 (5 is not). Flag vs remove: alike on 1, 2, 4, 6: 4/6.
    # Shadow flags 4/6, reviewers remove 4/6: chance 4/9 + 1/9 = 5/9;
    # kappa (2/3 - 5/9) / (4/9) = 1/4. Its decided flags 1, 2, 3, 6: removed 1, 2, 6.
    assert c.decided == 6
    assert c.agreement_reviewers == pytest.approx(4 / 6)
    assert c.kappa_reviewers == pytest.approx(0.25)
    assert (c.precision, c.flagged_decided) == (pytest.approx(0.75), 4)


def test_the_published_version_is_scored_against_reviewers_on_the_same_items():
    c = compare()
    # Decided items the published version answered: 1, 2, 3, 4, 8; alike only on 1: 1/5.
    # It flags 3/5 and reviewers remove 3/5 (1, 2, 8): chance 9/25 + 4/25 = 13/25;
    # kappa (1/5 - 13/25) / (12/25) = -2/3. Its flags 1, 3, 4: removed 1 only.
    assert c.baseline_decided == 5
    assert c.baseline_kappa_reviewers == pytest.approx(-2 / 3)
    assert (c.baseline_precision, c.baseline_flagged_decided) == (pytest.approx(1 / 3), 3)


def test_it_lists_each_item_where_the_shadow_disagrees_and_with_whom():
    assert compare().disagreements == [
        Disagreement(2, 1, True, False, "remove", with_baseline=True, with_reviewers=False),
        Disagreement(3, 1, True, True, "approve", with_baseline=False, with_reviewers=True),
        Disagreement(4, 1, False, True, "approve", with_baseline=True, with_reviewers=False),
        Disagreement(8, 1, False, False, "remove", with_baseline=False, with_reviewers=True),
    ]


def test_the_labelers_minimum_confidence_applies_to_both_versions():
    c = compare(min_confidence=0.7)
    # Shadow flags 1 (.90), 2 (.80); 3 (.60) and 6 (.55) fall below. Published: 1, 3, 4.
    assert (c.flagged, c.baseline_flagged) == (2, 3)
    by_item = {d.item_id: d for d in c.disagreements}
    # Item 3 now agrees with the reviewers' approve and differs from the published flag.
    assert by_item[3].with_baseline and not by_item[3].with_reviewers


def test_a_revision_the_published_version_did_not_answer_is_not_compared():
    shadow = [ShadowRow(1, 2, "done", "1", 0.9)]
    c = shadow_comparison(
        shadow=shadow, baseline={(1, 1): ("0", 0.9)}, decisions={}, min_confidence=None
    )
    assert (c.compared, c.agreement_baseline, c.disagreements) == (0, None, [])


def test_with_nothing_to_compare_every_rate_is_undefined():
    c = shadow_comparison(shadow=[], baseline={}, decisions={}, min_confidence=None)
    assert (c.agreement_baseline, c.kappa_baseline, c.kappa_reviewers, c.precision) == (
        None,
        None,
        None,
        None,
    )


def test_a_decision_on_another_revision_does_not_count():
    shadow = [ShadowRow(1, 2, "done", "1", 0.9)]
    decisions = {
        (1, 1): DecisionRow(1, 1, 1, "remove", None, T0 - timedelta(days=1)),
    }
    c = shadow_comparison(shadow=shadow, baseline={}, decisions=decisions, min_confidence=None)
    assert c.decided == 0
