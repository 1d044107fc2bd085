import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from moderation.errors import ClaimConflict
from moderation.filters import QueueFilter
from moderation.models import Decision, Item
from moderation.selectors.queue import queue_page
from moderation.services.claims import item_claim
from moderation.services.decisions import decision_record
from moderation.tests.factories import LabelerFactory, SourceFactory, UserFactory, reason_id
from moderation.tests.media import png_data_url

pytestmark = pytest.mark.django_db

# The whole queue: an admin sees every source.
ADMIN = get_user_model()(is_staff=True)


def flagged(post_webhook, source, text, external_id=None):
    response = post_webhook(source, {"external_id": external_id or text, "content_text": text})
    return Item.objects.get(pk=response.json()["id"])


def test_the_queue_is_ordered_by_violation_score(fake_api, post_webhook, source, client, reviewer):
    low = flagged(post_webhook, source, "hate conf=0.62")
    high = flagged(post_webhook, source, "hate conf=0.97")
    mid = flagged(post_webhook, source, "hate conf=0.80")
    flagged(post_webhook, source, "nice conf=0.99")  # a confident "no" never enters the queue
    items, _ = queue_page(reviewer=ADMIN, filters=QueueFilter())
    assert [i.pk for i in items] == [high.pk, mid.pk, low.pk]
    page = client.get("/").content.decode()
    assert (
        page.index(f'data-item="{high.pk}"')
        < page.index(f'data-item="{mid.pk}"')
        < page.index(f'data-item="{low.pk}"')
    )


def test_with_several_labelers_the_highest_violation_score_wins(fake_api, post_webhook, db):
    source = SourceFactory(labelers=[LabelerFactory(), LabelerFactory(criteria="[invert] hate")])
    item = flagged(post_webhook, source, "nice words conf=0.58")
    item.refresh_from_db()
    assert sorted(item.labels.values_list("label", flat=True)) == ["0", "1"]
    assert item.status == "flagged"  # the inverted labeler said "1" at 0.58
    assert item.violation_score == pytest.approx(0.58)
    calm = flagged(post_webhook, SourceFactory(), "nice words conf=0.58")
    calm.refresh_from_db()
    assert calm.status == "labeled" and calm.violation_score == pytest.approx(0.42)


def test_queue_pages_follow_each_other_without_gaps(fake_api, post_webhook, source):
    made = [flagged(post_webhook, source, f"hate {n} conf=0.{60 + n % 3}") for n in range(7)]
    seen, after = [], None
    while True:
        page, after = queue_page(reviewer=ADMIN, filters=QueueFilter(), after=after, size=3)
        seen += [i.pk for i in page]
        if after is None:
            break
    assert sorted(seen) == sorted(i.pk for i in made) and len(seen) == 7


def test_content_is_escaped_on_the_item_page(fake_api, post_webhook, source, client, reviewer):
    item = flagged(post_webhook, source, "hate <script>alert(1)</script>")
    page = client.get(f"/items/{item.pk}/").content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_images_are_blurred_until_clicked(fake_api, post_webhook, source, client, reviewer):
    response = post_webhook(
        source, {"external_id": "i", "content_text": "hate", "content_image": png_data_url()}
    )
    item_id = response.json()["id"]
    page = client.get(f"/items/{item_id}/").content.decode()
    assert 'class="media blurred"' in page
    image = client.get(f"/items/{item_id}/image/")
    assert image["Content-Type"] == "image/png" and image["X-Content-Type-Options"] == "nosniff"


def test_deciding_records_the_decision_and_leaves_the_queue(
    fake_api, post_webhook, source, client, reviewer
):
    item = flagged(post_webhook, source, "hate")
    harassment = reason_id("remove")
    response = client.post(
        f"/items/{item.pk}/", {"revision": "1", "action": "remove", "reason_remove": harassment}
    )
    assert response.status_code == 302
    item.refresh_from_db()
    assert item.status == "decided"
    decision = item.decisions.get()
    assert (decision.action, decision.reason_choice_id, decision.reviewer) == (
        "remove",
        harassment,
        reviewer,
    )
    assert decision.reason == "Hate or harassment"
    assert queue_page(reviewer=ADMIN, filters=QueueFilter())[0] == []


def test_a_changed_decision_is_a_new_record(fake_api, post_webhook, source, reviewer):
    item = flagged(post_webhook, source, "hate")
    decision_record(item=item, reviewer=reviewer, action="remove", reason_id=reason_id("remove"))
    decision_record(item=item, reviewer=reviewer, action="approve", reason="context")
    assert list(item.decisions.values_list("action", flat=True)) == ["remove", "approve"]


def test_two_reviewers_never_decide_the_same_item(fake_api, post_webhook, source, reviewer):
    other = UserFactory()
    item = flagged(post_webhook, source, "hate")
    assert item_claim(item=item, reviewer=reviewer)
    assert not item_claim(item=item, reviewer=other)
    with pytest.raises(ClaimConflict):
        decision_record(item=item, reviewer=other, action="approve")
    Item.objects.filter(pk=item.pk).update(claim_expires_at=timezone.now())
    assert item_claim(item=item, reviewer=other)


def test_next_skips_items_claimed_by_others(fake_api, post_webhook, source, client, reviewer):
    first = flagged(post_webhook, source, "hate conf=0.9")
    second = flagged(post_webhook, source, "hate conf=0.8")
    item_claim(item=first, reviewer=UserFactory())
    response = client.get("/queue/next/")
    assert response.url == f"/items/{second.pk}/"


def test_the_queue_needs_a_reviewer(client, db):
    assert client.get("/").status_code == 302
    client.force_login(UserFactory(reviewer=False))
    assert client.get("/").status_code == 403


def test_the_api_returns_state_labels_and_decisions(
    fake_api, post_webhook, source, client, reviewer
):
    item = flagged(post_webhook, source, "hate conf=0.9")
    decision_record(
        item=item, reviewer=reviewer, action=Decision.Action.REMOVE, reason_id=reason_id("remove")
    )
    auth = {"Authorization": f"Bearer {source._token}"}
    data = client.get(f"/api/items/{item.pk}/", headers=auth).json()
    assert data["status"] == "decided"
    assert data["labels"][0]["label"] == "1" and data["labels"][0]["confidence"] == 0.9
    assert data["decision"]["action"] == "remove"
    by_external = client.get("/api/items/", {"external_id": item.external_id}, headers=auth).json()
    assert by_external["id"] == item.pk


def test_another_sources_token_sees_404(fake_api, post_webhook, source, client):
    item = flagged(post_webhook, source, "hate")
    other = SourceFactory()
    response = client.get(
        f"/api/items/{item.pk}/", headers={"Authorization": f"Bearer {other._token}"}
    )
    assert response.status_code == 404


def test_the_api_needs_a_token(client, db):
    assert client.get("/api/items/1/").status_code == 401
    assert client.get("/api/items/1/", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_the_queue_shows_labeling_stuck_for_the_api_key(
    fake_api, post_webhook, source, client, reviewer, settings
):
    settings.ZENTROPI_API_KEY = ""
    flagged(post_webhook, source, "anything")
    page = client.get("/").content.decode()
    assert "1 label waiting for a valid API key" in page


def test_a_decision_made_meanwhile_is_not_silently_overridden(
    fake_api, post_webhook, source, client, reviewer
):
    item = flagged(post_webhook, source, "hate")
    page = client.get(f"/items/{item.pk}/").content.decode()
    assert 'name="decisions_seen" value="0"' in page
    # The reviewer's claim expires; someone else takes the item and approves it.
    Item.objects.filter(pk=item.pk).update(claim_expires_at=timezone.now())
    decision_record(item=item, reviewer=UserFactory(), action="approve")
    response = client.post(
        f"/items/{item.pk}/",
        {
            "revision": "1",
            "action": "remove",
            "reason_remove": reason_id("remove"),
            "decisions_seen": "0",
        },
        follow=True,
    )
    assert "decided by someone else" in response.content.decode()
    assert list(item.decisions.values_list("action", flat=True)) == ["approve"]


def test_the_item_page_says_which_labeler_and_policy_flagged_it(
    fake_api, post_webhook, source, client, reviewer
):
    item = flagged(post_webhook, source, "hate conf=0.93")
    version = item.labels.get().labeler_version
    version.criteria_text = "Flag <hate> against a group & threats."
    version.save()
    page = client.get(f"/items/{item.pk}/").content.decode()
    why = page.split('id="why-flagged"')[1].split("</section>")[0]
    assert f"{version.labeler.name}</strong> v{version.number}" in why
    assert "label 1" in why and "confidence 0.930" in why
    # The policy text on demand, escaped.
    assert "<details" in why and "Flag &lt;hate&gt; against a group &amp; threats." in why
