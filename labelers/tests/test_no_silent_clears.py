"""No item leaves the flow unseen: an item no labeler could judge reaches a person, and only
the current version of each active labeler routed to an item's source decides it."""

import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from labelers import tasks
from labelers.criteria import labeler_snapshot, labeler_version_create
from labelers.models import Label, Labeler
from moderation.filters import QueueFilter
from moderation.models import Item
from moderation.selectors.queue import queue_page
from moderation.tests.factories import LabelerFactory, SourceFactory, UserFactory

pytestmark = pytest.mark.django_db

# The whole queue: an admin sees every source.
ADMIN = get_user_model()(is_staff=True)


def send(post_webhook, source, text, external_id=None):
    response = post_webhook(source, {"external_id": external_id or text, "content_text": text})
    assert response.status_code == 202, response.content
    return Item.objects.get(pk=response.json()["id"])


def queue_ids(**filters):
    items, _ = queue_page(reviewer=ADMIN, filters=QueueFilter(**filters))
    return [item.pk for item in items]


@pytest.fixture
def reviewer_client(client):
    client.force_login(UserFactory())
    return client


def test_an_item_whose_labeling_failed_for_good_waits_in_the_queue(fake_api, post_webhook, source):
    fake_api.configure(script=[422])
    item = send(post_webhook, source, "hello there")
    item.refresh_from_db()
    assert item.status == Item.Status.FAILED
    assert item.pk in queue_ids()


def test_a_failed_item_sits_with_the_most_likely_violations(fake_api, post_webhook, source):
    worst = send(post_webhook, source, "I hate you conf=0.99")
    fake_api.configure(script=[422])
    failed = send(post_webhook, source, "unreadable for the API")
    assert queue_ids() == [failed.pk, worst.pk]  # treated as score 1.0


def test_the_item_page_says_why_labeling_failed(fake_api, post_webhook, source, reviewer_client):
    fake_api.configure(script=[422])
    item = send(post_webhook, source, "hello there")
    page = reviewer_client.get(f"/items/{item.pk}/").content.decode()
    assert 'id="why-in-queue"' in page and "scripted validation error" in page


def test_a_later_successful_label_takes_a_failed_item_out_of_the_queue(
    fake_api, post_webhook, source, dispatch, django_capture_on_commit_callbacks
):
    fake_api.configure(script=[422])
    item = send(post_webhook, source, "a friendly note")
    labeler = source.labelers.get()
    version = labeler_version_create(labeler=labeler, criteria_text="Label hate v2")
    with django_capture_on_commit_callbacks(execute=True):
        tasks.relabel_start(labeler_version=version, source=source)
    dispatch()
    item.refresh_from_db()
    assert item.status == Item.Status.LABELED
    assert item.pk not in queue_ids()


def test_an_item_no_labeler_is_routed_to_goes_to_review(post_webhook, reviewer_client, db):
    source = SourceFactory(labelers=[])
    item = send(post_webhook, source, "hello")
    item.refresh_from_db()
    assert item.status == Item.Status.UNROUTED and item.labels.count() == 0
    assert item.pk in queue_ids()
    page = reviewer_client.get(f"/items/{item.pk}/").content.decode()
    assert "No labeler is routed to" in page


def test_a_source_routed_only_to_an_inactive_labeler_sends_items_to_review(post_webhook, db):
    source = SourceFactory(labelers=[LabelerFactory(active=False)])
    item = send(post_webhook, source, "hello")
    item.refresh_from_db()
    assert item.status == Item.Status.UNROUTED


def test_the_admin_warns_about_a_source_with_no_working_labeler(admin_client, db):
    SourceFactory(name="Lonely", labelers=[])
    page = admin_client.get("/admin/moderation/source/").content.decode()
    assert "no active labeler" in page


def test_create_source_refuses_a_labeler_that_cannot_label(db):
    Labeler.objects.create(name="Off", slug="off", active=False)
    with pytest.raises(CommandError, match="inactive or have no version"):
        call_command("create_source", "forum", "--labeler", "off")


def test_a_newer_version_decides_once_it_has_answered(
    fake_api, post_webhook, source, dispatch, django_capture_on_commit_callbacks
):
    item = send(post_webhook, source, "I hate mondays")
    item.refresh_from_db()
    assert item.status == Item.Status.FLAGGED
    labeler = source.labelers.get()
    v2 = labeler_version_create(labeler=labeler, criteria_text="[invert] new policy")
    with django_capture_on_commit_callbacks(execute=True):
        tasks.relabel_start(labeler_version=v2, source=source)
    dispatch()
    item.refresh_from_db()
    # v1 still says "1" (kept as history); v2 says "0" and is the current version.
    assert set(item.labels.values_list("label", flat=True)) == {"0", "1"}
    assert item.status == Item.Status.LABELED and item.pk not in queue_ids()


def test_publishing_a_version_without_relabeling_changes_no_verdict(
    fake_api, post_webhook, source, django_capture_on_commit_callbacks
):
    item = send(post_webhook, source, "I hate mondays")
    labeler_version_create(labeler=source.labelers.get(), criteria_text="[invert] x")
    with django_capture_on_commit_callbacks(execute=True):
        tasks.reevaluation_start(reason="test", source=source)
    item.refresh_from_db()
    assert item.status == Item.Status.FLAGGED


def test_deactivating_a_labeler_re_evaluates_its_undecided_items(
    fake_api, post_webhook, admin_client, django_capture_on_commit_callbacks, db
):
    strict = LabelerFactory(criteria="Label hate")
    lenient = LabelerFactory(criteria="[invert] Label hate")  # says "0" to hate
    source = SourceFactory(labelers=[strict, lenient])
    item = send(post_webhook, source, "I hate mondays")
    item.refresh_from_db()
    assert item.status == Item.Status.FLAGGED
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            f"/admin/labelers/labeler/{strict.pk}/change/",
            {
                "name": strict.name,
                "slug": strict.slug,
                "kind": strict.kind,
                "min_confidence": "",
                "seen": json.dumps(labeler_snapshot(strict)),
                "versions-TOTAL_FORMS": "0",
                "versions-INITIAL_FORMS": "0",
            },
        )
    assert response.status_code == 302, response.content.decode()[:2000]
    item.refresh_from_db()
    assert item.status == Item.Status.LABELED
    reevaluation = strict.reevaluation_set.get()
    assert (reevaluation.state, reevaluation.done, reevaluation.total) == ("done", 1, 1)


def test_raising_the_minimum_confidence_takes_weak_flags_out_of_the_queue(
    fake_api, post_webhook, source, admin_client, django_capture_on_commit_callbacks
):
    weak = send(post_webhook, source, "I hate mondays conf=0.7")
    strong = send(post_webhook, source, "I hate you conf=0.95")
    labeler = source.labelers.get()
    with django_capture_on_commit_callbacks(execute=True):
        admin_client.post(
            f"/admin/labelers/labeler/{labeler.pk}/change/",
            {
                "name": labeler.name,
                "slug": labeler.slug,
                "kind": labeler.kind,
                "active": "on",
                "min_confidence": "0.8",
                "seen": json.dumps(labeler_snapshot(labeler)),
                "versions-TOTAL_FORMS": "0",
                "versions-INITIAL_FORMS": "0",
            },
        )
    weak.refresh_from_db()
    strong.refresh_from_db()
    assert (weak.status, strong.status) == (Item.Status.LABELED, Item.Status.FLAGGED)
    assert queue_ids() == [strong.pk]


def test_routing_a_source_at_last_sends_its_waiting_items_to_labeling(
    fake_api, post_webhook, dispatch, django_capture_on_commit_callbacks, db
):
    source = SourceFactory(labelers=[])
    item = send(post_webhook, source, "I hate mondays")
    source.labelers.set([LabelerFactory()])
    with django_capture_on_commit_callbacks(execute=True):
        tasks.reevaluation_start(reason="routing changed", source=source)
    dispatch()
    item.refresh_from_db()
    assert item.status == Item.Status.FLAGGED
    assert Label.objects.filter(item=item, status="done").count() == 1
