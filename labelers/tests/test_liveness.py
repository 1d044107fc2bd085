"""Worker liveness: a worker whose heartbeat stopped (kill -9, a lost machine) has its
running and held labels taken back by the next sweep, in seconds instead of the lease."""

from datetime import timedelta

import pytest
from celery.worker import state as worker_state
from django.utils import timezone

from labelers import dispatch, liveness
from labelers.models import DispatchHeartbeat, Label, WorkerHeartbeat
from moderation.tests.factories import LabelerFactory, SourceFactory
from testkit.seed import items_bulk, labels_bulk

pytestmark = pytest.mark.django_db


def ago(seconds: float):
    return timezone.now() - timedelta(seconds=seconds)


@pytest.fixture
def labels(settings):
    """Four labels of one source, routed; the dispatch running for a minute already."""
    settings.WORKER_DEAD_AFTER_SECONDS = 15
    source = SourceFactory()
    version = LabelerFactory().current_version
    items = items_bulk(source=source, count=4, prefix="live", status="labeling")
    DispatchHeartbeat.objects.create(pk=1, ran_at=ago(1), running_since=ago(60))
    return labels_bulk(items, version=version, enqueued_at=timezone.now())


def run(label: Label, worker: str, *, lease_in: float = 150) -> None:
    label.status, label.worker = Label.Status.RUNNING, worker
    label.lease_expires_at = timezone.now() + timedelta(seconds=lease_in)
    label.enqueued_at, label.attempts = ago(10), 1
    label.save()


def held(label: Label) -> None:
    label.enqueued_at = ago(10)
    label.save()


def test_a_dead_workers_running_and_held_labels_are_sent_by_the_next_sweep(labels):
    running, holding, other_running, untouched = labels
    WorkerHeartbeat.objects.create(name="dead", seen_at=ago(20), holding=[holding.pk])
    WorkerHeartbeat.objects.create(name="alive", seen_at=ago(1), holding=[untouched.pk])
    run(running, "dead")
    held(holding)
    run(other_running, "alive")
    held(untouched)

    sent = dispatch.dispatch_sweep(broker_queued=10)

    assert sorted(sent) == sorted([running.pk, holding.pk])
    assert list(WorkerHeartbeat.objects.values_list("name", flat=True)) == ["alive"]
    # The dead worker's attempt can no longer write: the row is claimed anew by the task.
    running.refresh_from_db()
    assert running.lease_expires_at < timezone.now()


def test_a_live_worker_keeps_its_labels(labels):
    running, holding, *_ = labels
    WorkerHeartbeat.objects.create(name="busy", seen_at=ago(3), holding=[holding.pk])
    run(running, "busy")
    held(holding)
    assert dispatch.dispatch_sweep(broker_queued=10) == []
    assert WorkerHeartbeat.objects.filter(name="busy").exists()


def test_no_worker_is_declared_dead_right_after_the_dispatch_restarts(labels):
    """After a database outage every heartbeat is old; the workers write again within
    seconds, so the dispatch waits a heartbeat timeout before judging anyone."""
    running, *_ = labels
    DispatchHeartbeat.objects.filter(pk=1).update(ran_at=ago(120), running_since=ago(180))
    WorkerHeartbeat.objects.create(name="was-cut-off", seen_at=ago(110))
    run(running, "was-cut-off")
    assert dispatch.dispatch_sweep(broker_queued=10) == []
    beat = DispatchHeartbeat.objects.get()
    assert (timezone.now() - beat.running_since).total_seconds() < 5
    assert WorkerHeartbeat.objects.filter(name="was-cut-off").exists()


def test_labels_of_a_worker_that_never_wrote_a_heartbeat_wait_for_their_lease(labels):
    running, *_ = labels
    run(running, "unknown-worker", lease_in=100)
    assert dispatch.dispatch_sweep(broker_queued=10) == []
    run(running, "unknown-worker", lease_in=-1)
    assert dispatch.dispatch_sweep(broker_queued=10) == [running.pk]


def test_a_claim_stamps_this_processs_worker_name(fake_api, post_webhook, source):
    response = post_webhook(source, {"external_id": "w", "content_text": "stamped"})
    label = Label.objects.get(item_id=response.json()["id"])
    assert label.worker == liveness.WORKER_NAME


class FakeRequest:
    def __init__(self, name, args):
        self.name, self.args = name, args


def test_the_heartbeat_lists_the_label_tasks_this_worker_holds():
    requests = [
        FakeRequest("labelers.tasks.label_fetch", (7,)),
        FakeRequest("labelers.tasks.label_fetch", (3,)),
        FakeRequest("labelers.tasks.label_fetch_batch", ([9, 4],)),
        FakeRequest("labelers.tasks.label_sweep", ()),
    ]
    for request in requests:
        worker_state.reserved_requests.add(request)
    try:
        assert liveness.labels_held() == [3, 4, 7, 9]
        liveness.worker_heartbeat(name="me", holding=liveness.labels_held())
        assert WorkerHeartbeat.objects.get(name="me").holding == [3, 4, 7, 9]
    finally:
        for request in requests:
            worker_state.reserved_requests.discard(request)
