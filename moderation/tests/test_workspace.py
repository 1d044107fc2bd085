"""The reviewer workspace on the server: roles, escalation, source restrictions, reasons,
undo, skip and release, my decisions, exposure, media ranges and the security headers."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.core.management import call_command
from django.utils import timezone

from moderation.errors import ClaimConflict, NotAllowed
from moderation.models import Decision, Item, MediaReveal, ReviewerSettings
from moderation.selectors.decisions import decision_actions
from moderation.selectors.items import item_api_dict
from moderation.selectors.queue import escalated_items
from moderation.services.claims import item_claim, item_release
from moderation.services.decisions import decision_record, decision_undo
from moderation.services.reviewers import reviewer_settings_save
from moderation.tests.factories import ItemFactory, SourceFactory, UserFactory, reason_id
from moderation.tests.media import png_data_url

pytestmark = pytest.mark.django_db


@pytest.fixture
def senior(db):
    return UserFactory(senior=True)


def escalated_item(**kwargs):
    item = ItemFactory(**kwargs)
    decision_record(
        item=item, reviewer=UserFactory(), action="escalate", reason_id=reason_id("escalate")
    )
    item.refresh_from_db()
    return item


def test_roles_and_reasons_exist_after_migrate_alone(db):
    call_command("migrate", verbosity=0)
    perms = {
        group.name: set(group.permissions.values_list("codename", flat=True))
        for group in Group.objects.filter(name__in=["reviewer", "senior"])
    }
    assert perms == {
        "reviewer": {"review_item"},
        "senior": {"review_item", "review_escalated"},
    }
    assert decision_actions()[1].reasons  # remove has reasons to pick


def test_a_reviewer_cannot_open_the_escalated_queue_or_an_escalated_item(client, reviewer):
    item = escalated_item()
    assert client.get("/escalated/").status_code == 403
    assert client.get("/escalated/next/").status_code == 403
    assert client.get(f"/items/{item.pk}/").status_code == 403
    response = client.post(
        f"/items/{item.pk}/",
        {"revision": "1", "action": "approve", "reason_approve": reason_id("approve")},
    )
    assert response.status_code == 403
    assert client.post(f"/items/{item.pk}/skip/").status_code == 403
    item.refresh_from_db()
    assert item.status == "escalated" and item.decisions.count() == 1


def test_a_senior_sees_who_escalated_and_why_and_closes_it(client, senior):
    item = escalated_item(violation_score=0.7)
    client.force_login(senior)
    queue = client.get("/escalated/").content.decode()
    assert f'data-item="{item.pk}"' in queue
    page = client.get(f"/items/{item.pk}/").content.decode()
    escalator = item.decisions.get().reviewer.username
    assert f"Escalated by <strong>{escalator}</strong>" in page
    assert "Unsure: needs a senior" in page
    response = client.post(
        f"/items/{item.pk}/?status=escalated",
        {"revision": "1", "action": "remove", "reason_remove": reason_id("remove"), "next": "1"},
    )
    assert response.status_code == 302
    assert response.url == "/queue/next/?status=escalated"
    item.refresh_from_db()
    assert item.status == "decided"
    assert list(item.decisions.values_list("action", flat=True)) == ["escalate", "remove"]


def test_escalated_items_keep_their_score_so_the_seniors_queue_is_sorted(senior):
    low = escalated_item(violation_score=0.6)
    high = escalated_item(violation_score=0.95)
    assert list(escalated_items(reviewer=senior)) == [high, low]


def test_a_reviewer_limited_to_some_sources_cannot_reach_another_source(client, reviewer):
    mine, other = SourceFactory(), SourceFactory()
    ReviewerSettings.objects.create(user=reviewer).sources.set([mine])
    theirs = ItemFactory(source=other)
    assert client.get(f"/items/{theirs.pk}/").status_code == 404
    assert client.get(f"/items/{theirs.pk}/image/").status_code == 404
    assert (
        client.post(f"/items/{theirs.pk}/", {"revision": "1", "action": "approve"}).status_code
        == 404
    )
    assert client.post(f"/items/{theirs.pk}/reveal/").status_code == 404
    assert client.get(f"/items/{ItemFactory(source=mine).pk}/").status_code == 200
    assert not theirs.decisions.exists()


def test_a_reason_is_required_to_remove_or_escalate_but_not_to_approve(client, reviewer):
    item = ItemFactory()
    response = client.post(f"/items/{item.pk}/", {"revision": "1", "action": "remove"}, follow=True)
    assert "a reason is required to remove" in response.content.decode()
    assert not item.decisions.exists()
    # A reason of another action is refused too.
    client.post(
        f"/items/{item.pk}/",
        {"revision": "1", "action": "remove", "reason_remove": reason_id("approve")},
    )
    assert not item.decisions.exists()
    client.post(f"/items/{item.pk}/", {"revision": "1", "action": "approve"})
    assert item.decisions.get().action == "approve"


def test_an_inactive_reason_cannot_be_picked(reviewer):
    item = ItemFactory()
    spam = reason_id("remove", 3)
    Decision._meta.get_field("reason_choice").related_model.objects.filter(pk=spam).update(
        active=False
    )
    with pytest.raises(ValueError, match="no longer in use"):
        decision_record(item=item, reviewer=reviewer, action="remove", reason_id=spam)


def test_undo_records_a_reversal_and_hands_the_item_back(client, reviewer):
    item = ItemFactory()
    client.post(
        f"/items/{item.pk}/",
        {"revision": "1", "action": "remove", "reason_remove": reason_id("remove"), "next": 1},
    )
    decision = item.decisions.get()
    page = client.get("/queue/next/", follow=True).content.decode()
    assert f'action="/decisions/{decision.pk}/undo/"' in page and 'aria-keyshortcuts="u"' in page
    response = client.post(f"/decisions/{decision.pk}/undo/")
    assert response.url == f"/items/{item.pk}/"
    item.refresh_from_db()
    assert (item.status, item.claimed_by, item.decided_at) == ("flagged", reviewer, None)
    assert list(item.decisions.values_list("action", "undoes")) == [
        ("remove", None),
        ("undo", decision.pk),
    ]
    assert item_api_dict(item)["decision"] is None


def test_undo_is_refused_after_someone_else_decided_or_too_late(reviewer, settings):
    item = ItemFactory()
    mine = decision_record(item=item, reviewer=reviewer, action="approve")
    with pytest.raises(NotAllowed):
        decision_undo(decision=mine, reviewer=UserFactory())
    Decision.objects.filter(pk=mine.pk).update(
        created_at=timezone.now() - timedelta(seconds=settings.REVIEW_UNDO_SECONDS + 1)
    )
    mine.refresh_from_db()
    with pytest.raises(NotAllowed, match="too late"):
        decision_undo(decision=mine, reviewer=reviewer)
    item2 = ItemFactory()
    first = decision_record(item=item2, reviewer=reviewer, action="approve")
    decision_record(item=item2, reviewer=UserFactory(), action="approve")
    with pytest.raises(ClaimConflict):
        decision_undo(decision=first, reviewer=reviewer)


def test_undoing_a_seniors_decision_puts_the_item_back_in_the_escalated_queue(senior):
    item = escalated_item()
    closing = decision_record(
        item=item, reviewer=senior, action="approve", may_decide_escalated=True
    )
    decision_undo(decision=closing, reviewer=senior)
    item.refresh_from_db()
    assert item.status == "escalated" and item.queue_score == pytest.approx(0.9)


def test_skip_lets_go_and_next_does_not_hand_it_back(client, reviewer):
    first = ItemFactory(violation_score=0.9)
    second = ItemFactory(violation_score=0.8)
    assert client.get("/queue/next/").url == f"/items/{first.pk}/"
    response = client.post(f"/items/{first.pk}/skip/")
    assert response.url.startswith("/queue/next/")
    assert client.get(response.url).url == f"/items/{second.pk}/"
    first.refresh_from_db()
    assert first.claimed_by is None  # free for others at once
    other = UserFactory()
    assert item_claim(item=first, reviewer=other)


def test_release_lets_go_and_returns_to_the_queue(client, reviewer):
    item = ItemFactory()
    client.get(f"/items/{item.pk}/")
    item.refresh_from_db()
    assert item.claimed_by == reviewer
    response = client.post(f"/items/{item.pk}/release/?source={item.source_id}")
    assert response.url == f"/?source={item.source_id}"
    item.refresh_from_db()
    assert item.claimed_by is None


def test_my_decisions_lists_only_mine_newest_first(client, reviewer):
    a, b, theirs = ItemFactory(), ItemFactory(), ItemFactory()
    decision_record(item=a, reviewer=reviewer, action="approve")
    decision_record(item=b, reviewer=reviewer, action="remove", reason_id=reason_id("remove"))
    decision_record(item=theirs, reviewer=UserFactory(), action="approve")
    page = client.get("/me/decisions/").content.decode()
    assert page.index(f'href="/items/{b.pk}/"') < page.index(f'href="/items/{a.pk}/"')
    assert f'href="/items/{theirs.pk}/"' not in page


def test_reveals_are_counted_once_per_item_and_shown_to_the_reviewer(
    client, reviewer, fake_api, post_webhook, source
):
    response = post_webhook(
        source, {"external_id": "pic", "content_text": "hate", "content_image": png_data_url()}
    )
    item_id = response.json()["id"]
    for _ in range(2):
        assert client.post(f"/items/{item_id}/reveal/").status_code == 204
    assert MediaReveal.objects.filter(reviewer=reviewer).count() == 1
    assert "1 seen today" in client.get("/").content.decode()


def test_over_the_exposure_budget_the_workspace_proposes_a_break(client, reviewer):
    reviewer_settings_save(reviewer=reviewer, exposure_budget_reveals=2)
    for item in (ItemFactory(), ItemFactory()):
        MediaReveal.objects.create(reviewer=reviewer, item=item)
    page = client.get("/me/decisions/").content.decode()
    assert 'id="break-prompt"' in page
    client.post("/me/settings/", {"break": "1"})
    assert 'id="break-prompt"' not in client.get("/me/decisions/").content.decode()
    assert "2 seen today" in client.get("/me/decisions/").content.decode()


def test_media_settings_change_how_the_item_page_shows_media(
    client, reviewer, fake_api, post_webhook, source
):
    response = post_webhook(
        source, {"external_id": "pic", "content_text": "hate", "content_image": png_data_url()}
    )
    item_id = response.json()["id"]
    assert 'class="media blurred"' in client.get(f"/items/{item_id}/").content.decode()
    client.post("/me/settings/", {"grayscale_media": "on", "mute_video": "on"})
    page = client.get(f"/items/{item_id}/").content.decode()
    assert 'class="media grayscale"' in page
    # Shown without a click: still counted as seen.
    assert MediaReveal.objects.filter(reviewer=reviewer, item_id=item_id).exists()


def test_media_answers_range_requests(client, reviewer, fake_api, post_webhook, source):
    response = post_webhook(
        source, {"external_id": "pic", "content_text": "x", "content_image": png_data_url()}
    )
    url = f"/items/{response.json()['id']}/image/"
    whole = b"".join(client.get(url).streaming_content)
    part = client.get(url, headers={"Range": "bytes=2-9"})
    assert part.status_code == 206
    assert part["Content-Range"] == f"bytes 2-9/{len(whole)}"
    assert b"".join(part.streaming_content) == whole[2:10]
    assert part["Content-Security-Policy"] == "sandbox; default-src 'none'"
    suffix = client.get(url, headers={"Range": "bytes=-4"})
    assert b"".join(suffix.streaming_content) == whole[-4:]
    past = client.get(url, headers={"Range": f"bytes={len(whole)}-"})
    assert past.status_code == 416 and past["Content-Range"] == f"bytes */{len(whole)}"


def test_every_html_page_has_a_strict_content_security_policy(client, reviewer):
    item = ItemFactory()
    pages = ["/", f"/items/{item.pk}/", "/me/decisions/", "/me/settings/"]
    for url in pages:
        policy = client.get(url)["Content-Security-Policy"]
        assert "script-src 'self'" in policy and "unsafe" not in policy, url
    client.logout()
    assert "script-src 'self'" in client.get("/accounts/login/")["Content-Security-Policy"]
    admin = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(admin)
    assert "script-src 'self'" in client.get("/admin/")["Content-Security-Policy"]


def test_the_team_page_is_for_admins(client, reviewer):
    assert client.get("/team/").status_code == 403
    client.force_login(UserFactory(is_staff=True))
    assert client.get("/team/").status_code == 200


def test_hostile_text_is_escaped_on_the_item_page(client, reviewer):
    item = ItemFactory(content_text='<script>alert(1)</script><img src=x onerror="alert(2)">')
    page = client.get(f"/items/{item.pk}/").content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_the_item_page_declares_each_shortcut_on_its_control(client, reviewer):
    page = client.get(f"/items/{ItemFactory().pk}/").content.decode()
    for key in ("a", "r", "e", "s", "q", "1"):
        assert f'aria-keyshortcuts="{key}"' in page
    assert "Approve (a)" in page and "Skip (s)" in page
    assert "<script>" not in page.replace('<script src="/static/app.js">', "")
    assert Item.objects.get().claimed_by == reviewer


def test_a_reviewer_can_undo_their_own_escalation(client, reviewer):
    item = ItemFactory()
    client.post(
        f"/items/{item.pk}/",
        {"revision": "1", "action": "escalate", "reason_escalate": reason_id("escalate")},
    )
    escalation = item.decisions.get()
    response = client.post(f"/decisions/{escalation.pk}/undo/")
    assert response.url == f"/items/{item.pk}/"
    item.refresh_from_db()
    assert (item.status, item.claimed_by) == ("flagged", reviewer)
    assert client.get(f"/items/{item.pk}/").status_code == 200


def test_over_the_exposure_budget_next_serves_text_only_items_first(client, reviewer, settings):
    settings.MEDIA_ROOT = settings.DATA_DIR / "test-media"
    with_image = ItemFactory(violation_score=0.95, content_image="images/x.png")
    text_only = ItemFactory(violation_score=0.7)
    assert client.get("/queue/next/").url == f"/items/{with_image.pk}/"
    item_release(item=with_image, reviewer=reviewer)
    reviewer_settings_save(reviewer=reviewer, exposure_budget_reveals=1)
    MediaReveal.objects.create(reviewer=reviewer, item=with_image)
    assert client.get("/queue/next/").url == f"/items/{text_only.pk}/"
    decision_record(item=text_only, reviewer=reviewer, action="approve")
    # No text-only item left: the rest of the queue still comes.
    assert client.get("/queue/next/").url == f"/items/{with_image.pk}/"


# --- claims, visible ----------------------------------------------------------------------


def test_the_item_page_says_you_hold_the_item_and_until_when(client, reviewer, settings):
    settings.REVIEW_LEASE_SECONDS = 300
    item = ItemFactory()
    page = client.get(f"/items/{item.pk}/").content.decode()
    claim = page.split('id="claim"')[1].split("</p>")[0]
    item.refresh_from_db()
    assert item.claimed_by == reviewer
    until = timezone.localtime(item.claim_expires_at).strftime("%H:%M")
    assert "You hold this item" in claim and until in claim
    assert 'data-seconds-left="300"' in claim or 'data-seconds-left="299"' in claim


def test_an_item_held_by_someone_else_shows_who_until_when_and_no_decide_form(client, reviewer):
    item = ItemFactory()
    holder = UserFactory(username="hana")
    assert item_claim(item=item, reviewer=holder)
    item.refresh_from_db()
    page = client.get(f"/items/{item.pk}/").content.decode()
    held = page.split('id="claimed-by-other"')[1].split("</p>")[0]
    assert "hana" in held and timezone.localtime(item.claim_expires_at).strftime("%H:%M") in held
    assert 'id="decide"' not in page and 'name="action"' not in page


def test_the_escalated_list_shows_who_escalated_why_and_when(client, senior):
    item = ItemFactory()
    escalator = UserFactory(username="esme")
    decision_record(
        item=item,
        reviewer=escalator,
        action="escalate",
        reason_id=reason_id("escalate"),
        note="Looks like a <real> address",
    )
    client.force_login(senior)
    queue = client.get("/escalated/").content.decode()
    row = queue.split(f'data-item="{item.pk}"')[1].split("</tr>")[0]
    cell = row.split('class="escalation"')[1]
    assert "esme" in cell and "Unsure: needs a senior" in cell
    assert "Looks like a &lt;real&gt; address" in cell
    assert "ago" in cell  # when


def test_a_reveal_answers_with_todays_count_so_the_page_updates_it_at_once(
    client, reviewer, fake_api, post_webhook, source
):
    response = post_webhook(
        source, {"external_id": "pic", "content_text": "hate", "content_image": png_data_url()}
    )
    item_id = response.json()["id"]
    page = client.get(f"/items/{item_id}/").content.decode()
    assert 'id="exposure-today"' in page and ">0 seen today<" in page
    revealed = client.post(f"/items/{item_id}/reveal/")
    assert revealed["X-Reveals-Today"] == "1"
