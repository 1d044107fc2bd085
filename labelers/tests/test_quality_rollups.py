"""The quality page reads closed days from their daily counts (rollups.py): its numbers must
be exactly those of the raw reading (every label and decision read again), whatever changed
after a day was counted: undo, re-review, an appeal overturned, an item flagged or edited,
the minimum confidence."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from labelers.models import Label, QualityRollup
from labelers.quality.loaders import labeler_report, labeler_report_raw
from labelers.quality.rollups import quality_rollups_refresh
from labelers.tests.test_quality_loaders import constructed_version
from moderation.models import Appeal, ChangedItem, Decision, Item
from moderation.services.decisions import decision_create, item_decision_apply
from moderation.services.figures import item_figures_changed
from moderation.tests.factories import ItemFactory, UserFactory

pytestmark = pytest.mark.django_db


def windows(now: datetime) -> list[datetime | None]:
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    # Ever; whole days (as the page asks); a partial first day; a window inside the data.
    return [None, midnight - timedelta(days=6), now - timedelta(days=7), now - timedelta(days=3)]


def assert_same_as_raw(labeler) -> None:
    now = timezone.now()
    for since in windows(now):
        rolled = labeler_report(labeler, since=since, now=now)
        raw = labeler_report_raw(labeler, since=since)
        assert rolled == raw, f"since {since}"
        assert rolled[0].quality.labeled > 0


def decided_items(version, *, action: str, older_than_today: bool = True) -> list[Item]:
    """Items of closed days whose effective decision by people is `action`."""
    today = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)
    items = []
    for label in Label.objects.filter(
        labeler_version=version, status="done", labeled_at__lt=today
    ).select_related("item"):
        last = (
            Decision.objects.filter(item=label.item, reviewer__isnull=False)
            .exclude(action="undo")
            .filter(undone_by__isnull=True)
            .order_by("-created_at", "-id")
            .first()
        )
        if last is not None and last.action == action:
            items.append(label.item)
    return items


def decide(item: Item, **fields) -> None:
    """A decision as every service makes one: created, then applied to its locked item."""
    with transaction.atomic():
        locked = Item.objects.select_for_update().get(pk=item.pk)
        decision = decision_create(item=locked, **fields)
        if decision.action == "undo":  # back where it stood, undecided
            item_decision_apply(locked, status="flagged", decided_at=None)
        else:
            item_decision_apply(
                locked,
                status="decided",
                decided_at=decision.created_at,
                decided_action=decision.action,
            )


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("min_confidence", [None, 0.8])
def test_figures_from_daily_counts_equal_the_raw_reading(seed, min_confidence):
    labeler, version = constructed_version(seed)
    labeler.min_confidence = min_confidence
    labeler.save()
    assert_same_as_raw(labeler)  # nothing counted yet: every day live
    assert quality_rollups_refresh() >= 19
    assert QualityRollup.objects.filter(version=version).count() >= 19
    assert_same_as_raw(labeler)
    assert quality_rollups_refresh() == 0  # nothing new: nothing recounted


def test_days_changed_after_they_were_counted_are_counted_again():
    labeler, version = constructed_version(7)
    reviewer = UserFactory()
    quality_rollups_refresh()
    ChangedItem.objects.all().delete()
    before = labeler_report(labeler)
    removed = decided_items(version, action="remove")
    approved = decided_items(version, action="approve")
    # Undo a removal; re-review an approval into a removal; overturn a removal on appeal.
    first = Decision.objects.filter(item=removed[0], action="remove").latest("id")
    decide(removed[0], reviewer=reviewer, action="undo", undoes=first)
    decide(approved[0], reviewer=reviewer, action="remove", status_before="rereview")
    overturned = Decision.objects.filter(item=removed[1], action="remove").latest("id")
    Appeal.objects.create(
        source=removed[1].source,
        appeal_id="a-1",
        webhook_id="m-1",
        decision=overturned,
        item=removed[1],
        status=Appeal.Status.OVERTURNED,
        decided_at=timezone.now(),
    )
    decide(removed[1], reviewer=reviewer, action="approve", status_before="appeal")
    # Every decision applied says which item changed.
    assert set(ChangedItem.objects.values_list("item_id", flat=True)) == {
        removed[0].pk,
        approved[0].pk,
        removed[1].pk,
    }
    # An item flagged by another labeler later, and one edited (its flag cleared, its new
    # revision labeled today): the edit and the verdict say so through the same door.
    unflagged = Item.objects.filter(labels__labeler_version=version, flagged_at__isnull=True)[0]
    Item.objects.filter(pk=unflagged.pk).update(flagged_at=timezone.now())
    item_figures_changed(item_id=unflagged.pk)
    edited = Item.objects.filter(labels__labeler_version=version, flagged_at__isnull=False)[0]
    Item.objects.filter(pk=edited.pk).update(revision=2, flagged_at=None)
    Label.objects.create(
        item=edited,
        revision=2,
        labeler_version=version,
        status="done",
        label="1",
        confidence=0.99,
        attempts=1,
        labeled_at=timezone.now(),
        content_hash=edited.content_hash,
    )
    item_figures_changed(item_id=edited.pk)
    after = labeler_report(labeler)
    assert after != before  # the changes show at once (their days counted live)...
    assert_same_as_raw(labeler)
    touched = quality_rollups_refresh()
    # ...and the task recounts only the days of the changed items' labels.
    assert 1 <= touched <= 5
    assert not ChangedItem.objects.exists()
    assert labeler_report(labeler) == after
    assert_same_as_raw(labeler)


def test_a_new_minimum_confidence_is_never_read_from_counts_made_at_the_old_one():
    labeler, version = constructed_version(3)
    quality_rollups_refresh()
    labeler.min_confidence = 0.75
    labeler.save()
    assert_same_as_raw(labeler)
    assert quality_rollups_refresh() >= 19  # every day recounted at 0.75
    assert set(
        QualityRollup.objects.filter(version=version).values_list("min_confidence", flat=True)
    ) == {0.75}
    assert_same_as_raw(labeler)


def test_a_day_is_counted_once_it_is_over_and_its_late_commits_are_in():
    labeler, version = constructed_version(5)
    now = timezone.now()
    midnight = now.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    quality_rollups_refresh(now=midnight + timedelta(minutes=5))
    yesterday = (midnight - timedelta(days=1)).date()
    # Yesterday only until 23:50 (its last minutes may still commit), as today is counted.
    assert QualityRollup.objects.get(version=version, day=yesterday).through == (
        midnight - timedelta(minutes=10)
    )
    assert_same_as_raw(labeler)
    quality_rollups_refresh(now=midnight + timedelta(minutes=20))
    assert QualityRollup.objects.get(version=version, day=yesterday).through is None
    assert QualityRollup.objects.get(version=version, day=midnight.date()).through == (
        midnight + timedelta(minutes=5)
    )
    assert_same_as_raw(labeler)


def test_today_is_read_from_its_partial_count_and_the_labels_answered_since():
    labeler, version = constructed_version(9)
    reviewer = UserFactory()
    now = timezone.now()
    through = now - timedelta(minutes=15)

    def flagged_one(at):
        item = ItemFactory(status=Item.Status.FLAGGED, flagged_at=at)
        Label.objects.create(
            item=item,
            labeler_version=version,
            status="done",
            label="1",
            confidence=0.97,
            latency_ms=321,
            attempts=1,
            labeled_at=at,
            content_hash=item.content_hash,
        )
        return item

    # Answered a moment before the partial count's end: in it (near midnight, yesterday's).
    counted = flagged_one(through - timedelta(seconds=1))
    quality_rollups_refresh(now=now)
    day = through.astimezone(UTC).date()
    assert QualityRollup.objects.get(version=version, day=day).through == through
    assert_same_as_raw(labeler)
    # Answered after it, or before it and committed after it (inside the grace).
    flagged_one(now + timedelta(seconds=1))
    flagged_one(now - timedelta(minutes=5))
    assert_same_as_raw(labeler)
    # A decision on an item the partial count counted: its day is counted live until the
    # task has counted it again.
    before = labeler_report(labeler)
    decide(counted, reviewer=reviewer, action="remove", status_before="flagged")
    assert labeler_report(labeler) != before
    assert_same_as_raw(labeler)
    quality_rollups_refresh()
    assert not ChangedItem.objects.exists()
    assert_same_as_raw(labeler)
