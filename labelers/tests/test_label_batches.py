"""The label path's CPU (issue 24): a label is claimed and loaded in one statement, labels
go to the workers a few to a message, and a verdict that changes nothing writes nothing."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from labelers import dispatch, fetch, tasks
from labelers.models import Label
from moderation.intake import IntakePayload
from moderation.models import Item
from moderation.services.items import item_ingest
from moderation.services.verdicts import _item_verdict_update, item_labels_changed

pytestmark = pytest.mark.django_db


def pending_labels(source, n, text="batch item {n}", prefix="b"):
    for i in range(n):
        item_ingest(
            source=source,
            payload=IntakePayload(external_id=f"{prefix}{i}", content_text=text.format(n=i)),
            webhook_id=f"{prefix}{i}",
        )
    dispatch.items_route()
    labels = list(Label.objects.filter(item__external_id__startswith=prefix).order_by("id"))
    Label.objects.update(enqueued_at=timezone.now())
    return labels


def test_a_label_is_claimed_and_loaded_in_one_statement(fake_api, source):
    first, label = pending_labels(source, 2, text="one statement hate {n}")
    labeler_id = source.labelers.get().pk
    fetch._claim(first.pk)  # on PostgreSQL the session's first claim PREPAREs the statement
    with CaptureQueriesContext(connection) as queries:
        claimed = fetch._claim(label.pk)
    # Inside the test's transaction a savepoint guards a prepared statement the session
    # may have lost (a worker runs the claim outside any transaction, without one).
    statements = [q for q in queries.captured_queries if "SAVEPOINT" not in q["sql"]]
    assert len(statements) == 1
    assert claimed is not None and claimed.attempts == 1 and claimed.status == "running"
    # What the call and the verdict need came with the claim: no query reads them later.
    with CaptureQueriesContext(connection) as queries:
        assert claimed.item.content_text == "one statement hate 1"
        assert claimed.item.source_id == source.pk and claimed.item.revision == 1
        assert claimed.labeler_version.labeler_id == labeler_id
        assert claimed.labeler_version.criteria_text
        assert claimed.cached_id is None and claimed.in_flight_id is None
    assert queries.captured_queries == []
    row = Label.objects.get(pk=label.pk)
    assert row.status == "running" and row.worker == fetch.WORKER_NAME
    assert row.lease_expires_at > timezone.now()
    # Claimed already: a redelivered message finds nothing to claim.
    assert fetch._claim(label.pk) is None


def test_the_claim_brings_an_identical_answer_already_paid_for(fake_api, source):
    first, second = pending_labels(source, 2, text="same words")
    assert fetch.label_fetch(label_id=first.pk).result == "done"
    claimed = fetch._claim(second.pk)
    assert claimed.cached_id == first.pk and claimed.in_flight_id is None


def test_the_claim_brings_an_identical_label_being_paid_for(fake_api, source):
    first, second = pending_labels(source, 2, text="same words")
    assert fetch._claim(first.pk) is not None  # running, lease ahead
    claimed = fetch._claim(second.pk)
    assert claimed.in_flight_id == first.pk and claimed.cached_id is None


def test_labels_go_to_the_workers_a_batch_to_a_message(
    source, settings, monkeypatch, django_capture_on_commit_callbacks
):
    settings.LABEL_BATCH_SIZE = 2
    sent = []
    monkeypatch.setattr(
        tasks.label_fetch_task, "apply_async", lambda args, **kw: sent.append(("one", args))
    )
    monkeypatch.setattr(
        tasks.label_fetch_batch_task,
        "apply_async",
        lambda args, **kw: sent.append(("batch", args)),
    )
    with django_capture_on_commit_callbacks(execute=True):
        tasks.labels_enqueue([1, 2, 3, 4, 5])
    assert sent == [("batch", ([1, 2],)), ("batch", ([3, 4],)), ("one", (5,))]


def test_a_batch_labels_each_of_its_labels(fake_api, source):
    labels = pending_labels(source, 3, text="batch hate {n}")
    assert tasks.label_fetch_batch_task.run([label.pk for label in labels]) == 3
    assert set(Label.objects.values_list("status", flat=True)) == {"done"}
    assert Item.objects.filter(status="flagged").count() == 3
    assert len(fake_api.calls) == 3


def test_a_batch_past_its_time_sends_the_rest_back_in_line(fake_api, source, settings, monkeypatch):
    settings.LABEL_BATCH_SECONDS = 0
    labels = pending_labels(source, 3)
    resent = []
    monkeypatch.setattr(tasks, "labels_enqueue", lambda ids, **kw: resent.append(list(ids)))
    assert tasks.label_fetch_batch_task.run([label.pk for label in labels]) == 1
    assert resent == [[labels[1].pk, labels[2].pk]]
    assert [label.status for label in Label.objects.order_by("id")] == [
        "done",
        "pending",
        "pending",
    ]


def test_a_batch_that_gives_up_releases_its_label_and_puts_the_rest_back_at_once(
    fake_api, source, monkeypatch
):
    labels = pending_labels(source, 3)

    def killed(*args, **kwargs):
        raise SystemExit("time limit")

    monkeypatch.setattr(fetch, "answer_store", killed)
    with pytest.raises(SystemExit):
        tasks.label_fetch_batch_task.run([label.pk for label in labels])
    first, *rest = Label.objects.order_by("id")
    # The label it held is released (not left running until its lease runs out) ...
    assert first.status == "failed_transient" and first.enqueued_at is None
    # ... and the others, claimed with it but not started, are given back (not counted as
    # attempts) and go out with the next sweep, not after a timeout.
    assert [(label.status, label.enqueued_at, label.attempts) for label in rest] == [
        ("pending", None, 0)
    ] * 2
    monkeypatch.undo()
    assert sorted(dispatch.dispatch_sweep(broker_queued=0)) == [label.pk for label in labels]


def verdict(item, score, **kwargs):
    return _item_verdict_update(
        item_id=item.pk,
        status=kwargs.get("status", Item.Status.FLAGGED),
        violation_score=score,
        queue_score=score,
        revision=item.revision,
        versions=kwargs.get("versions", [1]),
    )


def test_a_verdict_that_changes_nothing_writes_nothing(source):
    item, _ = item_ingest(
        source=source, payload=IntakePayload(external_id="v", content_text="v"), webhook_id="v"
    )
    assert verdict(item, 0.9) == 1
    item.refresh_from_db()
    flagged_at = item.flagged_at
    assert item.status == "flagged" and item.violation_score == 0.9 and flagged_at
    assert verdict(item, 0.9) == 0  # the same verdict again: no write
    assert verdict(item, 0.9, versions=[1, 2]) == 1  # new versions: written
    assert verdict(item, 0.95, versions=[1, 2]) == 1  # new score: written
    item.refresh_from_db()
    assert item.violation_score == 0.95 and item.queue_score == 0.95
    assert item.verdict_versions == [1, 2] and item.flagged_at == flagged_at
    # Through the door: the same verdict twice leaves the item as the first one did.
    item_labels_changed(
        item_id=item.pk, violation_score=0.95, flagged=True, labeling=False, failed=False,
        revision=item.revision, versions=[1, 2],
    )  # fmt: skip
    assert Item.objects.get(pk=item.pk).status == "flagged"


def test_a_decided_item_keeps_its_status_and_takes_its_new_score(source):
    item, _ = item_ingest(
        source=source, payload=IntakePayload(external_id="d", content_text="d"), webhook_id="d"
    )
    Item.objects.filter(pk=item.pk).update(status=Item.Status.DECIDED, queue_score=None)
    assert verdict(item, 0.7) == 1
    item.refresh_from_db()
    assert item.status == "decided" and item.violation_score == 0.7
    assert item.queue_score is None and item.flagged_at is None
    assert verdict(item, 0.7) == 0


def test_a_claim_with_an_identical_label_still_open_reads_the_twins_again_after_it(
    fake_api, source, monkeypatch
):
    # The claim's statement cannot see a twin claimed at the same instant (PostgreSQL:
    # both would pay): while a twin is open, the twins are read again once the claim holds.
    first, second = pending_labels(source, 2, text="same words")
    (alone,) = pending_labels(source, 1, text="unique words", prefix="u")
    seen = []
    real = fetch._twins_now
    monkeypatch.setattr(fetch, "_twins_now", lambda label: seen.append(label.pk) or real(label))
    assert fetch._claim(alone.pk).in_flight_id is None
    assert seen == []  # unique content: one statement, nothing read again
    claimed = fetch._claim(second.pk)
    assert seen == [second.pk] and claimed.in_flight_id is None  # the twin is pending
    # The twin claimed after this claim's snapshot: the second look finds it.
    Label.objects.filter(pk=second.pk).update(status="pending", attempts=0)
    Label.objects.filter(pk=first.pk).update(
        status="running", lease_expires_at=timezone.now() + timedelta(seconds=60)
    )
    assert real(Label.objects.select_related("labeler_version").get(pk=second.pk)) == (
        None,
        first.pk,
    )


def claims_in(queries) -> int:
    """Claim statements run (the plain SQL, or the EXECUTE of its PREPAREd form)."""
    return sum(
        "attempts = attempts + 1" in q["sql"] or "labelers_label_claim" in q["sql"]
        for q in queries.captured_queries
        if not q["sql"].startswith("PREPARE")
    )


def test_a_batch_claims_its_labels_in_one_statement(fake_api, source):
    labels = pending_labels(source, 3, text="one claim {n}")
    with CaptureQueriesContext(connection) as queries:
        assert tasks.label_fetch_batch_task.run([label.pk for label in labels]) == 3
    assert claims_in(queries) == 1
    assert set(Label.objects.values_list("status", flat=True)) == {"done"}
    assert len(fake_api.calls) == 3


def test_identical_labels_in_one_batch_are_paid_for_once(fake_api, source):
    labels = pending_labels(source, 3, text="same words in a batch")
    assert tasks.label_fetch_batch_task.run([label.pk for label in labels]) == 3
    rows = list(Label.objects.order_by("id").values_list("status", "cache_hit"))
    assert rows == [("done", False), ("done", True), ("done", True)]
    assert len(fake_api.calls) == 1


def test_a_slow_batch_renews_its_waiting_leases_and_skips_a_label_taken_meanwhile(
    fake_api, source, settings, monkeypatch
):
    settings.LABEL_LEASE_SECONDS = 1  # renewed every 0.25 s
    fake_api.configure(latency=0.4)
    first, second, third = pending_labels(source, 3, text="slow batch {n}")
    real = fetch.answer_store

    def answered(**kwargs):
        stored = real(**kwargs)
        if kwargs["item_id"] == first.item_id:
            # Meanwhile the third's lease ran out and another attempt claimed it.
            Label.objects.filter(pk=third.pk).update(attempts=5, worker="another")
        return stored

    monkeypatch.setattr(fetch, "answer_store", answered)
    started = timezone.now()
    tasks.label_fetch_batch_task.run([first.pk, second.pk, third.pk])
    second.refresh_from_db()
    third.refresh_from_db()
    assert second.status == "done" and second.labeled_at > started
    # Not called and not written: the other attempt holds it.
    assert (third.status, third.attempts, third.worker) == ("running", 5, "another")
    assert len(fake_api.calls) == 2


def test_the_answer_and_the_verdict_are_one_statement(fake_api, source):
    if connection.vendor != "postgresql":
        pytest.skip("a write inside WITH is PostgreSQL's; elsewhere one transaction")
    first, label = pending_labels(source, 2, text="one statement {n}")
    fetch.label_fetch(label_id=first.pk)  # warm: the claim PREPAREd, routing in memory
    with CaptureQueriesContext(connection) as queries:
        assert fetch.label_fetch(label_id=label.pk).result == "done"
    # A session PREPAREs each statement's shape once (aside here), and inside the test's
    # transaction each runs in a savepoint.
    statements = [
        q["sql"] for q in queries.captured_queries
        if "SAVEPOINT" not in q["sql"] and not q["sql"].startswith("PREPARE")
    ]  # fmt: skip
    assert len(statements) == 2  # the claim, then the answer with the verdict
    item = Item.objects.get(pk=label.item_id)
    assert item.status in ("labeled", "audit") and item.violation_score is not None


def test_an_answer_for_a_reported_item_puts_it_in_the_queue_at_its_report_score(fake_api, source):
    (label,) = pending_labels(source, 1, text="a reported item")
    Item.objects.filter(pk=label.item_id).update(report_score=0.3)
    assert fetch.label_fetch(label_id=label.pk).result == "done"
    item = Item.objects.get(pk=label.item_id)
    assert item.status == "reported" and item.violation_score is not None
    assert item.queue_score == pytest.approx(max(0.3, item.violation_score))
    assert Label.objects.get(pk=label.pk).status == "done"
