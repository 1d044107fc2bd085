"""The quality page reads undecided labels as counts grouped in SQL (version_rows): its
numbers must be exactly those of the plain reading, every label one row (version_labels)."""

import random
from datetime import UTC, datetime, timedelta

import pytest
from django.utils import timezone

from labelers.models import Label
from labelers.quality.figures import threshold_advice, version_quality
from labelers.quality.loaders import labeler_decisions, version_labels, version_rows
from moderation.models import Decision, Item
from moderation.tests.factories import ItemFactory, LabelerFactory, UserFactory

pytestmark = pytest.mark.django_db


def constructed_version(seed: int):
    """A version with 150 labels of every kind: done "0"s and "1"s at many confidences,
    failures of each kind, cache hits, items another labeler flagged or not, over 20 days;
    a third of them decided by people (some undone, some escalated only, some audits), some
    by the system."""
    rng = random.Random(seed)
    labeler = LabelerFactory()
    version = labeler.versions.get()
    reviewer = UserFactory()
    now = timezone.now()
    for _ in range(150):
        flagged_at = now if rng.random() < 0.4 else None
        item = ItemFactory(status=Item.Status.DECIDED, flagged_at=flagged_at)
        status = rng.choice(["done"] * 8 + ["failed", "waiting_key", "failed_transient", "pending"])
        label = rng.choice("01") if status == "done" else ""
        Label.objects.create(
            item=item,
            revision=item.revision,
            labeler_version=version,
            status=status,
            label=label,
            confidence=round(rng.uniform(0.5, 1.0), 2) if status == "done" else None,
            latency_ms=rng.choice([None, rng.uniform(50, 900)]),
            cache_hit=rng.random() < 0.2,
            attempts=rng.randrange(0, 4),
            labeled_at=now - timedelta(days=rng.randrange(20), hours=rng.randrange(24))
            if status != "pending"
            else None,
            content_hash=item.content_hash,
        )
        roll = rng.random()
        if roll < 0.3:
            Decision.objects.create(
                item=item,
                reviewer=reviewer,
                action=rng.choice(["approve", "remove", "escalate"]),
                status_before=rng.choice(["flagged", "audit", "failed"]),
            )
        elif roll < 0.35:
            first = Decision.objects.create(item=item, reviewer=reviewer, action="remove")
            Decision.objects.create(item=item, reviewer=reviewer, action="undo", undoes=first)
        elif roll < 0.45:
            Decision.objects.create(item=item, reviewer=None, action="approve")
    return labeler, version


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("min_confidence", [None, 0.8])
@pytest.mark.parametrize("days", [None, 7])
def test_grouped_rows_give_exactly_the_numbers_of_the_plain_reading(seed, min_confidence, days):
    labeler, version = constructed_version(seed)
    since = timezone.now() - timedelta(days=days) if days else None
    decisions = labeler_decisions(labeler, since=since)
    plain = list(version_labels(version.pk, since=since))
    rows, latencies, ones = version_rows(version.pk, since=since, min_confidence=min_confidence)
    assert len(rows) < len(plain)  # the undecided ones were grouped
    expected = version_quality(
        version_id=version.pk, labels=plain, decisions=decisions, min_confidence=min_confidence
    )
    got = version_quality(
        version_id=version.pk,
        labels=rows,
        decisions=decisions,
        min_confidence=min_confidence,
        latencies=latencies,
    )
    assert got == expected
    advice = threshold_advice(
        labels=plain, decisions=decisions, current_min_confidence=min_confidence, min_decided=1
    )
    assert advice == threshold_advice(
        labels=rows,
        decisions=decisions,
        current_min_confidence=min_confidence,
        min_decided=1,
        one_confidences=ones,
    )


def test_a_day_is_the_utc_day_in_both_readings():
    labeler, version = constructed_version(99)
    late = datetime(2026, 11, 3, 23, 59, 59, tzinfo=UTC)
    Label.objects.filter(labeler_version=version).update(labeled_at=late)
    rows, latencies, _ = version_rows(version.pk, since=None, min_confidence=None)
    got = version_quality(
        version_id=version.pk,
        labels=rows,
        decisions=labeler_decisions(labeler),
        min_confidence=None,
        latencies=latencies,
    )
    assert [day.day.isoformat() for day in got.days] == ["2026-11-03"]
