"""The same external_id with other content is an edit: a new revision of the item, labeled
again, back in the queue if flagged; true repeats store nothing."""

import json
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import IntegrityError, connection
from django.db.models import ProtectedError
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from labelers.dispatch import items_route
from labelers.models import Label
from moderation.filters import QueueFilter
from moderation.intake import AuthorPayload, IntakePayload
from moderation.models import Author, Item, ItemRevision
from moderation.selectors.queue import queue_page
from moderation.services import items as items_service
from moderation.services.claims import item_claim
from moderation.services.decisions import decision_record
from moderation.services.items import item_ingest
from moderation.tests.factories import UserFactory, reason_id
from testkit.signing import signed_headers

pytestmark = pytest.mark.django_db

# The whole queue: an admin sees every source.
ADMIN = get_user_model()(is_staff=True)


def send(post_webhook, source, text, *, external_id="post-1", **kw):
    return post_webhook(source, {"external_id": external_id, "content_text": text}, **kw)


def api(client, source, item_id):
    response = client.get(
        f"/api/items/{item_id}/", headers={"Authorization": f"Bearer token-{source.slug}"}
    )
    assert response.status_code == 200
    return response.json()


def test_an_edit_is_a_new_revision_that_is_labeled_again(fake_api, post_webhook, source):
    first = send(post_webhook, source, "a calm remark")
    edited = send(post_webhook, source, "now I hate you all")
    assert edited.status_code == 202
    assert edited.json() == {"id": first.json()["id"], "revision": 2, "status": "received"}
    item = Item.objects.get()
    assert (item.revision, item.status, item.content_text) == (2, "flagged", "now I hate you all")
    assert list(item.labels.order_by("revision").values_list("revision", "label")) == [
        (1, "0"),
        (2, "1"),
    ]
    assert ItemRevision.objects.get(item=item).content_text == "a calm remark"
    assert len(fake_api.calls) == 2


def test_an_edit_after_an_approval_goes_back_to_the_queue(fake_api, post_webhook, source, client):
    send(post_webhook, source, "I hate mondays")
    item = Item.objects.get()
    decision_record(item=item, reviewer=UserFactory(), action="approve")
    send(post_webhook, source, "I hate you, and I know where you live")
    item.refresh_from_db()
    assert item.status == Item.Status.FLAGGED
    assert item.pk in [i.pk for i in queue_page(reviewer=ADMIN, filters=QueueFilter())[0]]
    state = api(client, source, item.pk)
    assert state["revision"] == 2 and state["decision"] is None
    assert [(d["revision"], d["action"]) for d in state["decisions"]] == [(1, "approve")]
    assert [(r["revision"], r["status"]) for r in state["revisions"]] == [(1, "decided")]


def test_the_same_content_under_a_new_webhook_id_is_a_repeat(fake_api, post_webhook, source):
    send(post_webhook, source, "hello there")
    again = send(post_webhook, source, "hello there")
    assert again.status_code == 200 and again.json()["revision"] == 1
    assert ItemRevision.objects.count() == 0 and Label.objects.count() == 1


def test_a_replay_of_an_earlier_revision_does_not_revert_the_edit(fake_api, post_webhook, source):
    body = json.dumps({"external_id": "post-1", "content_text": "first words"}).encode()
    first_headers = signed_headers(source._secret, body)
    post_webhook(source, None, raw=body, headers=first_headers)
    send(post_webhook, source, "second words")
    replay = post_webhook(source, None, raw=body, headers=first_headers)
    assert replay.status_code == 200 and replay.json()["revision"] == 2
    assert Item.objects.get().content_text == "second words"


def test_a_label_of_a_replaced_revision_is_never_paid_for(fake_api, client, post_webhook, source):
    # The first revision arrives and is routed, but the edit comes before any worker ran.
    body = json.dumps({"external_id": "post-1", "content_text": "old words conf=0.6"}).encode()
    client.post(
        f"/webhooks/{source.slug}/",
        data=body,
        content_type="application/json",
        headers=signed_headers(source._secret, body),
    )
    items_route()
    send(post_webhook, source, "new words")  # dispatches both revisions' labels
    texts = [call["content_text"] for call in fake_api.calls]
    assert texts == ["new words"]
    assert Label.objects.get(revision=1).status == Label.Status.SUPERSEDED


def test_an_item_with_decisions_cannot_be_deleted(post_webhook, source, fake_api):
    send(post_webhook, source, "I hate mondays")
    item = Item.objects.get()
    decision_record(
        item=item, reviewer=UserFactory(), action="remove", reason_id=reason_id("remove")
    )
    with pytest.raises(ProtectedError):
        item.delete()


def test_a_decided_item_cannot_be_claimed(post_webhook, source, fake_api):
    send(post_webhook, source, "I hate mondays")
    item = Item.objects.get()
    decision_record(
        item=item, reviewer=UserFactory(), action="remove", reason_id=reason_id("remove")
    )
    assert not item_claim(item=item, reviewer=UserFactory())


def test_the_item_page_shows_earlier_revisions_escaped(fake_api, post_webhook, source, client):
    send(post_webhook, source, "<script>alert(1)</script> first")
    send(post_webhook, source, "I hate you second")
    client.force_login(UserFactory())
    page = client.get(f"/items/{Item.objects.get().pk}/").content.decode()
    assert 'id="revision-1"' in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; first" in page and "<script>alert" not in page


# The new item's row, written as one INSERT (moderation/services/items.py).
METADATA = {"author": "ünïcode ✓", "nested": {"list": [1, 2.5, None, True]}, "quote": "a'b\"c"}


def _fields(item: Item) -> dict:
    skip = {"id", "external_id", "webhook_id", "received_at", "waiting_since"}
    values = {
        f.attname: getattr(item, f.attname)
        for f in Item._meta.concrete_fields
        if f.attname not in skip
    }
    values["content_image"] = str(item.content_image)
    values["content_video"] = str(item.content_video)
    return values


def test_the_insert_names_every_column_of_an_item():
    columns = {f.column for f in Item._meta.concrete_fields if not f.primary_key}
    written = set(items_service._INSERT_COLUMNS) | set(items_service._INSERT_CONSTANTS)
    assert written == columns
    assert not set(items_service._INSERT_COLUMNS) & set(items_service._INSERT_CONSTANTS)


def test_an_ingested_item_is_stored_as_the_orm_would_store_it(source):
    payload = IntakePayload(external_id="p1", content_text="héllo\nworld", metadata=METADATA)
    item, created = item_ingest(source=source, payload=payload, webhook_id="msg_1")
    assert created
    by_orm = Item.objects.create(
        source=source,
        external_id="p2",
        webhook_id="msg_2",
        content_text=payload.content_text,
        content_hash=payload.content_hash,
        metadata=METADATA,
        status=Item.Status.RECEIVED,
    )
    stored = Item.objects.get(pk=item.pk)
    assert _fields(stored) == _fields(Item.objects.get(pk=by_orm.pk))
    assert stored.metadata == METADATA
    assert stored.received_at == stored.waiting_since == item.received_at
    assert stored.revision == 1 and stored.verdict_versions == [] and not stored.sla_breached
    # What the caller gets back is the stored row, ready to be used or saved again.
    assert _fields(item) == _fields(stored) and item.pk == stored.pk
    assert not item._state.adding
    item.status = Item.Status.LABELING
    item.save(update_fields=["status"])
    assert Item.objects.get(pk=item.pk).status == Item.Status.LABELING
    assert Item.objects.filter(metadata__nested__list__1=2.5, pk=item.pk).exists()


def _statements(queries) -> list[str]:
    """The statements of a capture, less the test's savepoints around the insert and the
    PREPAREs a session runs once (lib/prepared.py)."""
    return [
        q["sql"]
        for q in queries
        if "SAVEPOINT" not in q["sql"] and not q["sql"].startswith("PREPARE ")
    ]


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PREPARE is PostgreSQL's")
def test_a_new_item_executes_the_sessions_prepared_insert(source):
    """Each webhook EXECUTEs the insert its database session PREPAREd once."""
    item_ingest(
        source=source,
        payload=IntakePayload(external_id="p1", content_text="a"),
        webhook_id="msg_1",
    )
    with CaptureQueriesContext(connection) as queries:
        item, created = item_ingest(
            source=source,
            payload=IntakePayload(external_id="p2", content_text="b", metadata={"k": [1]}),
            webhook_id="msg_2",
        )
    statements = _statements(queries)
    assert created and len(statements) == 1, statements
    assert statements[0].startswith(f"EXECUTE {items_service._INSERT.name} (")
    stored = Item.objects.get(pk=item.pk)
    assert (stored.content_text, stored.metadata, stored.webhook_id) == ("b", {"k": [1]}, "msg_2")
    assert _fields(item) == _fields(stored)


def test_an_item_of_a_known_author_is_stored_as_the_first_one_was(source):
    """On PostgreSQL the second item of an author is one statement (lookup and insert
    together); it stores what the two-statement path stores, wherever it runs."""
    created_at = timezone.now() - timedelta(days=3)
    author = AuthorPayload(id="u-1", name="Ann", url="https://x/u-1", created_at=created_at)
    first, _ = item_ingest(
        source=source,
        payload=IntakePayload(external_id="p1", content_text="a", author=author),
        webhook_id="msg_1",
    )
    with CaptureQueriesContext(connection) as queries:
        second, created = item_ingest(
            source=source,
            payload=IntakePayload(external_id="p2", content_text="b", author=author),
            webhook_id="msg_2",
        )
    assert created and second.author_id == first.author_id
    statements = _statements(queries)
    assert len(statements) == (1 if connection.vendor == "postgresql" else 2), statements
    assert second.author.account_created_at == created_at and second.author.name == "Ann"
    stored = Item.objects.get(pk=second.pk)
    first_stored = _fields(Item.objects.get(pk=first.pk))
    assert _fields(stored) == first_stored | {
        "content_text": "b",
        "content_hash": stored.content_hash,
    }
    assert _fields(second) == _fields(stored) and not second._state.adding


def test_a_new_authors_first_item_looks_the_author_up_once(source):
    """The first item of an author: one lookup finds nobody (on PostgreSQL, the
    one-statement insert's), then the author and the item are inserted; the author is not
    looked up a second time."""
    author = AuthorPayload(id="u-new", name="Ann")
    with CaptureQueriesContext(connection) as queries:
        item, created = item_ingest(
            source=source,
            payload=IntakePayload(external_id="p1", content_text="a", author=author),
            webhook_id="msg_1",
        )
    assert created and item.author.external_id == "u-new"
    statements = _statements(queries)
    lookups = [
        sql
        for sql in statements
        if ("external_id" in sql and "SELECT" in sql.upper())
        or sql.startswith(f"EXECUTE {items_service._INSERT_KNOWN_AUTHOR.name} ")
    ]
    assert len(lookups) == 1, statements
    assert len(statements) == 3, statements  # lookup, the author's insert, the item's
    assert Author.objects.get(source=source, external_id="u-new").name == "Ann"


def test_a_known_authors_new_name_is_taken_and_a_conflict_raises(source):
    author = AuthorPayload(id="u-1", name="Ann")
    item_ingest(
        source=source,
        payload=IntakePayload(external_id="p1", content_text="a", author=author),
        webhook_id="msg_1",
    )
    renamed = AuthorPayload(id="u-1", name="Anne")
    item, _ = item_ingest(
        source=source,
        payload=IntakePayload(external_id="p2", content_text="b", author=renamed),
        webhook_id="msg_2",
    )
    assert Author.objects.get().name == "Anne" == item.author.name
    if connection.vendor == "postgresql":
        with pytest.raises(IntegrityError):
            items_service._item_insert_known_author(
                source=source,
                payload=IntakePayload(external_id="p2", content_text="c", author=renamed),
                webhook_id="msg_3",
                media=items_service._store_payload_media(IntakePayload(external_id="p2")),
            )


def test_a_conflicting_insert_raises_as_create_does(source):
    payload = IntakePayload(external_id="p1", content_text="hello")
    item_ingest(source=source, payload=payload, webhook_id="msg_1")
    with pytest.raises(IntegrityError):
        items_service._item_insert(
            source=source,
            payload=IntakePayload(external_id="p1", content_text="other"),
            webhook_id="msg_2",
            media=items_service._store_payload_media(payload),
        )
