"""Erasure (POST /api/erasures/, GET /api/erasures/<id>/): a product's request removes the
content everywhere (every table and the media folder, scanned by introspection), keeps what
a legal hold holds (listed in the receipt), is idempotent, audited, resumable, and frees the
external_id for a new item."""

import json

import pytest
from django.core.management import call_command

from audit.models import AuditEntry
from labelers.models import Label
from moderation.callbacks.deliveries import callback_body
from moderation.models import Author, CallbackDelivery, Decision, Erasure, Item
from moderation.services import erasures
from moderation.services.erasures import ErasurePayload, erasure_request, erasure_run
from moderation.services.retention import legal_hold_set
from moderation.tasks import erasure_sweep_task
from moderation.tests.content_scan import (
    SEEDED_COLUMNS,
    media_holding,
    seed_content,
    tables_holding,
)
from moderation.tests.factories import ItemFactory, SourceFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media_root")]


@pytest.fixture
def governed(db):
    return SourceFactory(callback_url="https://products.example/hook")


@pytest.fixture
def erase(client, django_capture_on_commit_callbacks):
    """POST an erasure with the source's token; its task runs once the request commits, as
    a worker would (tasks run eagerly in unit tests)."""

    def post(source, payload=None, *, raw: bytes | None = None, token: str | None = None):
        body = raw if raw is not None else json.dumps(payload).encode()
        auth = f"Bearer {token if token is not None else source._token}"
        with django_capture_on_commit_callbacks(execute=True):
            return client.post(
                "/api/erasures/",
                data=body,
                content_type="application/json",
                headers={"Authorization": auth},
            )

    return post


def _receipt(client, source, erasure_id: str):
    return client.get(
        f"/api/erasures/{erasure_id}/", headers={"Authorization": f"Bearer {source._token}"}
    )


def test_an_erasure_removes_the_content_everywhere_and_gives_a_receipt(
    client, fake_api, post_webhook, governed, erase
):
    first = seed_content(client, post_webhook, governed, marker="MARKERA", external_id="ea")
    second = seed_content(client, post_webhook, governed, marker="MARKERB", external_id="eb")
    kept = seed_content(client, post_webhook, governed, marker="MARKKEEP", external_id="k")
    for marker in ("MARKERA", "MARKERB"):
        assert set(tables_holding(marker)) >= SEEDED_COLUMNS
        assert len(media_holding(marker)) == 2
    figures = list(Label.objects.filter(item=first).values_list("label", "confidence"))

    response = erase(governed, {"erasure_id": "gdpr-1", "external_ids": ["ea", "eb", "nope"]})

    assert response.status_code == 202, response.content
    assert response.json() == {"id": "gdpr-1", "status": "pending"}
    receipt = _receipt(client, governed, "gdpr-1").json()
    assert receipt["status"] == "done" and receipt["finished_at"]
    assert receipt["erased"] == [
        {"item_id": first.pk, "external_id": "ea"},
        {"item_id": second.pk, "external_id": "eb"},
    ]
    assert receipt["held"] == [] and receipt["not_found"] == ["nope"]
    for marker in ("MARKERA", "MARKERB"):
        assert tables_holding(marker) == []
        assert media_holding(marker) == []
    assert set(tables_holding("MARKKEEP")) >= SEEDED_COLUMNS  # others' content untouched
    assert len(media_holding("MARKKEEP")) == 2
    first.refresh_from_db()
    # Decided: it stays decided (its decision counts); its content is erased.
    assert first.status == Item.Status.DECIDED and first.content_state == "erased"
    assert first.erased_at and first.purged_at
    assert list(Label.objects.filter(item=first).values_list("label", "confidence")) == figures
    removal = Decision.objects.get(item=first, action="remove")
    assert removal.reason
    # The pending callback is still sent, and carries no content.
    delivery = CallbackDelivery.objects.get(decision=removal)
    assert delivery.state == CallbackDelivery.State.PENDING
    assert b"MARKERA" not in callback_body(removal, governed)
    answer = client.get(
        "/api/items/?external_id=ea", headers={"Authorization": f"Bearer {governed._token}"}
    ).json()
    assert answer["id"] == first.pk and answer["status"] == "decided"
    assert answer["content"]["state"] == "erased" and answer["decision"]["action"] == "remove"
    client.force_login(UserFactory(senior=True))
    page = client.get(f"/items/{first.pk}/").content.decode()
    assert 'id="content-removed"' in page and "erased" in page
    kept.refresh_from_db()
    assert kept.content_state == "present"


def test_the_same_external_id_sent_after_an_erasure_is_a_new_item(
    client, fake_api, post_webhook, governed, erase
):
    old = seed_content(client, post_webhook, governed, marker="MARKAGAIN", external_id="again")
    assert erase(governed, {"external_ids": ["again"]}).status_code == 202

    response = post_webhook(governed, {"external_id": "again", "content_text": "fresh words"})

    assert response.status_code == 202
    new = Item.objects.get(pk=response.json()["id"])
    assert new.pk != old.pk and new.revision == 1 and new.content_text == "fresh words"
    auth = {"Authorization": f"Bearer {governed._token}"}
    assert client.get("/api/items/?external_id=again", headers=auth).json()["id"] == new.pk
    assert client.get(f"/api/items/{old.pk}/", headers=auth).json()["content"]["state"] == (
        "erased"
    )
    # Another erasure of that id now erases the new item, and only it.
    receipt_id = erase(governed, {"external_ids": ["again"]}).json()["id"]
    assert _receipt(client, governed, receipt_id).json()["erased"] == [
        {"item_id": new.pk, "external_id": "again"}
    ]


def test_the_same_erasure_id_answers_with_the_same_receipt_and_erases_nothing_twice(
    client, fake_api, post_webhook, governed, erase
):
    seed_content(client, post_webhook, governed, marker="MARKTWICE", external_id="t")
    body = {"erasure_id": "req-7", "external_ids": ["t"]}
    assert erase(governed, body).status_code == 202
    # The product sends the same id again afterwards: a new item, which the repeat of the
    # old request must leave alone.
    fresh = post_webhook(governed, {"external_id": "t", "content_text": "MARKFRESH"})

    repeat = erase(governed, body)

    assert repeat.status_code == 200 and repeat.json() == {"id": "req-7", "status": "done"}
    assert Erasure.objects.filter(erasure_id="req-7").count() == 1
    assert AuditEntry.objects.filter(action="erasure.request").count() == 1
    assert Item.objects.get(pk=fresh.json()["id"]).content_text == "MARKFRESH"
    assert len(_receipt(client, governed, "req-7").json()["erased"]) == 1
    conflict = erase(governed, {"erasure_id": "req-7", "external_ids": ["other"]})
    assert conflict.status_code == 409 and conflict.json()["field"] == "erasure_id"


def test_held_items_are_listed_as_held_and_keep_their_content(
    client, fake_api, post_webhook, governed, erase
):
    admin = UserFactory(is_staff=True)
    held = seed_content(client, post_webhook, governed, marker="MARKHOLD", external_id="h")
    by_author = seed_content(
        client, post_webhook, governed, marker="MARKAHOLD", external_id="a", author={"id": "u-3"}
    )
    legal_hold_set(obj=held, hold=True, reason="case 12", actor=admin)
    legal_hold_set(obj=by_author.author, hold=True, reason="court order", actor=admin)

    response = erase(governed, {"erasure_id": "e-held", "external_ids": ["h", "a"]})

    receipt = _receipt(client, governed, response.json()["id"]).json()
    assert receipt["erased"] == []
    assert receipt["held"] == [
        {"item_id": held.pk, "external_id": "h", "legal_hold": "item"},
        {"item_id": by_author.pk, "external_id": "a", "legal_hold": "author"},
    ]
    # The hold's own words stay inside the team.
    assert "case 12" not in json.dumps(receipt) and "court order" not in json.dumps(receipt)
    assert set(tables_holding("MARKHOLD")) >= SEEDED_COLUMNS
    assert set(tables_holding("MARKAHOLD")) >= SEEDED_COLUMNS


def test_an_erasure_by_author_removes_their_items_and_profile(
    client, fake_api, post_webhook, governed, erase, monkeypatch
):
    monkeypatch.setattr(erasures, "ERASURE_BATCH", 1)  # several batches, one item each
    author = {"id": "u-7", "name": "MARKNAME Person", "url": "https://forum.example/MARKNAME"}
    items = [
        seed_content(
            client, post_webhook, governed, marker=f"MARKBY{n}", external_id=f"b{n}", author=author
        )
        for n in range(3)
    ]
    other = seed_content(
        client, post_webhook, governed, marker="MARKOTHER", external_id="o", author={"id": "u-8"}
    )
    assert "moderation_author.name" in tables_holding("MARKNAME")

    response = erase(governed, {"author_id": "u-7"})

    receipt = _receipt(client, governed, response.json()["id"]).json()
    assert [row["item_id"] for row in receipt["erased"]] == [item.pk for item in items]
    assert receipt["requested"] == {"author_id": "u-7"}
    assert tables_holding("MARKNAME") == []
    for n in range(3):
        assert tables_holding(f"MARKBY{n}") == [] and media_holding(f"MARKBY{n}") == []
    assert set(tables_holding("MARKOTHER")) >= SEEDED_COLUMNS
    profile = Author.objects.get(source=governed, external_id="u-7")
    assert profile.erased_at is not None and profile.name == "" and profile.url == ""
    other.refresh_from_db()
    assert other.content_state == "present"
    unknown = erase(governed, {"author_id": "nobody"})
    assert _receipt(client, governed, unknown.json()["id"]).json()["not_found"] == ["nobody"]


def test_erasures_are_in_the_audit_log_without_content_and_the_chain_holds(
    client, fake_api, post_webhook, governed, erase
):
    seed_content(client, post_webhook, governed, marker="MARKAUDIT", external_id="au")
    erase(governed, {"erasure_id": "au-1", "external_ids": ["au"]})
    request, done = (
        AuditEntry.objects.get(action="erasure.request"),
        AuditEntry.objects.get(action="erasure.done"),
    )
    assert request.actor_username == f"source:{governed.slug}"
    assert request.after["erasure_id"] == "au-1" and request.after["count"] == 1
    assert done.after["erased"] == 1 and done.after["held"] == 0
    assert tables_holding("MARKAUDIT") == []
    call_command("audit_verify")  # exits non-zero (SystemExit) when the chain is broken


def test_a_crashed_erasure_is_resumed_by_the_sweep(
    client, fake_api, post_webhook, governed, monkeypatch
):
    for n in range(3):
        seed_content(client, post_webhook, governed, marker=f"MARKCRASH{n}", external_id=f"c{n}")
    monkeypatch.setattr(erasures, "ERASURE_BATCH", 1)
    erasure, created = erasure_request(
        source=governed, payload=ErasurePayload("crash-1", external_ids=("c0", "c1", "c2"))
    )
    assert created
    real = erasures._erase_batch
    calls = {"n": 0}

    def crash_on_second(*args):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("worker killed")
        return real(*args)

    monkeypatch.setattr(erasures, "_erase_batch", crash_on_second)
    with pytest.raises(RuntimeError):
        erasure_run(erasure_pk=erasure.pk)
    erasure.refresh_from_db()
    assert erasure.status == Erasure.Status.RUNNING and len(erasure.erased) == 1
    # Another worker does not take it while its lease runs; the sweep does once it ran out.
    assert erasure_run(erasure_pk=erasure.pk) == "not-due"
    Erasure.objects.filter(pk=erasure.pk).update(lease_expires_at=erasure.created_at)
    monkeypatch.setattr(erasures, "_erase_batch", real)

    assert erasure_sweep_task() == 1

    erasure.refresh_from_db()
    assert erasure.status == Erasure.Status.DONE
    assert [row["external_id"] for row in erasure.erased] == ["c0", "c1", "c2"]
    assert all(tables_holding(f"MARKCRASH{n}") == [] for n in range(3))
    assert erasure_sweep_task() == 0


@pytest.mark.parametrize(
    ("raw", "status", "field"),
    [
        (b"not json", 400, "body"),
        (b"[]", 422, "body"),
        (b"{}", 422, "external_ids"),
        (b'{"external_ids": []}', 422, "external_ids"),
        (b'{"external_ids": "a"}', 422, "external_ids"),
        (b'{"external_ids": [1]}', 422, "external_ids"),
        (b'{"external_ids": [""]}', 422, "external_ids"),
        (json.dumps({"external_ids": ["x" * 256]}).encode(), 422, "external_ids"),
        (json.dumps({"external_ids": ["a"] * 1001}).encode(), 422, "external_ids"),
        (b'{"external_ids": ["a\\u0000"]}', 422, "external_ids"),
        (b'{"external_ids": ["\\ud800"]}', 422, "external_ids"),
        (b'{"external_ids": ["a"], "author_id": "u"}', 422, "author_id"),
        (b'{"author_id": ""}', 422, "author_id"),
        (b'{"author_id": 5}', 422, "author_id"),
        (b'{"author_id": null, "external_ids": null}', 422, "external_ids"),
        (b'{"erasure_id": "", "author_id": "u"}', 422, "erasure_id"),
        (b'{"erasure_id": 7, "author_id": "u"}', 422, "erasure_id"),
        (b'{"author_id": "u", "surprise": 1}', 422, "surprise"),
    ],
)
def test_each_bad_erasure_request_is_a_4xx_naming_the_field(erase, governed, raw, status, field):
    response = erase(governed, raw=raw)
    assert response.status_code == status, response.content
    assert response.json()["field"] == field
    assert not Erasure.objects.exists()


def test_erasures_need_the_sources_token_and_stay_within_the_source(client, erase, governed):
    refused = erase(governed, {"author_id": "u"}, token="wrong")
    assert refused.status_code == 401 and refused.json()["field"] == "Authorization"
    erase(governed, {"erasure_id": "mine", "author_id": "u"})
    other = SourceFactory()
    assert _receipt(client, other, "mine").status_code == 404
    missing = _receipt(client, governed, "never")
    assert missing.status_code == 404 and missing.json()["field"] == "id"
    assert client.get("/api/erasures/", headers={"Authorization": "x"}).status_code == 405


def test_an_erased_item_waiting_for_review_leaves_the_queue_and_is_not_labeled(
    client, fake_api, post_webhook, governed, erase, dispatch
):
    flagged = ItemFactory(source=governed, external_id="q", content_text="MARKQUEUED")
    reviewer = UserFactory()
    client.force_login(reviewer)
    assert "MARKQUEUED" in client.get("/").content.decode()
    erase(governed, {"external_ids": ["q"]})
    flagged.refresh_from_db()
    assert flagged.status == Item.Status.ERASED and flagged.queue_key is None
    assert "MARKQUEUED" not in client.get("/").content.decode()
    assert tables_holding("MARKQUEUED") == []
    # An item erased before its label was fetched is never sent to the API.
    response = post_webhook(governed, {"external_id": "fresh", "content_text": "MARKFRESHQ"})
    fresh = Item.objects.get(pk=response.json()["id"])
    Label.objects.filter(item=fresh).update(
        status="pending", label="", confidence=None, enqueued_at=None, next_attempt_at=None
    )
    calls = len(fake_api.calls)
    erase(governed, {"external_ids": ["fresh"]})
    assert set(Label.objects.filter(item=fresh).values_list("status", flat=True)) == {"superseded"}
    dispatch()
    assert len(fake_api.calls) == calls
    assert tables_holding("MARKFRESHQ") == []
