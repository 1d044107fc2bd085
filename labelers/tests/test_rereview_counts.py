"""The re-review count reads closed days of decided items from their daily counts
(DecidedRollup): it must equal the count of the items themselves
(selectors.decided_under_older_versions) whatever changed after a day was counted: an
item decided again, undone, sent for re-review, edited."""

import random
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone

from labelers import selectors
from labelers.models import LabelerVersion
from moderation.models import ChangedDecidedDay, DecidedRollup, Decision, Item
from moderation.services.decisions import decision_create, item_decision_apply
from moderation.services.figures import decided_rollups_refresh, item_figures_changed
from moderation.services.rereview import items_send_for_rereview
from moderation.tests.factories import ItemFactory, LabelerFactory, SourceFactory, UserFactory

pytestmark = pytest.mark.django_db


def constructed(seed: int):
    """A labeler at v2 routed to two sources (and a third source not routed); 80 decided
    items over 12 days, their current decisions under v1, v2, v1 with another labeler's
    version, or none; some with an undone later decision, some by the system, some waiting."""
    rng = random.Random(seed)
    labeler = LabelerFactory()
    v1 = labeler.versions.get()
    v2 = LabelerVersion.objects.create(labeler=labeler, number=2, criteria_text="v2")
    other = LabelerFactory().versions.get()
    routed = [SourceFactory(labelers=[labeler]) for _ in range(2)]
    sources = [*routed, SourceFactory()]
    reviewer = UserFactory()
    now = timezone.now()
    for n in range(80):
        decided_at = now - timedelta(days=rng.randrange(12), hours=rng.randrange(24))
        item = ItemFactory(
            source=rng.choice(sources),
            status=rng.choice([Item.Status.DECIDED] * 5 + [Item.Status.FLAGGED]),
            decided_at=decided_at if n % 17 else None,
            queue_score=None,
            queue_key=None,
        )
        versions = rng.choice([[v1.pk], [v2.pk], [v1.pk, other.pk], [], [other.pk]])
        first = Decision.objects.create(
            item=item,
            reviewer=rng.choice([reviewer, None]),
            action=rng.choice(["approve", "remove"]),
            labeler_versions=versions,
        )
        if rng.random() < 0.2:  # a later decision under v2, undone
            later = Decision.objects.create(
                item=item, reviewer=reviewer, action="remove", labeler_versions=[v2.pk]
            )
            Decision.objects.create(item=item, reviewer=reviewer, action="undo", undoes=later)
        if rng.random() < 0.1:  # the first one undone too: no current decision
            Decision.objects.create(item=item, reviewer=reviewer, action="undo", undoes=first)
    return labeler, v1, v2


def assert_count_is_the_items(labeler) -> int:
    items = selectors.decided_under_older_versions(labeler=labeler)
    assert selectors.decided_under_older_versions_count(labeler=labeler) == len(items)
    return len(items)


@pytest.mark.parametrize("seed", range(3))
def test_the_count_from_daily_counts_equals_the_items(seed):
    labeler, _, _ = constructed(seed)
    assert assert_count_is_the_items(labeler) > 0  # nothing counted yet: all live
    assert decided_rollups_refresh() >= 11
    assert DecidedRollup.objects.count() >= 11
    assert_count_is_the_items(labeler)
    assert decided_rollups_refresh() == 0


def test_days_changed_after_they_were_counted_are_counted_again():
    labeler, v1, v2 = constructed(11)
    decided_rollups_refresh()
    before = assert_count_is_the_items(labeler)
    older = selectors.decided_under_older_versions(labeler=labeler)
    reviewer = UserFactory()
    # Decided again under v2 (through the one place a decision is applied)...
    with transaction.atomic():
        locked = Item.objects.select_for_update().get(pk=older[0])
        decision = decision_create(
            item=locked, reviewer=reviewer, action="approve", labeler_versions=[v2.pk]
        )
        item_decision_apply(
            locked,
            status=Item.Status.DECIDED,
            decided_at=decision.created_at,
            decided_action=decision.action,
        )
    # ...sent for re-review, and edited (its path marks its day the same way).
    items_send_for_rereview(item_ids=[older[1]], requested_by=reviewer)
    edited = Item.objects.get(pk=older[2])
    Item.objects.filter(pk=edited.pk).update(status=Item.Status.RECEIVED, decided_at=None)
    item_figures_changed(item_id=edited.pk, decided_at=edited.decided_at)
    assert ChangedDecidedDay.objects.count() >= 2
    assert assert_count_is_the_items(labeler) == before - 3
    assert decided_rollups_refresh() >= 1
    assert not ChangedDecidedDay.objects.exists()
    assert assert_count_is_the_items(labeler) == before - 3
