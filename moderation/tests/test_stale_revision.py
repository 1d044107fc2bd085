"""A decision only ever applies to what the reviewer saw: every form that decides carries the
revision it was rendered for, and an edit arriving while the page is open refuses the
decision (nothing recorded, nothing sent to the product) and shows the new revision."""

import itertools

import pytest

from moderation.errors import StaleRevision
from moderation.intake import IntakePayload
from moderation.models import CallbackDelivery, GoldenAnswer, GoldenItem, Item, Source
from moderation.services.decisions import decision_record, decision_undo
from moderation.services.golden import golden_answer_record, golden_answer_serve, golden_item_mark
from moderation.services.items import item_ingest
from moderation.tests.factories import ItemFactory, UserFactory, reason_id

pytestmark = pytest.mark.django_db

EDITED = "This post was edited while you had it open: here is the new version"
_webhook_ids = itertools.count()


def queued(**fields) -> Item:
    """A flagged item whose product takes decisions by callback: whatever is decided is sent."""
    item = ItemFactory(**fields)
    Source.objects.filter(pk=item.source_id).update(callback_url="https://product.example/cb")
    item.source.refresh_from_db()
    return item


def edit(item: Item, text: str) -> Item:
    """The product sends the same external_id with new content (as the webhook does), and
    the labelers flag the new revision again."""
    item_ingest(
        source=item.source,
        payload=IntakePayload(external_id=item.external_id, content_text=text),
        webhook_id=f"msg_edit_{next(_webhook_ids)}",
    )
    Item.objects.filter(pk=item.pk).update(status=Item.Status.FLAGGED, violation_score=0.9)
    item.refresh_from_db()
    return item


def nothing_recorded(item: Item, *, decisions: int = 0, deliveries: int | None = None) -> None:
    """No decision beyond the `decisions` made before, and nothing new to send to the product
    (`deliveries` made before: one per earlier decision, unless they were internal)."""
    assert item.decisions.count() == decisions
    expected = decisions if deliveries is None else deliveries
    assert CallbackDelivery.objects.filter(decision__item=item).count() == expected


# --- The services ---------------------------------------------------------------------------


def test_a_decision_about_a_revision_no_longer_current_is_refused(reviewer):
    item = queued(content_text="have a nice day")
    edit(item, "I know where you live")
    with pytest.raises(StaleRevision, match="you saw revision 1, it is at revision 2"):
        decision_record(item=item, reviewer=reviewer, action="approve", revision=1)
    nothing_recorded(item)
    # About the revision the reviewer saw, it is recorded on it.
    decision = decision_record(item=item, reviewer=reviewer, action="approve", revision=2)
    assert decision.revision == 2


def test_an_escalation_of_an_earlier_revision_is_refused(reviewer):
    item = queued()
    edit(item, "other words")
    with pytest.raises(StaleRevision):
        decision_record(
            item=item,
            reviewer=reviewer,
            action="escalate",
            reason_id=reason_id("escalate"),
            revision=1,
        )
    nothing_recorded(item)


def test_a_golden_answer_about_an_earlier_revision_is_refused(reviewer):
    item = queued()
    decision_record(item=item, reviewer=UserFactory(), action="approve")
    golden = golden_item_mark(item=item, expected_action="approve", created_by=None)
    served = golden_answer_serve(golden=golden, reviewer=reviewer)
    edit(item, "edited after it was served")
    with pytest.raises(StaleRevision):
        golden_answer_record(answer=served, reviewer=reviewer, action="approve", revision=1)
    assert GoldenAnswer.objects.get().answered_at is None


def test_marking_golden_a_revision_the_admin_did_not_see_is_refused(reviewer):
    item = queued()
    decision_record(item=item, reviewer=reviewer, action="approve")
    edit(item, "edited and approved again")
    decision_record(item=item, reviewer=reviewer, action="approve")
    with pytest.raises(StaleRevision):
        golden_item_mark(item=item, expected_action="approve", created_by=None, revision=1)
    assert not GoldenItem.objects.exists()


def test_an_undo_after_an_edit_is_refused_as_stale(reviewer):
    item = queued()
    mine = decision_record(item=item, reviewer=reviewer, action="approve", revision=1)
    edit(item, "edited after the approval")
    with pytest.raises(StaleRevision):
        decision_undo(decision=mine, reviewer=reviewer)
    nothing_recorded(item, decisions=1)


# --- The pages --------------------------------------------------------------------------------


def test_the_decide_form_carries_the_revision_it_shows(client, reviewer):
    item = edit(queued(), "second words")
    page = client.get(f"/items/{item.pk}/").content.decode()
    assert 'name="revision" value="2"' in page


def test_a_removal_made_on_the_old_text_is_refused_and_the_new_text_shown(
    fake_api, post_webhook, source, client, reviewer
):
    """The issue's reproduction: qa-edit-1 is opened, edited by the product, and the
    reviewer's page (still the old text) removes it."""
    Source.objects.filter(pk=source.pk).update(callback_url="https://product.example/cb")
    sent = post_webhook(source, {"external_id": "qa-edit-1", "content_text": "I hate you"})
    item = Item.objects.get(pk=sent.json()["id"])
    page = client.get(f"/items/{item.pk}/").content.decode()
    assert 'name="revision" value="1"' in page
    post_webhook(source, {"external_id": "qa-edit-1", "content_text": "I hate you, and the rest"})
    response = client.post(
        f"/items/{item.pk}/",
        {
            "action": "remove",
            "reason_remove": reason_id("remove"),
            "decisions_seen": "0",
            "revision": "1",
            "next": "1",
        },
    )
    assert response.status_code == 409
    page = response.content.decode()
    assert EDITED in page and "Your removal was not recorded" in page
    assert "I hate you, and the rest" in page  # the new revision, at once
    assert 'name="revision" value="2"' in page  # and a form to decide it
    nothing_recorded(item)


def test_bait_and_switch_an_approval_never_covers_the_edit(client, reviewer):
    item = queued(content_text="what a lovely photo")
    client.get(f"/items/{item.pk}/")
    edit(item, "now something hateful")
    response = client.post(
        f"/items/{item.pk}/", {"action": "approve", "decisions_seen": "0", "revision": "1"}
    )
    assert response.status_code == 409
    assert "now something hateful" in response.content.decode()
    item.refresh_from_db()
    assert item.status == Item.Status.FLAGGED
    nothing_recorded(item)


def test_an_escalation_made_on_the_old_text_is_refused(client, reviewer):
    item = queued()
    client.get(f"/items/{item.pk}/")
    edit(item, "a new text")
    response = client.post(
        f"/items/{item.pk}/",
        {
            "action": "escalate",
            "reason_escalate": reason_id("escalate"),
            "decisions_seen": "0",
            "revision": "1",
        },
    )
    assert response.status_code == 409
    assert "Your escalation was not recorded" in response.content.decode()
    nothing_recorded(item)


def test_a_seniors_decision_on_an_escalated_item_edited_since_is_refused(client):
    senior = UserFactory(senior=True)
    client.force_login(senior)
    item = queued()
    decision_record(
        item=item, reviewer=UserFactory(), action="escalate", reason_id=reason_id("escalate")
    )
    page = client.get(f"/items/{item.pk}/").content.decode()
    assert 'name="revision" value="1"' in page
    edit(item, "edited while escalated")
    response = client.post(
        f"/items/{item.pk}/", {"action": "approve", "decisions_seen": "1", "revision": "1"}
    )
    assert response.status_code == 409
    nothing_recorded(item, decisions=1, deliveries=0)  # an escalation is never sent


def test_a_decision_that_does_not_say_its_revision_is_refused(client, reviewer):
    item = queued()
    response = client.post(f"/items/{item.pk}/", {"action": "approve"}, follow=True)
    assert "did not say which version of the post you saw" in response.content.decode()
    nothing_recorded(item)


def test_a_golden_answer_made_on_the_old_text_is_refused(client, reviewer):
    item = queued(content_text="golden words")
    decision_record(item=item, reviewer=UserFactory(), action="approve")
    golden = golden_item_mark(item=item, expected_action="approve", created_by=None)
    golden_answer_serve(golden=golden, reviewer=reviewer)
    page = client.get(f"/items/{item.pk}/").content.decode()
    assert 'name="revision" value="1"' in page and 'name="decisions_seen" value="0"' in page
    edit(item, "golden words, edited")
    response = client.post(
        f"/items/{item.pk}/", {"action": "approve", "decisions_seen": "0", "revision": "1"}
    )
    assert response.status_code == 409
    assert EDITED in response.content.decode()
    assert "golden words, edited" in response.content.decode()
    assert GoldenAnswer.objects.get().answered_at is None
    nothing_recorded(item, decisions=1)


def test_an_undo_after_an_edit_says_so_and_shows_the_new_text(client, reviewer):
    item = queued()
    client.post(f"/items/{item.pk}/", {"action": "approve", "decisions_seen": "0", "revision": "1"})
    decision = item.decisions.get()
    edit(item, "edited right after the approval")
    response = client.post(f"/decisions/{decision.pk}/undo/")
    assert response.status_code == 409
    page = response.content.decode()
    assert EDITED in page and "Your undo was not recorded" in page
    assert "edited right after the approval" in page
    assert list(item.decisions.values_list("action", flat=True)) == ["approve"]


def test_golden_marking_on_a_stale_page_is_refused(client):
    admin = UserFactory(is_staff=True)
    client.force_login(admin)
    item = queued()
    decision_record(item=item, reviewer=admin, action="approve")
    page = client.get(f"/items/{item.pk}/").content.decode()
    assert 'id="golden-mark"' in page and 'name="revision" value="1"' in page
    edit(item, "edited, then approved again")
    decision_record(item=item, reviewer=admin, action="approve")
    response = client.post(
        f"/items/{item.pk}/golden/", {"expected_action": "approve", "revision": "1"}, follow=True
    )
    assert "this post was edited since you opened the page" in response.content.decode()
    assert not GoldenItem.objects.exists()


def test_golden_marking_that_does_not_say_its_revision_is_refused(client):
    admin = UserFactory(is_staff=True)
    client.force_login(admin)
    item = queued()
    decision_record(item=item, reviewer=admin, action="approve")
    response = client.post(f"/items/{item.pk}/golden/", {"expected_action": "approve"}, follow=True)
    assert "Not marked: the form did not say which version of the post you saw" in (
        response.content.decode()
    )
    assert not GoldenItem.objects.exists()
