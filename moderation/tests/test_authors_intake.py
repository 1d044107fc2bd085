"""Authors from intake (the body's optional `author`) and GET /api/authors/<id>/."""

from datetime import UTC, datetime

import pytest

from labelers.models import Label
from moderation.models import Author, Item
from moderation.tests.factories import SourceFactory

pytestmark = pytest.mark.django_db


def body_with(author, external_id="p1", text="hello"):
    return {"external_id": external_id, "content_text": text, "author": author}


def stored():
    return Item.objects.count(), Label.objects.count(), Author.objects.count()


def test_an_item_with_an_author_belongs_to_that_author(fake_api, post_webhook, source):
    author = {"id": "u-1", "name": "Ada", "created_at": "2024-05-01T10:00:00Z"}
    response = post_webhook(source, body_with(author))
    assert response.status_code == 202
    item = Item.objects.select_related("author").get(pk=response.json()["id"])
    assert item.author.external_id == "u-1" and item.author.source == source
    assert item.author.name == "Ada"
    assert item.author.account_created_at == datetime(2024, 5, 1, 10, tzinfo=UTC)


def test_items_with_the_same_author_id_share_one_author(fake_api, post_webhook, source):
    post_webhook(source, body_with({"id": "u-1"}, "p1"))
    post_webhook(source, body_with({"id": "u-1"}, "p2", "other"))
    assert Author.objects.count() == 1
    assert Author.objects.get().items.count() == 2


def test_authors_never_cross_sources(fake_api, post_webhook, db):
    a, b = SourceFactory(), SourceFactory()
    post_webhook(a, body_with({"id": "u-1"}))
    post_webhook(b, body_with({"id": "u-1"}))
    assert Author.objects.filter(external_id="u-1").count() == 2


def test_an_edit_updates_the_authors_name_and_url(fake_api, post_webhook, source):
    post_webhook(source, body_with({"id": "u-1", "name": "Ada", "url": "https://x.example/a"}))
    response = post_webhook(
        source, body_with({"id": "u-1", "name": "Ada L.", "url": "https://x.example/b"}, text="v2")
    )
    assert response.json()["revision"] == 2
    author = Author.objects.get()
    assert (author.name, author.url) == ("Ada L.", "https://x.example/b")


def test_a_replayed_old_request_does_not_revert_the_name(fake_api, post_webhook, source):
    post_webhook(source, body_with({"id": "u-1", "name": "Old"}), msg_id="msg_old")
    post_webhook(source, body_with({"id": "u-1", "name": "New"}, text="v2"))
    post_webhook(source, body_with({"id": "u-1", "name": "Old"}), msg_id="msg_old")
    assert Author.objects.get().name == "New"


def test_an_edit_without_author_keeps_the_items_author(fake_api, post_webhook, source):
    post_webhook(source, body_with({"id": "u-1"}))
    post_webhook(source, {"external_id": "p1", "content_text": "v2"})
    assert Item.objects.get().author.external_id == "u-1"


def test_items_without_an_author_keep_working(fake_api, post_webhook, source):
    response = post_webhook(source, {"external_id": "p1", "content_text": "hello"})
    assert response.status_code == 202
    assert Item.objects.get().author is None and Author.objects.count() == 0


@pytest.mark.parametrize(
    ("author", "field"),
    [
        ("u-1", "author"),
        (["u-1"], "author"),
        ({}, "author.id"),
        ({"name": "Ada"}, "author.id"),
        ({"id": None}, "author.id"),
        ({"id": 12}, "author.id"),  # a number is refused, not converted
        ({"id": 12.5}, "author.id"),
        ({"id": True}, "author.id"),
        ({"id": ""}, "author.id"),
        ({"id": "x" * 256}, "author.id"),
        ({"id": "a\x00b"}, "author.id"),
        ({"id": "u", "name": 3}, "author.name"),
        ({"id": "u", "name": "n" * 256}, "author.name"),
        ({"id": "u", "url": "javascript:alert(1)"}, "author.url"),
        ({"id": "u", "url": ["https://x.example"]}, "author.url"),
        ({"id": "u", "created_at": "yesterday"}, "author.created_at"),
        ({"id": "u", "created_at": 1700000000}, "author.created_at"),
        ({"id": "u", "created_at": "0001-01-01T00:00:00"}, "author.created_at"),
    ],
)
def test_a_malformed_author_is_a_422_naming_the_field_and_stores_nothing(
    fake_api, post_webhook, source, author, field
):
    response = post_webhook(source, body_with(author))
    assert response.status_code == 422, response.content
    assert response.json()["field"] == field
    assert stored() == (0, 0, 0)


def test_an_author_id_of_255_characters_is_accepted(fake_api, post_webhook, source):
    response = post_webhook(source, body_with({"id": "x" * 255}))
    assert response.status_code == 202
    assert Author.objects.get().external_id == "x" * 255


# --- GET /api/authors/<id>/ -----------------------------------------------------------------


def api_get(client, source, author_id, token=None):
    return client.get(
        f"/api/authors/{author_id}/",
        headers={"Authorization": f"Bearer {token or source._token}"},
    )


def test_the_author_api_answers_counts_and_actions(client, fake_api, post_webhook, source):
    post_webhook(source, body_with({"id": "u-1", "name": "Ada"}, "p1"))
    post_webhook(source, body_with({"id": "u-1"}, "p2", "other"))
    response = api_get(client, source, "u-1")
    assert response.status_code == 200
    answer = response.json()
    assert answer["id"] == "u-1"
    assert (answer["items"], answer["flagged"], answer["removed"]) == (2, 0, 0)
    assert answer["active_strikes"] == 0 and answer["actions"] == []


def test_an_unknown_author_is_a_404(client, source):
    response = api_get(client, source, "nobody")
    assert response.status_code == 404 and response.json()["field"] == "id"


def test_another_sources_author_is_a_404(client, fake_api, post_webhook, db):
    a, b = SourceFactory(), SourceFactory()
    post_webhook(a, body_with({"id": "u-1"}))
    assert api_get(client, b, "u-1").status_code == 404
    assert api_get(client, a, "u-1").status_code == 200


def test_the_author_api_needs_the_sources_token(client, fake_api, post_webhook, source):
    post_webhook(source, body_with({"id": "u-1"}))
    assert api_get(client, source, "u-1", token="wrong").status_code == 401


def test_an_author_id_with_a_slash_is_found(client, fake_api, post_webhook, source):
    post_webhook(source, body_with({"id": "team/u 1"}))
    assert api_get(client, source, "team/u%201").json()["id"] == "team/u 1"
