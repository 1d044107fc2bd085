"""Retention: content goes its source's retention period after the final decision, from
every table and the media folder (scanned by introspection, not a hand list), while ids,
labels' figures, decisions and reasons stay; a legal hold (item or author) stops it; the
purge runs in bounded batches and resumes after a crash."""

from datetime import timedelta

import pytest
from django.core.files.storage import default_storage
from django.utils import timezone

from audit.models import AuditEntry
from labelers.models import Label
from moderation.models import Author, Decision, Item
from moderation.services import retention
from moderation.services.retention import legal_hold_set, retention_purge
from moderation.tests.content_scan import (
    SEEDED_COLUMNS,
    media_holding,
    png_with,
    seed_content,
    tables_holding,
)
from moderation.tests.factories import ItemFactory, SourceFactory, UserFactory

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("media_root")]


@pytest.fixture
def governed(db):
    return SourceFactory(callback_url="https://products.example/hook", retention_days=30)


def _age(item: Item, days: int) -> None:
    """The item's final decision `days` ago."""
    Item.objects.filter(pk=item.pk).update(decided_at=timezone.now() - timedelta(days=days))


def test_a_new_source_keeps_content_a_year_by_default(db):
    assert SourceFactory().retention_days == 365


def test_the_purge_removes_the_content_everywhere_and_keeps_ids_figures_and_decisions(
    client, fake_api, post_webhook, governed
):
    item = seed_content(client, post_webhook, governed, marker="MARKOLD", external_id="old")
    assert item.status == Item.Status.DECIDED
    assert set(tables_holding("MARKOLD")) >= SEEDED_COLUMNS  # the scan sees every copy
    assert len(media_holding("MARKOLD")) == 2  # the image and the revision's video
    figures = list(Label.objects.filter(item=item).values_list("label", "confidence", "model"))
    _age(item, 31)

    result = retention_purge()

    assert result.purged == 1 and not result.more
    assert tables_holding("MARKOLD") == []
    assert media_holding("MARKOLD") == []
    item.refresh_from_db()
    assert item.purged_at is not None and item.erased_at is None
    assert item.external_id == "old" and item.status == Item.Status.DECIDED
    assert not item.content_image and not item.content_video and item.metadata == {}
    assert list(Label.objects.filter(item=item).values_list("label", "confidence", "model")) == (
        figures
    )
    removal = Decision.objects.get(item=item, action="remove")
    assert removal.reason and removal.reason_choice_id is not None


def test_the_item_page_and_api_show_a_purged_item_as_such(client, fake_api, post_webhook, governed):
    item = seed_content(client, post_webhook, governed, marker="MARKPAGE", external_id="p")
    _age(item, 40)
    retention_purge()
    answer = client.get(
        f"/api/items/{item.pk}/", headers={"Authorization": f"Bearer {governed._token}"}
    ).json()
    assert answer["content"]["state"] == "purged" and answer["content"]["removed_at"]
    assert answer["decision"]["action"] == "remove"
    client.force_login(UserFactory(senior=True))
    page = client.get(f"/items/{item.pk}/").content.decode()
    assert 'id="content-removed"' in page and "Content purged" in page
    assert "MARKPAGE" not in page


def test_content_inside_the_period_and_of_sources_that_keep_forever_stays(
    client, fake_api, post_webhook, governed
):
    recent = seed_content(client, post_webhook, governed, marker="MARKNEW", external_id="n")
    _age(recent, 29)
    forever = SourceFactory(callback_url="https://products.example/hook", retention_days=None)
    kept = seed_content(client, post_webhook, forever, marker="MARKEVER", external_id="f")
    _age(kept, 5000)

    assert retention_purge().purged == 0
    assert set(tables_holding("MARKNEW")) >= SEEDED_COLUMNS
    assert set(tables_holding("MARKEVER")) >= SEEDED_COLUMNS
    assert Item.objects.filter(purged_at__isnull=False).count() == 0


def test_cleared_items_are_purged_from_when_their_content_came(governed):
    cleared = ItemFactory(
        source=governed,
        status=Item.Status.LABELED,
        content_text="cleared MARKCLEAR",
        queue_score=None,
        queue_key=None,
        waiting_since=timezone.now() - timedelta(days=31),
    )
    waiting = ItemFactory(source=governed, content_text="queued MARKQUEUE")
    Item.objects.filter(pk=waiting.pk).update(waiting_since=timezone.now() - timedelta(days=99))
    retention_purge()
    assert tables_holding("MARKCLEAR") == []
    # Still in the queue (not decided): never purged, however old.
    assert tables_holding("MARKQUEUE") == ["moderation_item.content_text"]
    cleared.refresh_from_db()
    assert cleared.purged_at is not None


def test_a_legal_hold_on_the_item_or_its_author_stops_the_purge(
    client, fake_api, post_webhook, governed
):
    admin = UserFactory(is_staff=True)
    held = seed_content(client, post_webhook, governed, marker="MARKHELD", external_id="h")
    by_author = seed_content(
        client, post_webhook, governed, marker="MARKAUTH", external_id="a", author={"id": "u-9"}
    )
    free = seed_content(client, post_webhook, governed, marker="MARKFREE", external_id="x")
    legal_hold_set(obj=held, hold=True, reason="case 2026-17", actor=admin)
    legal_hold_set(obj=by_author.author, hold=True, reason="subpoena 5", actor=admin)
    for item in (held, by_author, free):
        _age(item, 400)

    assert retention_purge().purged == 1
    assert set(tables_holding("MARKHELD")) >= SEEDED_COLUMNS
    assert len(media_holding("MARKHELD")) == 2
    assert set(tables_holding("MARKAUTH")) >= SEEDED_COLUMNS
    assert tables_holding("MARKFREE") == [] and media_holding("MARKFREE") == []

    # Lifted: the next run purges it.
    legal_hold_set(obj=held, hold=False, reason="", actor=admin)
    assert retention_purge().purged == 1
    assert tables_holding("MARKHELD") == []


def test_a_legal_hold_needs_a_reason_and_every_change_is_audited(governed):
    admin = UserFactory(is_staff=True)
    item = ItemFactory(source=governed)
    with pytest.raises(ValueError, match="say why"):
        legal_hold_set(obj=item, hold=True, reason=" ", actor=admin)
    legal_hold_set(obj=item, hold=True, reason="case 1", actor=admin)
    legal_hold_set(obj=item, hold=False, reason="", actor=admin)
    rows = list(AuditEntry.objects.filter(object_id=str(item.pk)).order_by("seq"))
    assert [r.action for r in rows] == ["item.legal_hold", "item.legal_hold_lift"]
    assert rows[0].after == {"legal_hold": True, "reason": "case 1"}
    assert rows[0].actor_id == admin.pk


def test_seniors_put_an_item_on_legal_hold_from_its_page_and_reviewers_cannot(client, governed):
    item = ItemFactory(source=governed)
    client.force_login(UserFactory())
    assert client.post(
        f"/items/{item.pk}/legal-hold/", {"hold": "1", "reason": "r"}
    ).status_code == (403)
    senior = UserFactory(senior=True)
    client.force_login(senior)
    assert 'id="legal-hold"' in client.get(f"/items/{item.pk}/").content.decode()
    response = client.post(f"/items/{item.pk}/legal-hold/", {"hold": "1", "reason": "case <b>9"})
    assert response.status_code == 302
    item.refresh_from_db()
    assert item.legal_hold and item.legal_hold_reason == "case <b>9"
    page = client.get(f"/items/{item.pk}/").content.decode()
    assert "case &lt;b&gt;9" in page and "case <b>9" not in page
    assert AuditEntry.objects.filter(action="item.legal_hold", actor_id=senior.pk).exists()


def test_the_admin_sets_a_legal_hold_on_an_author_audited(client, governed):
    author = Author.objects.create(source=governed, external_id="u-1", name="Ada")
    admin = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(admin)
    url = f"/admin/moderation/author/{author.pk}/change/"
    form = {"name": "Ada", "url": "", "legal_hold": "on", "legal_hold_reason": ""}
    refused = client.post(url, form)
    assert refused.status_code == 200 and "Say why the content is held." in refused.content.decode()
    assert client.post(url, {**form, "legal_hold_reason": "court order 3"}).status_code == 302
    author.refresh_from_db()
    assert author.legal_hold and author.legal_hold_reason == "court order 3"
    entry = AuditEntry.objects.get(action="author.legal_hold")
    assert entry.object_id == str(author.pk) and entry.actor_id == admin.pk


def test_the_purge_runs_in_bounded_batches_and_resumes_after_a_crash(governed, monkeypatch):
    items = [
        ItemFactory(
            source=governed,
            status=Item.Status.DECIDED,
            content_text=f"old MARKBATCH{n}",
            decided_at=timezone.now() - timedelta(days=60),
            queue_score=None,
            queue_key=None,
        )
        for n in range(5)
    ]
    first = retention_purge(batch=2, max_batches=1)
    assert first.purged == 2 and first.more
    assert Item.objects.filter(purged_at__isnull=False).count() == 2

    # A crash inside the next batch: its transaction rolls back, the earlier batches stay.
    real = retention.items_content_remove
    calls = {"n": 0}

    def crash_on_second(**kwargs):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("worker killed")
        return real(**kwargs)

    monkeypatch.setattr(retention, "items_content_remove", crash_on_second)
    with pytest.raises(RuntimeError):
        retention_purge(batch=2)
    assert Item.objects.filter(purged_at__isnull=False).count() == 4
    monkeypatch.setattr(retention, "items_content_remove", real)

    last = retention_purge(batch=2)
    assert last.purged == 1 and not last.more
    assert all(tables_holding(f"MARKBATCH{n}") == [] for n in range(len(items)))
    assert retention_purge(batch=2).purged == 0  # idempotent: nothing picked twice


def test_a_media_file_shared_with_a_kept_item_stays(fake_api, post_webhook, governed):
    image = png_with("MARKSHARED")  # the same bytes from two items: stored once
    for external_id in ("old", "new"):
        body = {"external_id": external_id, "content_text": external_id, "content_image": image}
        assert post_webhook(governed, body).status_code == 202
    old, new = (Item.objects.get(external_id=x) for x in ("old", "new"))
    assert old.content_image.name == new.content_image.name
    Item.objects.filter(pk=old.pk).update(
        status=Item.Status.DECIDED, decided_at=timezone.now() - timedelta(days=90)
    )
    assert retention_purge().purged == 1
    old.refresh_from_db()
    assert not old.content_image
    assert default_storage.exists(new.content_image.name)
    assert len(media_holding("MARKSHARED")) == 1

    Item.objects.filter(pk=new.pk).update(
        status=Item.Status.DECIDED, decided_at=timezone.now() - timedelta(days=90)
    )
    assert retention_purge().purged == 1
    assert media_holding("MARKSHARED") == []


def test_an_edit_of_a_purged_item_is_kept_as_new_content(fake_api, post_webhook, governed):
    assert post_webhook(governed, {"external_id": "e", "content_text": "MARKEDIT"}).status_code == (
        202
    )
    item = Item.objects.get(external_id="e")
    Item.objects.filter(pk=item.pk).update(
        status=Item.Status.DECIDED, decided_at=timezone.now() - timedelta(days=90)
    )
    assert retention_purge().purged == 1

    edit = post_webhook(governed, {"external_id": "e", "content_text": "new words"})

    assert edit.status_code == 202 and edit.json()["id"] == item.pk
    item.refresh_from_db()
    assert item.revision == 2 and item.content_text == "new words"
    assert item.purged_at is None and item.content_state == "present"
    assert tables_holding("MARKEDIT") == []  # the purged revision stays empty


def test_a_change_of_a_sources_retention_is_audited(client, governed):
    admin = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(admin)
    url = f"/admin/moderation/source/{governed.pk}/change/"
    form = client.get(url).context["adminform"].form
    data = {k: v for k, v in form.initial.items() if v is not None and k != "labelers"}
    data.update(
        labelers=[lb.pk for lb in governed.labelers.all()],
        retention_days=90,
        account_thresholds="[]",
    )
    response = client.post(url, data)
    assert response.status_code == 302, response.context["adminform"].form.errors
    entry = AuditEntry.objects.get(action="source.retention")
    assert entry.before == {"retention_days": 30} and entry.after == {"retention_days": 90}
