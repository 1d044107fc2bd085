"""Verdict edge cases found in review: a late label of an earlier revision, and the labeler
versions a re-reviewed item's new decision records."""

import pytest
from django.db import transaction

from labelers import selectors
from labelers.models import Label, LabelerVersion
from labelers.routing import routing_cache
from labelers.verdict import item_refresh
from moderation.models import Item
from moderation.services.decisions import decision_record
from moderation.services.rereview import items_send_for_rereview
from moderation.tests.factories import ItemFactory, LabelerFactory, SourceFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_a_late_label_of_an_earlier_revision_leaves_an_edited_item_to_the_dispatch():
    """The product edited the item (revision 2, back to received); a revision-1 label of one
    of its two labelers fails afterwards. The item has no label of its current revision yet:
    the dispatch routes it; it must not be declared "no labeler routed"."""
    first, second = LabelerFactory(), LabelerFactory()
    source = SourceFactory()
    source.labelers.set([first, second])
    routing_cache.clear()
    item = ItemFactory(source=source, status=Item.Status.RECEIVED, revision=2)
    Label.objects.create(
        item=item,
        revision=1,
        labeler_version=first.versions.get(),
        status=Label.Status.FAILED,
        content_hash="x",
    )
    before = Item.objects.values("status", "queue_key", "violation_score").get(pk=item.pk)
    with transaction.atomic():
        item_refresh(item_id=item.pk)
    assert Item.objects.values("status", "queue_key", "violation_score").get(pk=item.pk) == before
    assert before["status"] == Item.Status.RECEIVED


def test_a_re_reviewed_item_is_decided_under_the_version_it_was_relabeled_with():
    labeler = LabelerFactory()
    v1 = labeler.versions.get(number=1)
    source = SourceFactory()
    source.labelers.set([labeler])
    routing_cache.clear()
    item = ItemFactory(source=source, status=Item.Status.LABELING)
    label = {"status": "done", "content_hash": "x", "revision": item.revision}
    Label.objects.create(
        item=item, labeler_version=v1, label="1", confidence=0.9, violation_score=0.9, **label
    )
    with transaction.atomic():
        item_refresh(item_id=item.pk)
    item.refresh_from_db()
    decision_record(item=item, reviewer=UserFactory(), action="approve")
    v2 = LabelerVersion.objects.create(labeler=labeler, number=2, criteria_text="new criteria")
    routing_cache.clear()
    # The admin relabels with v2, then sends the items decided under v1 for re-review.
    Label.objects.create(
        item=item, labeler_version=v2, label="0", confidence=0.9, violation_score=0.1, **label
    )
    with transaction.atomic():
        item_refresh(item_id=item.pk)
    assert selectors.decided_under_older_versions(labeler=labeler) == [item.pk]
    items_send_for_rereview(item_ids=[item.pk], requested_by=None)
    item.refresh_from_db()
    decision = decision_record(item=item, reviewer=UserFactory(), action="approve")
    assert decision.labeler_versions == [v2.pk]
    assert selectors.decided_under_older_versions(labeler=labeler) == []
