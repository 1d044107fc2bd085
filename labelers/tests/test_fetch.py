import json
from datetime import timedelta

import pytest
import redis
from django.utils import timezone

from config.celery import app as celery_app
from labelers import dispatch, fetch, tasks
from labelers.breaker import Breaker
from labelers.criteria import labeler_version_create
from labelers.models import ApiKeyRefusal, Label
from labelers.throttle import FileState, RedisState
from moderation.intake import IntakePayload
from moderation.models import Item
from moderation.services.items import item_ingest
from moderation.tests.factories import LabelerFactory, SourceFactory
from moderation.tests.media import png_data_url
from testkit.signing import signed_headers

pytestmark = pytest.mark.django_db


def ingest(post_webhook, source, text, external_id=None):
    response = post_webhook(source, {"external_id": external_id or text, "content_text": text})
    assert response.status_code == 202, response.content
    return Item.objects.get(pk=response.json()["id"])


def test_a_one_flags_the_item_with_its_confidence_as_score(fake_api, post_webhook, source):
    item = ingest(post_webhook, source, "I hate you conf=0.91")
    item.refresh_from_db()
    assert item.status == Item.Status.FLAGGED
    assert item.violation_score == pytest.approx(0.91)
    label = item.labels.get()
    assert (label.status, label.label, label.attempts, label.cache_hit) == ("done", "1", 1, False)
    assert label.latency_ms > 0 and label.compute_time == 0.01 and label.model == "cope-latest"


def test_a_zero_leaves_the_item_labeled_with_one_minus_confidence(fake_api, post_webhook, source):
    item = ingest(post_webhook, source, "lovely weather conf=0.55")
    item.refresh_from_db()
    assert item.status == Item.Status.LABELED
    assert item.violation_score == pytest.approx(0.45)


def test_identical_content_is_labeled_from_cache_without_a_call(fake_api, post_webhook, source):
    ingest(post_webhook, source, "I hate you", external_id="a")
    second = ingest(post_webhook, source, "I hate you", external_id="b")
    assert len(fake_api.calls) == 1
    label = second.labels.get()
    assert label.cache_hit and label.label == "1"


def test_min_confidence_keeps_a_weak_one_out_of_the_queue(fake_api, post_webhook, db):
    labeler = LabelerFactory(min_confidence=0.8)
    source = SourceFactory(labelers=[labeler])
    item = ingest(post_webhook, source, "hate conf=0.6")
    item.refresh_from_db()
    assert item.status == Item.Status.LABELED


def test_a_422_fails_that_labeler_only(fake_api, post_webhook, db):
    good, bad = LabelerFactory(), LabelerFactory()
    source = SourceFactory(labelers=[good, bad])
    fake_api.configure(script=[200, 422])
    item = ingest(post_webhook, source, "I hate you")
    statuses = sorted(item.labels.values_list("status", flat=True))
    assert statuses == ["done", "failed"]
    failed = item.labels.get(status="failed")
    assert "scripted validation error" in failed.error
    item.refresh_from_db()
    assert item.status == Item.Status.FLAGGED


def test_a_401_parks_all_work_until_the_key_changes(
    fake_api, post_webhook, source, settings, dispatch
):
    fake_api.configure(status401=True)
    ingest(post_webhook, source, "one")
    ingest(post_webhook, source, "two")
    assert len(fake_api.calls) == 1  # the second label never hammered the API
    assert set(Label.objects.values_list("status", flat=True)) == {"waiting_key"}
    fake_api.configure(status401=False)
    settings.ZENTROPI_API_KEY = "test-key-2"
    fake_api.key = "test-key-2"
    try:
        assert dispatch() == 2  # both waiting labels go again, now with the new key
    finally:
        fake_api.key = "test-key"
    assert set(Label.objects.values_list("status", flat=True)) == {"done"}
    assert [call["api_key"] for call in fake_api.calls] == ["test-key", "test-key-2", "test-key-2"]
    assert ApiKeyRefusal.objects.count() == 1  # the refused key stays refused


def test_resume_after_key_fix_runs_waiting_labels(
    fake_api, post_webhook, source, django_capture_on_commit_callbacks
):
    fake_api.configure(status401=True)
    item = ingest(post_webhook, source, "I hate this")
    fake_api.configure(status401=False)
    with django_capture_on_commit_callbacks(execute=True):
        tasks.labels_resume_waiting_key()
    label = item.labels.get()
    assert label.status == "done" and label.label == "1"
    # Refused once, then called again with the (now accepted) key: one call each.
    assert [call["api_key"] for call in fake_api.calls] == ["test-key", "test-key"]
    assert ApiKeyRefusal.objects.count() == 0


def test_no_key_waits_visibly_without_calling(fake_api, post_webhook, source, settings):
    settings.ZENTROPI_API_KEY = ""
    item = ingest(post_webhook, source, "hello")
    label = item.labels.get()
    assert label.status == "waiting_key" and "ZENTROPI_API_KEY" in label.error
    assert fake_api.calls == []


def test_a_transient_error_schedules_a_retry_with_backoff(fake_api, post_webhook, source):
    fake_api.configure(script=[500])
    item = ingest(post_webhook, source, "hello")
    label = item.labels.get()
    assert label.status == "pending" and label.attempts == 1
    assert label.next_attempt_at > timezone.now()
    assert "500" in label.error


def test_retry_after_is_honoured(fake_api, post_webhook, source):
    fake_api.configure(script=[429], retry_after="120")
    item = ingest(post_webhook, source, "hello")
    label = item.labels.get()
    assert label.next_attempt_at >= timezone.now() + timedelta(seconds=115)


def test_a_label_failing_again_and_again_keeps_retrying_with_capped_backoff(
    fake_api, post_webhook, source, settings
):
    settings.LABEL_BACKOFF_CAP = 60.0
    fake_api.configure(fail_500=1.0)
    item = ingest(post_webhook, source, "hello")
    label = item.labels.get()
    for _ in range(11):  # fewer calls than the breaker needs to judge the API as a whole
        Label.objects.filter(pk=label.pk).update(next_attempt_at=timezone.now())
        assert fetch.label_fetch(label_id=label.pk).result == "retry"
    label.refresh_from_db()
    assert label.status == "pending" and label.attempts == 12
    assert label.next_attempt_at <= timezone.now() + timedelta(seconds=60)
    fake_api.configure(fail_500=0.0)
    Label.objects.filter(pk=label.pk).update(next_attempt_at=timezone.now())
    assert fetch.label_fetch(label_id=label.pk).result == "done"


def test_a_redelivered_message_makes_no_second_call(fake_api, post_webhook, source):
    item = ingest(post_webhook, source, "hello")
    label = item.labels.get()
    assert fetch.label_fetch(label_id=label.pk).result == "skipped"
    assert len(fake_api.calls) == 1


def test_the_sweep_takes_back_work_from_a_dead_worker(
    fake_api, source, django_capture_on_commit_callbacks, settings
):

    # Routed; then a worker dies holding its label.
    label = routed_label(source, text="kill", webhook_id="w1")
    past = timezone.now() - timedelta(seconds=1)
    Label.objects.filter(pk=label.pk).update(status="running", lease_expires_at=past, attempts=1)
    with django_capture_on_commit_callbacks(execute=True):
        assert tasks.label_sweep_task() == 1
    label.refresh_from_db()
    assert label.status == "done" and label.attempts == 2


def test_media_items_default_to_the_multimodal_model(fake_api, post_webhook, source):
    response = post_webhook(
        source, {"external_id": "img", "content_text": "look", "content_image": png_data_url()}
    )
    assert response.status_code == 202
    assert fake_api.calls[0]["model"] == "cope-b-a4b-mm"
    assert fake_api.calls[0]["has_image"] and fake_api.calls[0]["content_text"] == "look"


def test_editing_criteria_makes_a_new_version_and_old_labels_keep_theirs(
    fake_api, post_webhook, source
):
    labeler = source.labelers.get()
    item = ingest(post_webhook, source, "hate")
    v2 = labeler_version_create(labeler=labeler, criteria_text="Label spam")
    assert v2.number == 2
    assert item.labels.get().labeler_version.number == 1
    assert labeler.current_version == v2


def test_a_version_needs_exactly_one_policy(db):
    labeler = LabelerFactory()
    with pytest.raises(ValueError):
        labeler_version_create(labeler=labeler, criteria_text="x", remote_labeler_id="y")
    with pytest.raises(ValueError):
        labeler_version_create(labeler=labeler)


def test_intake_stores_only_the_item_and_the_dispatch_routes_it(fake_api, source, client, db):

    body = json.dumps({"external_id": "r1", "content_text": "hello"}).encode()
    response = client.post(
        f"/webhooks/{source.slug}/",
        data=body,
        content_type="application/json",
        headers=signed_headers(source._secret, body),
    )
    assert response.json()["status"] == "received"
    item = Item.objects.get()
    assert item.labels.count() == 0
    assert dispatch.items_route() == 1
    item.refresh_from_db()
    assert item.status == "labeling" and item.labels.get().status == "pending"
    assert dispatch.items_route() == 0  # routed once


def test_the_api_key_never_reaches_logs_or_stored_errors(
    fake_api, post_webhook, source, settings, caplog
):
    settings.ZENTROPI_API_KEY = "sk-live-very-secret-key"  # the fake refuses it: 401
    caplog.set_level("DEBUG")
    item = ingest(post_webhook, source, "hello")
    label = item.labels.get()
    assert label.status == "waiting_key"
    assert "sk-live-very-secret-key" not in caplog.text
    assert "sk-live-very-secret-key" not in label.error
    assert not ApiKeyRefusal.objects.filter(fingerprint__contains="sk-live").exists()


def test_a_worker_whose_lease_ran_out_cannot_overwrite_the_label(fake_api, post_webhook, source):
    item = ingest(post_webhook, source, "hate conf=0.9")
    label = item.labels.get()
    assert label.status == "done"
    # A stale attempt (attempt 1 of a label that is done) tries to store a failure.
    Label.objects.filter(pk=label.pk).update(status="running", attempts=2)
    stale = Label.objects.get(pk=label.pk)
    stale.attempts = 1
    assert fetch._store(stale, status="failed", error="late") == 0
    label.refresh_from_db()
    assert label.status == "running" and label.error == ""


def test_an_unexpected_error_is_retried_not_left_running(
    fake_api, post_webhook, source, monkeypatch
):
    def broken(label):
        raise RuntimeError("a bug")

    monkeypatch.setattr(fetch, "_build_request", broken)
    item = ingest(post_webhook, source, "hello")
    label = item.labels.get()
    assert label.status == "pending" and label.next_attempt_at is not None
    assert "unexpected RuntimeError" in label.error


def routed_label(source, *, text="hate", external_id="x", webhook_id="w") -> Label:
    """The one label of a new item the dispatch has routed (not yet fetched)."""
    item, _ = item_ingest(
        source=source,
        payload=IntakePayload(external_id=external_id, content_text=text),
        webhook_id=webhook_id,
    )
    dispatch.items_route()
    return item.labels.get()


def two_identical_labels(source, text="twin words"):
    for n in range(2):
        item_ingest(
            source=source,
            payload=IntakePayload(external_id=f"twin{n}", content_text=text),
            webhook_id=f"twin{n}",
        )
    dispatch.items_route()
    first, second = Label.objects.order_by("id")
    return first, second


def start_running(label, *, lease_seconds=60):
    lease = timezone.now() + timedelta(seconds=lease_seconds)
    Label.objects.filter(pk=label.pk).update(status="running", lease_expires_at=lease, attempts=1)


def test_identical_content_in_flight_is_waited_for_instead_of_called(fake_api, source):
    first, second = two_identical_labels(source)
    start_running(first)
    outcome = fetch.label_fetch(label_id=second.pk)
    assert outcome.result == "waiting" and 0.5 <= outcome.retry_in <= 3
    second.refresh_from_db()
    assert fake_api.calls == []
    assert second.status == "pending" and second.attempts == 0  # waiting is not a failure
    assert f"label {first.pk}" in second.error


def test_a_waiting_label_is_served_from_its_twin_once_that_is_done(fake_api, source):
    first, second = two_identical_labels(source, text="twin hate conf=0.8")
    start_running(first)
    fetch.label_fetch(label_id=second.pk)
    Label.objects.filter(pk=first.pk).update(status="pending")
    assert fetch.label_fetch(label_id=first.pk).result == "done"
    Label.objects.filter(pk=second.pk).update(next_attempt_at=timezone.now())
    assert fetch.label_fetch(label_id=second.pk).result == "cached"
    second.refresh_from_db()
    assert second.cache_hit and second.label == "1" and second.error == ""
    assert len(fake_api.calls) == 1


def test_a_waiting_label_calls_itself_when_its_twin_failed(fake_api, source):
    first, second = two_identical_labels(source)
    start_running(first)
    fetch.label_fetch(label_id=second.pk)
    Label.objects.filter(pk=first.pk).update(status="failed", lease_expires_at=None)
    Label.objects.filter(pk=second.pk).update(next_attempt_at=timezone.now())
    assert fetch.label_fetch(label_id=second.pk).result == "done"
    assert len(fake_api.calls) == 1


def test_a_twin_whose_lease_ran_out_is_not_waited_for(fake_api, source):
    first, second = two_identical_labels(source)
    start_running(first, lease_seconds=-1)  # its worker died
    assert fetch.label_fetch(label_id=second.pk).result == "done"
    assert len(fake_api.calls) == 1


def remote_labeler_source(version_id):
    labeler = LabelerFactory()
    labeler_version_create(
        labeler=labeler, remote_labeler_id="lab_abc", remote_version_id=version_id
    )
    return SourceFactory(labelers=[labeler])


def second_of_two_identical_fetched(version_id, *, first_answered_ago: timedelta) -> str:
    """Two identical labels of a remote labeler on `version_id`; the first answered
    `first_answered_ago`: what fetching the second does."""
    first, second = two_identical_labels(remote_labeler_source(version_id))
    assert fetch.label_fetch(label_id=first.pk).result == "done"
    Label.objects.filter(pk=first.pk).update(labeled_at=timezone.now() - first_answered_ago)
    return fetch.label_fetch(label_id=second.pk).result


def test_a_remote_labeler_on_latest_does_not_reuse_answers_older_than_the_limit(fake_api, settings):
    settings.LABEL_REMOTE_LATEST_CACHE_SECONDS = 3600
    fetched = second_of_two_identical_fetched("latest", first_answered_ago=timedelta(hours=2))
    assert fetched == "done"
    assert len(fake_api.calls) == 2


def test_a_remote_labeler_on_latest_reuses_a_fresh_answer(fake_api, settings):
    settings.LABEL_REMOTE_LATEST_CACHE_SECONDS = 3600
    fetched = second_of_two_identical_fetched("latest", first_answered_ago=timedelta(minutes=50))
    assert fetched == "cached"
    assert len(fake_api.calls) == 1


def test_a_remote_labeler_pinned_to_a_version_reuses_old_answers(fake_api, settings):
    settings.LABEL_REMOTE_LATEST_CACHE_SECONDS = 3600
    assert second_of_two_identical_fetched("v7", first_answered_ago=timedelta(days=30)) == "cached"
    assert len(fake_api.calls) == 1


def _broker_blinks(*args, **kwargs):
    raise redis.ConnectionError("Error 111 connecting to the broker")


def test_a_paid_answer_is_stored_when_the_breaker_bookkeeping_fails_after_it(
    fake_api, source, monkeypatch
):
    """Redis restarting right after a call answered 200: the answer is paid for, so it is
    stored; the breaker's count is what is lost."""
    monkeypatch.setattr(Breaker, "record", _broker_blinks)
    label = routed_label(source)
    assert fetch.label_fetch(label_id=label.pk).result == "done"
    label.refresh_from_db()
    assert label.status == "done" and label.label == "1"
    assert len(fake_api.calls) == 1


def test_a_paid_answer_is_stored_when_the_throttle_cannot_release_its_slot(
    fake_api, source, monkeypatch, settings
):
    settings.LABEL_MAX_IN_FLIGHT = 2
    monkeypatch.setattr(FileState, "release", _broker_blinks)
    monkeypatch.setattr(RedisState, "release", _broker_blinks)
    label = routed_label(source)
    assert fetch.label_fetch(label_id=label.pk).result == "done"
    label.refresh_from_db()
    assert label.status == "done"
    assert len(fake_api.calls) == 1


def test_a_failure_recorded_while_the_broker_is_down_is_retried_soon_not_left_running(
    fake_api, source, monkeypatch
):
    fake_api.configure(script=[500])
    monkeypatch.setattr(Breaker, "record", _broker_blinks)
    label = routed_label(source)
    assert fetch.label_fetch(label_id=label.pk).result == "retry"
    label.refresh_from_db()
    assert label.status == "pending" and label.lease_expires_at is None


def test_a_label_the_worker_gives_up_on_releases_its_claim_at_once(fake_api, source, monkeypatch):
    """Whatever escapes after the claim (a time limit, a cancelled task, a bug in the
    bookkeeping) gives the label back at once, due again in seconds, instead of leaving it
    running until its lease runs out."""

    class GivenUp(BaseException):  # as Celery's time limits and cancellations are raised
        pass

    def give_up(*args, **kwargs):
        raise GivenUp

    monkeypatch.setattr(fetch, "answer_store", give_up)
    label = routed_label(source)
    with pytest.raises(GivenUp):
        fetch.label_fetch(label_id=label.pk)
    label.refresh_from_db()
    assert label.status == "failed_transient" and label.lease_expires_at is None
    assert label.next_attempt_at <= timezone.now() + timedelta(seconds=5)
    assert label.enqueued_at is None  # the next sweep sends it
    assert label.pk in dispatch.dispatch_sweep()


def test_a_worker_does_not_cancel_its_running_labels_on_a_broker_connection_loss():
    """Cancelling discards answers already paid for (terminated under prefork); the claim in
    the database makes the redelivered message harmless instead (see config/settings.py)."""
    assert celery_app.conf.worker_cancel_long_running_tasks_on_connection_loss is False


def test_an_item_the_api_always_fails_for_fails_for_good_and_reaches_a_person(
    fake_api, post_webhook, source, settings
):
    """No item leaves the flow unseen: one the API answers 5xx for, try after try, fails
    for good after LABEL_GIVE_UP_ATTEMPTS and goes to review as "labeling failed", with why."""
    settings.LABEL_GIVE_UP_ATTEMPTS = 4
    fake_api.configure(fail_500=1.0)
    item = ingest(post_webhook, source, "hello")  # the first try
    label = item.labels.get()
    results = []
    for _ in range(3):
        Label.objects.filter(pk=label.pk).update(next_attempt_at=timezone.now())
        results.append(fetch.label_fetch(label_id=label.pk).result)
    assert results == ["retry", "retry", "failed"]
    label.refresh_from_db()
    assert label.status == "failed" and label.attempts == 4
    assert "500" in label.error and "gave up after 4 tries" in label.error
    item.refresh_from_db()
    assert item.status == Item.Status.FAILED
    Label.objects.filter(pk=label.pk).update(next_attempt_at=timezone.now())
    assert fetch.label_fetch(label_id=label.pk).result == "skipped"  # for good
    assert len(fake_api.calls) == 4


def test_an_item_failing_for_longer_than_the_limit_fails_for_good(
    fake_api, post_webhook, source, settings
):
    settings.LABEL_GIVE_UP_HOURS = 1
    fake_api.configure(fail_500=1.0)
    item = ingest(post_webhook, source, "hello")
    label = item.labels.get()
    Label.objects.filter(pk=label.pk).update(
        next_attempt_at=timezone.now(), created_at=timezone.now() - timedelta(hours=2)
    )
    assert fetch.label_fetch(label_id=label.pk).result == "failed"
    label.refresh_from_db()
    assert "gave up after 2 tries" in label.error


def test_throttling_alone_never_fails_an_item_for_good(fake_api, post_webhook, source, settings):
    """A 429 says the API is busy, not that the item is bad."""
    settings.LABEL_GIVE_UP_ATTEMPTS = 2
    fake_api.configure(fail_429=1.0)
    item = ingest(post_webhook, source, "hello")
    label = item.labels.get()
    for _ in range(3):
        Label.objects.filter(pk=label.pk).update(next_attempt_at=timezone.now())
        assert fetch.label_fetch(label_id=label.pk).result == "retry"
