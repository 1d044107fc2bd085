"""Re-review after a labeler version changes: which decided items were decided under an older
version, the admin's count-then-confirm page, and items back in the queue (tagged), decided
again with the old decision kept."""

import pytest
from django.urls import reverse

from labelers import selectors
from labelers.models import LabelerVersion
from moderation.filters import QueueFilter
from moderation.models import Decision, Item, queue_key
from moderation.selectors.queue import queue_page
from moderation.services.claims import item_claim
from moderation.services.decisions import decision_record, decision_undo
from moderation.services.rereview import items_send_for_rereview
from moderation.tests.factories import (
    ItemFactory,
    LabelerFactory,
    SourceFactory,
    UserFactory,
    reason_id,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def labeler():
    """A labeler at v2: v1 is the older version decisions may have been made under."""
    labeler = LabelerFactory()
    LabelerVersion.objects.create(labeler=labeler, number=2, criteria_text="Label threats")
    return labeler


def version(labeler, number):
    return labeler.versions.get(number=number)


def decided_item(source, *, versions, score=0.8, reviewer=None):
    """An item decided (approved) with these labeler version ids in force."""
    item = ItemFactory(
        source=source,
        status=Item.Status.DECIDED,
        violation_score=score,
        queue_score=None,
        queue_key=None,
    )
    Decision.objects.create(
        item=item,
        reviewer=reviewer or UserFactory(),
        action=Decision.Action.APPROVE,
        status_before=Item.Status.FLAGGED,
        labeler_versions=[v.pk for v in versions],
    )
    return item


def test_it_finds_items_decided_under_an_older_version_of_the_labeler(labeler):
    source = SourceFactory(labelers=[labeler])
    old = decided_item(source, versions=[version(labeler, 1)])
    decided_item(source, versions=[version(labeler, 2)])
    assert selectors.decided_under_older_versions(labeler=labeler) == [old.pk]


def test_it_ignores_undecided_items_and_sources_not_routed_to_the_labeler(labeler):
    routed, other = SourceFactory(labelers=[labeler]), SourceFactory()
    waiting = decided_item(routed, versions=[version(labeler, 1)])
    Item.objects.filter(pk=waiting.pk).update(status=Item.Status.FLAGGED)
    decided_item(other, versions=[version(labeler, 1)])
    assert selectors.decided_under_older_versions(labeler=labeler) == []


def test_it_judges_an_item_by_its_latest_decision_only(labeler):
    source = SourceFactory(labelers=[labeler])
    item = decided_item(source, versions=[version(labeler, 1)])
    Decision.objects.create(
        item=item,
        reviewer=UserFactory(),
        action=Decision.Action.REMOVE,
        labeler_versions=[version(labeler, 2).pk],
    )
    assert selectors.decided_under_older_versions(labeler=labeler) == []


def test_it_reads_decided_items_in_batches(labeler, monkeypatch):
    monkeypatch.setattr(selectors, "DECIDED_SCAN_BATCH", 2)
    source = SourceFactory(labelers=[labeler])
    old = [decided_item(source, versions=[version(labeler, 1)]) for _ in range(5)]
    assert selectors.decided_under_older_versions(labeler=labeler) == [i.pk for i in old]


def test_sending_for_rereview_puts_decided_items_back_in_the_queue_sorted_by_score(labeler):
    source = SourceFactory(labelers=[labeler])
    item = decided_item(source, versions=[version(labeler, 1)], score=0.7)
    holder = UserFactory()
    Item.objects.filter(pk=item.pk).update(claimed_by=holder, sla_breached=True)

    moved = items_send_for_rereview(item_ids=[item.pk], requested_by=UserFactory())

    item.refresh_from_db()
    assert moved == 1
    assert item.status == Item.Status.REREVIEW
    assert item.queue_score == 0.7
    assert item.queue_key == queue_key(0.7, breached=False)
    assert item.claimed_by is None and not item.sla_breached


def test_an_item_no_labeler_scored_waits_for_rereview_with_the_top_score(labeler):
    source = SourceFactory(labelers=[labeler])
    item = decided_item(source, versions=[version(labeler, 1)], score=None)
    items_send_for_rereview(item_ids=[item.pk], requested_by=UserFactory())
    item.refresh_from_db()
    assert item.queue_score == 1.0


def test_sending_for_rereview_twice_moves_the_items_once(labeler):
    source = SourceFactory(labelers=[labeler])
    item = decided_item(source, versions=[version(labeler, 1)])
    admin = UserFactory()
    assert items_send_for_rereview(item_ids=[item.pk], requested_by=admin) == 1
    assert items_send_for_rereview(item_ids=[item.pk], requested_by=admin) == 0


def test_only_decided_items_are_sent_for_rereview(labeler):
    source = SourceFactory(labelers=[labeler])
    waiting = ItemFactory(source=source)
    assert items_send_for_rereview(item_ids=[waiting.pk], requested_by=UserFactory()) == 0
    waiting.refresh_from_db()
    assert waiting.status == Item.Status.FLAGGED


def test_the_labeler_page_links_to_the_rereview_count(client, staff, labeler):
    page = client.get(reverse("manage_labeler", args=[labeler.pk])).content.decode()
    assert reverse("manage_labeler_rereview", args=[labeler.pk]) in page


def test_the_rereview_page_shows_the_count_first_and_changes_nothing(client, staff, labeler):
    source = SourceFactory(labelers=[labeler])
    items = [decided_item(source, versions=[version(labeler, 1)]) for _ in range(3)]
    response = client.get(reverse("manage_labeler_rereview", args=[labeler.pk]))
    page = response.content.decode()
    assert "<strong>3</strong> items" in page
    assert 'name="count" value="3"' in page
    assert all(
        status == Item.Status.DECIDED
        for status in Item.objects.filter(pk__in=[i.pk for i in items]).values_list(
            "status", flat=True
        )
    )


def test_confirming_the_count_sends_the_items_for_rereview(client, staff, labeler):
    source = SourceFactory(labelers=[labeler])
    items = [decided_item(source, versions=[version(labeler, 1)]) for _ in range(2)]
    url = reverse("manage_labeler_rereview", args=[labeler.pk])
    response = client.post(url, {"count": "2"})
    assert response.status_code == 302
    assert set(Item.objects.filter(status=Item.Status.REREVIEW).values_list("pk", flat=True)) == {
        i.pk for i in items
    }


def test_a_count_that_changed_meanwhile_is_shown_again_and_nothing_moves(client, staff, labeler):
    source = SourceFactory(labelers=[labeler])
    url = reverse("manage_labeler_rereview", args=[labeler.pk])
    decided_item(source, versions=[version(labeler, 1)])
    decided_item(source, versions=[version(labeler, 1)])  # arrives after the admin looked
    response = client.post(url, {"count": "1"})
    page = response.content.decode()
    assert response.status_code == 200
    assert 'id="rereview-changed"' in page and 'name="count" value="2"' in page
    assert not Item.objects.filter(status=Item.Status.REREVIEW).exists()


def test_with_nothing_to_send_the_page_says_so_and_offers_no_button(client, staff, labeler):
    url = reverse("manage_labeler_rereview", args=[labeler.pk])
    page = client.post(url, {"count": "0"}).content.decode()
    assert "<strong>0</strong> items" in page
    assert 'id="rereview-form"' not in page and 'id="rereview-changed"' not in page


def test_the_rereview_page_is_refused_to_reviewers_who_are_not_staff(client, labeler):
    client.force_login(UserFactory())
    url = reverse("manage_labeler_rereview", args=[labeler.pk])
    assert client.get(url).status_code == 403
    assert client.post(url, {"count": "0"}).status_code == 403


def rereview_one(labeler):
    source = SourceFactory(labelers=[labeler])
    item = decided_item(source, versions=[version(labeler, 1)])
    items_send_for_rereview(item_ids=[item.pk], requested_by=UserFactory())
    return item


def test_an_item_sent_for_rereview_shows_in_the_queue_with_its_tag(client, labeler):
    item = rereview_one(labeler)
    reviewer = UserFactory()
    page, _ = queue_page(reviewer=reviewer, filters=QueueFilter())
    assert [i.pk for i in page] == [item.pk]
    client.force_login(reviewer)
    html = client.get(reverse("queue")).content.decode()
    assert 'class="tag tag-rereview"' in html


def test_an_item_sent_for_rereview_can_be_claimed_and_its_page_says_why(client, labeler):
    item = rereview_one(labeler)
    reviewer = UserFactory()
    assert item_claim(item=item, reviewer=reviewer)
    client.force_login(reviewer)
    html = client.get(reverse("item", args=[item.pk])).content.decode()
    assert 'id="why-rereview"' in html


def test_deciding_an_item_again_adds_a_decision_and_keeps_the_old_one(client, labeler):
    item = rereview_one(labeler)
    reviewer = UserFactory()
    client.force_login(reviewer)
    response = client.post(
        reverse("item", args=[item.pk]),
        {
            "revision": str(item.revision),
            "action": "remove",
            "reason_remove": reason_id("remove"),
            "decisions_seen": "1",
        },
    )
    assert response.status_code == 302
    item.refresh_from_db()
    assert item.status == Item.Status.DECIDED
    actions = list(item.decisions.order_by("id").values_list("action", "status_before"))
    assert actions == [("approve", "flagged"), ("remove", "rereview")]


def test_undoing_the_new_decision_puts_the_item_back_in_the_queue_for_rereview(labeler):
    item = rereview_one(labeler)
    reviewer = UserFactory()
    decision = decision_record(
        item=item, reviewer=reviewer, action="remove", reason_id=reason_id("remove")
    )
    decision_undo(decision=decision, reviewer=reviewer)
    item.refresh_from_db()
    assert item.status == Item.Status.REREVIEW
    assert item.queue_key == queue_key(item.violation_score, breached=False)
