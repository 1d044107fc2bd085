"""The dispatch: its own queue, fresh items ahead of relabel backlogs, lost broker messages
sent again, and pages that say when it has stopped."""

import uuid
from datetime import timedelta

import pytest
from django.conf import settings as django_settings
from django.utils import timezone
from kombu import Exchange, Queue

from config.celery import app as celery_app
from labelers import dispatch as dispatch_module
from labelers import tasks
from labelers.criteria import labeler_version_create
from labelers.models import DispatchHeartbeat, Label
from labelers.tasks import labels_queued as labels_queued_on_the_broker  # before conftest's stub
from moderation.models import Item
from moderation.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_the_sweep_has_its_own_queue_apart_from_label_tasks():
    router = celery_app.amqp.router
    sweep = router.route({}, "labelers.tasks.label_sweep")["queue"].name
    label = router.route({}, "labelers.tasks.label_fetch")["queue"].name
    assert sweep == "dispatch" and label == "labels"
    # A worker started without -Q consumes both.
    assert {"labels", "dispatch"} <= set(celery_app.amqp.queues.consume_from)
    assert (
        django_settings.CELERY_BEAT_SCHEDULE["sweep-labels"]["task"] == "labelers.tasks.label_sweep"
    )


def test_a_fresh_item_is_labeled_ahead_of_a_relabel_backlog(
    fake_api, post_webhook, source, dispatch, settings, django_capture_on_commit_callbacks
):
    settings.LABEL_BULK_QUEUE_TARGET = 5
    for n in range(20):
        post_webhook(source, {"external_id": f"old{n}", "content_text": f"old text {n}"})
    labeler = source.labelers.get()
    v2 = labeler_version_create(labeler=labeler, criteria_text="[invert] new policy")
    before = len(fake_api.calls)
    with django_capture_on_commit_callbacks(execute=True):
        tasks.relabel_start(labeler_version=v2, source=source)
    assert len(fake_api.calls) == before  # the backlog waits in the database, not the broker
    post_webhook(source, {"external_id": "fresh", "content_text": "a fresh item"})
    texts = [call["content_text"] for call in fake_api.calls[before:]]
    # The fresh item first, then no more of the backlog than the queue target allows.
    assert texts[0] == "a fresh item"
    assert len(texts) <= settings.LABEL_BULK_QUEUE_TARGET
    for _ in range(10):
        dispatch()
    assert Label.objects.filter(labeler_version=v2, status="done").count() == 21


def test_relabel_work_is_held_back_while_the_labels_queue_is_long(fake_api, source, settings):
    settings.LABEL_BULK_QUEUE_TARGET = 100
    item = Item.objects.create(
        source=source, external_id="x", content_text="x", content_hash="h", status="labeling"
    )
    version = source.labelers.get().current_version
    bulk = Label.objects.create(item=item, labeler_version=version, content_hash="h", bulk=True)
    assert dispatch_module.dispatch_sweep(broker_queued=100) == []
    assert dispatch_module.dispatch_sweep(broker_queued=None) == []  # broker cannot say: wait
    assert dispatch_module.dispatch_sweep(broker_queued=99) == [bulk.pk]


def _enqueued_label(source, *, seconds_ago: float, n: int = 0) -> Label:
    item = Item.objects.create(
        source=source,
        external_id=f"e{n}",
        webhook_id=f"w{n}",
        content_text="x",
        content_hash=f"h{n}",
        status=Item.Status.LABELING,
    )
    return Label.objects.create(
        item=item,
        labeler_version=source.labelers.get().current_version,
        content_hash=f"h{n}",
        enqueued_at=timezone.now() - timedelta(seconds=seconds_ago),
    )


def test_labels_whose_broker_message_was_lost_are_sent_again_oldest_first(source, settings):
    settings.LABEL_LOST_AFTER_SECONDS = 20
    oldest = _enqueued_label(source, seconds_ago=60, n=1)
    older = _enqueued_label(source, seconds_ago=25, n=2)
    recent = _enqueued_label(source, seconds_ago=5, n=3)
    # The broker holds one message: at least one of the two overdue labels lost its own.
    assert dispatch_module.dispatch_sweep(broker_queued=1) == [oldest.pk]
    oldest.refresh_from_db()
    assert (timezone.now() - oldest.enqueued_at).total_seconds() < 5
    # An empty broker (restarted without its store): every overdue label goes again.
    assert dispatch_module.dispatch_sweep(broker_queued=0) == [older.pk]
    # Enough messages waiting: nothing is lost, nothing is sent twice; recent ones wait.
    _enqueued_label(source, seconds_ago=30, n=4)
    assert dispatch_module.dispatch_sweep(broker_queued=1) == []
    assert recent.pk not in dispatch_module.dispatch_sweep(broker_queued=0)


def test_the_sweep_records_a_heartbeat(source, dispatch):
    dispatch()
    beat = DispatchHeartbeat.objects.get()
    assert (timezone.now() - beat.ran_at).total_seconds() < 5


def queue_page(client) -> str:
    client.force_login(UserFactory())
    response = client.get("/")
    assert response.status_code == 200
    return response.content.decode()


def test_the_queue_page_says_labeling_is_stalled_when_the_dispatch_stopped(client, source):
    DispatchHeartbeat.objects.create(pk=1, ran_at=timezone.now() - timedelta(minutes=2))
    page = queue_page(client)
    assert "Labeling is stalled: the dispatcher last ran 2\xa0minutes ago; is beat running?" in page
    assert "Good." not in page


def test_the_queue_page_counts_received_items_and_does_not_call_a_stuck_queue_good(client, source):
    item = Item.objects.create(source=source, external_id="x", content_text="x", content_hash="h")
    Item.objects.filter(pk=item.pk).update(received_at=timezone.now() - timedelta(minutes=5))
    page = queue_page(client)
    assert "Nothing is waiting for review." not in page
    assert "1 item not yet sent to the labelers" in page
    assert "Labeling is stalled" in page


def test_the_admin_says_labeling_is_stalled(admin_client, source):
    DispatchHeartbeat.objects.create(pk=1, ran_at=timezone.now() - timedelta(minutes=3))
    for url in ("/admin/labelers/label/", "/admin/labelers/relabelrun/", "/admin/moderation/item/"):
        page = admin_client.get(url).content.decode()
        assert "the dispatcher last ran 3\xa0minutes ago" in page, url


def test_a_running_dispatch_with_nothing_waiting_reads_good(client, source, dispatch):
    dispatch()
    assert "Nothing is waiting for review." in queue_page(client)


def test_the_broker_says_how_many_messages_wait_in_a_queue():
    queue = f"count-{uuid.uuid4().hex[:8]}"
    assert labels_queued_on_the_broker(queue) == 0  # Redis forgets empty queues: still 0
    target = Queue(queue, Exchange(queue), routing_key=queue)
    with celery_app.connection_for_write() as connection:
        producer = connection.Producer()
        for n in range(3):
            producer.publish(
                {"n": n}, exchange=target.exchange, routing_key=queue, declare=[target]
            )
        tasks._queued_cache.clear()
        try:
            assert labels_queued_on_the_broker(queue) == 3
        finally:
            target.bind(connection.default_channel).delete()
