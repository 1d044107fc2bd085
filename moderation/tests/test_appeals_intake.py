"""POST /webhooks/<slug>/appeals/: signed as items are; an appeal of an item's current
removal or of an account action; the same appeal_id answers the same; refusals name the
field and store nothing."""

import json
from datetime import timedelta

import pytest
from django.utils import timezone

from moderation.models import AccountAction, Appeal, Author, Decision, Item
from moderation.services.decisions import decision_record
from moderation.tests.factories import SourceFactory, UserFactory, reason_id
from testkit.signing import signed_headers

pytestmark = pytest.mark.django_db


@pytest.fixture
def reviewer():
    return UserFactory()


@pytest.fixture
def post_appeal(client):
    def post(source, payload, *, raw: bytes | None = None, headers: dict | None = None):
        body = raw if raw is not None else json.dumps(payload).encode()
        sent = headers if headers is not None else signed_headers(source._secret, body)
        return client.post(
            f"/webhooks/{source.slug}/appeals/",
            data=body,
            content_type="application/json",
            headers=sent,
        )

    return post


def decided(source, reviewer, action="remove", external_id="post-1") -> Decision:
    item = Item.objects.create(
        source=source,
        external_id=external_id,
        webhook_id=f"msg-{external_id}",
        content_text="x",
        content_hash=f"h-{external_id}",
        status=Item.Status.FLAGGED,
        queue_score=0.9,
    )
    reason = reason_id(action) if action != "approve" else None
    return decision_record(item=item, reviewer=reviewer, action=action, reason_id=reason)


def account_action(source) -> AccountAction:
    author = Author.objects.create(source=source, external_id="u-1")
    return AccountAction.objects.create(
        source=source, author=author, action="warn", active_strikes=3, decision_ids=[]
    )


def test_an_items_removal_is_appealed_with_202_pending(post_appeal, source, reviewer):
    removal = decided(source, reviewer)
    response = post_appeal(
        source, {"appeal_id": "a-1", "external_id": "post-1", "statement": "It was a joke"}
    )
    assert response.status_code == 202, response.content
    appeal = Appeal.objects.get()
    assert response.json() == {"id": appeal.pk, "status": "pending"}
    assert (appeal.decision, appeal.item_id, appeal.statement) == (
        removal,
        removal.item_id,
        "It was a joke",
    )


def test_the_same_appeal_id_again_answers_200_with_the_same_appeal(post_appeal, source, reviewer):
    decided(source, reviewer)
    body = {"appeal_id": "a-1", "external_id": "post-1", "statement": "please"}
    first = post_appeal(source, body)
    again = post_appeal(source, body)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert Appeal.objects.count() == 1


def test_an_account_action_is_appealed_by_its_id(post_appeal, source):
    action = account_action(source)
    response = post_appeal(source, {"appeal_id": "a-2", "account_action_id": action.pk})
    assert response.status_code == 202, response.content
    assert Appeal.objects.get().account_action == action


def test_an_unknown_item_is_404_naming_external_id(post_appeal, source):
    response = post_appeal(source, {"appeal_id": "a-1", "external_id": "nope"})
    assert response.status_code == 404
    assert response.json()["field"] == "external_id"
    assert not Appeal.objects.exists()


def test_an_unknown_or_other_sources_action_is_404_naming_account_action_id(post_appeal, source):
    other = account_action(SourceFactory())
    for action_id in (other.pk, other.pk + 100):
        response = post_appeal(source, {"appeal_id": "a-1", "account_action_id": action_id})
        assert response.status_code == 404
        assert response.json()["field"] == "account_action_id"
    assert not Appeal.objects.exists()


def test_an_approved_or_undecided_item_has_nothing_to_appeal_409(post_appeal, source, reviewer):
    decided(source, reviewer, action="approve", external_id="approved")
    Item.objects.create(
        source=source, external_id="waiting", webhook_id="w", content_hash="w", content_text="x"
    )
    for external_id in ("approved", "waiting"):
        response = post_appeal(source, {"appeal_id": external_id, "external_id": external_id})
        assert response.status_code == 409, response.content
        assert response.json()["field"] == "external_id"
    assert not Appeal.objects.exists()


def test_a_removal_appealed_already_is_409_under_another_appeal_id(post_appeal, source, reviewer):
    decided(source, reviewer)
    post_appeal(source, {"appeal_id": "a-1", "external_id": "post-1"})
    response = post_appeal(source, {"appeal_id": "a-2", "external_id": "post-1"})
    assert response.status_code == 409
    assert "a-1" in response.json()["error"]
    assert Appeal.objects.count() == 1


def test_a_lifted_action_has_nothing_to_appeal_409(post_appeal, source):
    action = account_action(source)
    AccountAction.objects.filter(pk=action.pk).update(lifted_at=timezone.now())
    response = post_appeal(source, {"appeal_id": "a-1", "account_action_id": action.pk})
    assert response.status_code == 409


def test_past_the_sources_appeal_window_is_422_naming_the_window(post_appeal, reviewer):
    source = SourceFactory(appeal_window_days=30)
    removal = decided(source, reviewer)
    Decision.objects.filter(pk=removal.pk).update(created_at=timezone.now() - timedelta(days=31))
    response = post_appeal(source, {"appeal_id": "a-1", "external_id": "post-1"})
    assert response.status_code == 422
    assert "30 days" in response.json()["error"]
    assert "appeal window" in response.json()["error"]
    assert not Appeal.objects.exists()
    action = account_action(source)
    AccountAction.objects.filter(pk=action.pk).update(
        created_at=timezone.now() - timedelta(days=31)
    )
    response = post_appeal(source, {"appeal_id": "a-2", "account_action_id": action.pk})
    assert response.status_code == 422 and "30 days" in response.json()["error"]


def test_a_bad_signature_is_401_and_nothing_is_stored(post_appeal, source, reviewer):
    decided(source, reviewer)
    body = json.dumps({"appeal_id": "a-1", "external_id": "post-1"}).encode()
    headers = signed_headers(SourceFactory()._secret, body)
    response = post_appeal(source, None, raw=body, headers=headers)
    assert response.status_code == 401
    assert not Appeal.objects.exists()


@pytest.mark.parametrize(
    "body, field",
    [
        ({"external_id": "post-1"}, "appeal_id"),
        ({"appeal_id": 7, "external_id": "post-1"}, "appeal_id"),
        ({"appeal_id": "x" * 256, "external_id": "post-1"}, "appeal_id"),
        ({"appeal_id": "a-1"}, "external_id"),
        ({"appeal_id": "a-1", "external_id": 5}, "external_id"),
        ({"appeal_id": "a-1", "account_action_id": "7"}, "account_action_id"),
        ({"appeal_id": "a-1", "account_action_id": True}, "account_action_id"),
        ({"appeal_id": "a-1", "account_action_id": 1, "external_id": "p"}, "account_action_id"),
        ({"appeal_id": "a-1", "external_id": "post-1", "statement": 3}, "statement"),
        ({"appeal_id": "a-1", "external_id": "post-1", "statement": "a\x00b"}, "statement"),
        ({"appeal_id": "a-1", "external_id": "post-1", "statement": "x" * 10_001}, "statement"),
        ([], "body"),
    ],
)
def test_a_broken_field_is_422_naming_it(post_appeal, source, reviewer, body, field):
    decided(source, reviewer)
    response = post_appeal(source, body)
    assert response.status_code == 422, response.content
    assert response.json()["field"] == field
    assert not Appeal.objects.exists()


def test_malformed_json_is_400(post_appeal, source):
    response = post_appeal(source, None, raw=b'{"appeal_id": ')
    assert response.status_code == 400
    assert response.json()["field"] == "body"


def test_an_account_action_id_beyond_the_databases_integers_is_422(post_appeal, source):
    response = post_appeal(source, {"appeal_id": "a-1", "account_action_id": 10**30})
    assert response.status_code == 422
    assert response.json()["field"] == "account_action_id"
