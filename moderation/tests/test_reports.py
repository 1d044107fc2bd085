"""Reports (a second intake): the signed report webhook, reporter trust and the report score,
the queue's place of a reported item, approvals and removals, and what products get back."""

import json

import pytest
from standardwebhooks.webhooks import Webhook

from moderation.filters import QueueFilter
from moderation.models import Decision, Item, Report
from moderation.selectors.queue import queue_page
from moderation.selectors.reports import (
    item_report_score,
    report_score,
    reporter_trust,
    reporters_trust,
)
from moderation.services.decisions import decision_record, decision_undo
from moderation.services.verdicts import item_labels_changed
from moderation.tests.factories import ItemFactory, SourceFactory, UserFactory, reason_id
from moderation.tests.test_openapi import errors, response_validator, validator_at
from testkit.receiver import Receiver
from testkit.signing import signed_headers

pytestmark = pytest.mark.django_db

NEW = reporter_trust(removed=0, decided=0)


@pytest.fixture
def post_report(client, dispatch):
    """POST a signed body to a source's report webhook, then dispatch labels as beat would."""

    def post(source, payload, *, raw: bytes | None = None, headers: dict | None = None, **kw):
        body = raw if raw is not None else json.dumps(payload).encode()
        sent = headers if headers is not None else signed_headers(source._secret, body, **kw)
        response = client.post(
            f"/webhooks/{source.slug}/reports/",
            data=body,
            content_type="application/json",
            headers=sent,
        )
        dispatch()
        return response

    return post


def labeled_item(source, external_id="post-1", **fields) -> Item:
    """An item its labelers cleared: not in the queue."""
    defaults = {"status": Item.Status.LABELED, "violation_score": 0.1, "queue_score": None}
    return ItemFactory(source=source, external_id=external_id, **{**defaults, **fields})


def report(n=1, external_id="post-1", reporter="alice", **extra) -> dict:
    body = {"report_id": f"r{n}", "external_id": external_id, "reason": "spam"}
    if reporter is not None:
        body["reporter"] = {"id": reporter}
    return {**body, **extra}


def in_queue(reviewer, **filters) -> list[int]:
    items, _ = queue_page(reviewer=reviewer, filters=QueueFilter(**filters))
    return [item.pk for item in items]


@pytest.fixture
def person():
    return UserFactory()


# --- the formula -------------------------------------------------------------------------


def test_a_new_reporter_counts_a_little_and_the_prior_is_a_quarter():
    assert pytest.approx(0.25) == NEW
    assert report_score([NEW]) == pytest.approx(0.25)
    assert report_score([]) is None


def test_trust_follows_the_reporters_record():
    always_rejected = reporter_trust(removed=0, decided=20)
    always_right = reporter_trust(removed=20, decided=20)
    assert always_rejected == pytest.approx(1 / 24) and always_rejected < 0.05
    assert always_right == pytest.approx(21 / 24)
    assert always_rejected < NEW < reporter_trust(removed=3, decided=4) < always_right


def test_the_score_grows_with_reporters_and_stays_below_one():
    scores = [report_score([NEW] * n) for n in range(1, 30)]
    assert all(a < b for a, b in zip(scores, scores[1:], strict=False))
    assert scores[2] == pytest.approx(1 - 0.75**3)
    assert scores[-1] < 1.0
    # Ten reporters always rejected weigh less than one new reporter.
    assert report_score([reporter_trust(removed=0, decided=40)] * 10) < NEW


def test_trust_is_learned_from_constructed_histories(source, person):
    """alice's reports ended in 2 removals out of 3 decided items; bob's in 0 out of 3."""
    history = [("alice", "remove"), ("alice", "remove"), ("alice", "approve")]
    history += [("bob", "approve")] * 3
    for n, (who, action) in enumerate(history):
        item = labeled_item(source, f"old-{n}")
        Report.objects.create(
            source=source, report_id=f"r{n}", item=item, reason="spam", reporter_id=who
        )
        decision_record(
            item=item,
            reviewer=person,
            action=action,
            reason_id=reason_id(action) if action == "remove" else None,
        )
    # An open report is not part of anyone's record yet.
    Report.objects.create(
        source=source,
        report_id="open",
        item=labeled_item(source),
        reason="spam",
        reporter_id="bob",
    )
    trust = reporters_trust(source_id=source.pk, reporter_ids=["alice", "bob", "carol"])
    assert trust["alice"] == pytest.approx((2 + 1) / (3 + 4))
    assert trust["bob"] == pytest.approx(1 / 7)
    assert trust["carol"] == pytest.approx(NEW)
    # Another source's record is not theirs.
    other = SourceFactory()
    assert reporters_trust(source_id=other.pk, reporter_ids=["alice"])["alice"] == NEW


# --- the webhook ------------------------------------------------------------------------


def test_a_report_on_a_cleared_item_puts_it_in_the_queue(post_report, source, person):
    item = labeled_item(source)
    assert in_queue(person) == []
    response = post_report(source, report())
    assert response.status_code == 202
    stored = Report.objects.get()
    assert response.json() == {"id": stored.pk, "item": item.pk, "status": "reported"}
    item.refresh_from_db()
    assert item.status == Item.Status.REPORTED
    assert item.report_score == pytest.approx(NEW)
    assert item.queue_score == pytest.approx(NEW)
    # The default view, not only a filter.
    assert in_queue(person) == [item.pk]


def test_the_same_report_id_again_answers_200_and_stores_nothing_twice(post_report, source):
    labeled_item(source)
    first = post_report(source, report())
    again = post_report(source, report(reason="other"))
    assert again.status_code == 200
    assert again.json() == first.json()
    assert Report.objects.count() == 1


def test_an_unknown_item_without_content_is_404_naming_external_id(post_report, source):
    response = post_report(source, report(external_id="nope"))
    assert response.status_code == 404
    assert response.json()["field"] == "external_id"
    assert "nope" in response.json()["error"]
    assert Report.objects.count() == 0 and Item.objects.count() == 0


def test_a_report_with_content_creates_the_item_labeled_as_usual(
    fake_api, post_report, source, person
):
    response = post_report(
        source,
        report(external_id="new-1", content_text="a friendly post", author={"id": "u9"}),
    )
    assert response.status_code == 202
    item = Item.objects.get(external_id="new-1")
    assert response.json()["item"] == item.pk
    assert item.author.external_id == "u9"
    assert item.labels.count() == 1
    # Its labeler cleared it; the report keeps it in the queue.
    assert item.status == Item.Status.REPORTED
    assert item.queue_score == pytest.approx(max(NEW, item.violation_score))
    assert in_queue(person) == [item.pk]


def test_a_flagged_item_waits_at_the_higher_of_its_two_scores(post_report, source):
    low = ItemFactory(source=source, external_id="low", violation_score=0.1, queue_score=0.1)
    high = ItemFactory(source=source, external_id="high", violation_score=0.9, queue_score=0.9)
    for n, target in enumerate(["low", "high"]):
        post_report(source, report(n, external_id=target))
    low.refresh_from_db()
    high.refresh_from_db()
    assert low.status == high.status == Item.Status.FLAGGED
    assert low.queue_score == pytest.approx(NEW)
    assert high.queue_score == pytest.approx(0.9)


def test_one_reporter_counts_once_and_anonymous_reports_count_as_one(post_report, source):
    item = labeled_item(source)
    for n in range(3):
        post_report(source, report(n, reporter="alice"))
    item.refresh_from_db()
    assert item.report_score == pytest.approx(NEW)
    for n in range(3, 6):
        post_report(source, report(n, reporter=None))
    item.refresh_from_db()
    assert item.report_score == pytest.approx(report_score([NEW, NEW]))
    post_report(source, report(9, reporter="bob"))
    item.refresh_from_db()
    assert item.report_score == pytest.approx(report_score([NEW] * 3))
    assert Report.objects.filter(item=item).count() == 7


def test_three_reporters_rank_above_one(post_report, source, person):
    once = labeled_item(source, "once")
    thrice = labeled_item(source, "thrice")
    post_report(source, report(0, external_id="once"))
    for n, who in enumerate(["a", "b", "c"], start=1):
        post_report(source, report(n, external_id="thrice", reporter=who))
    assert in_queue(person) == [thrice.pk, once.pk]


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"external_id": "post-1", "reason": "spam"}, 422, "report_id"),
        ({"report_id": 5, "external_id": "post-1", "reason": "spam"}, 422, "report_id"),
        ({"report_id": "r1", "reason": "spam"}, 422, "external_id"),
        ({"report_id": "r1", "external_id": "post-1"}, 422, "reason"),
        ({"report_id": "r1", "external_id": "post-1", "reason": ""}, 422, "reason"),
        ({"report_id": "r1", "external_id": "post-1", "reason": "x" * 101}, 422, "reason"),
        ({**report(), "reporter": "alice"}, 422, "reporter"),
        ({**report(), "reporter": {"id": 7}}, 422, "reporter.id"),
        ({**report(), "reporter": {}}, 422, "reporter.id"),
        ({**report(), "comment": 3}, 422, "comment"),
        ({**report(), "comment": "x" * 5001}, 413, "comment"),
        ({**report(), "comment": "a\x00b"}, 422, "comment"),
        ({**report(), "reason": "\ud800"}, 422, "reason"),
        ({**report(external_id="new"), "content_text": "x", "author": {"id": 3}}, 422, "author.id"),
        ({**report(external_id="new"), "content_image": "data:x"}, 422, "content_image"),
        ({**report(external_id="new"), "author": {"name": "no id"}}, 422, "author.id"),
        ([report()], 422, "body"),
    ],
)
def test_a_broken_field_is_a_4xx_naming_it_and_stores_nothing(
    post_report, source, body, status, field
):
    labeled_item(source)
    response = post_report(source, body)
    assert response.status_code == status, response.content
    assert response.json()["field"] == field
    assert Report.objects.count() == 0 and Item.objects.count() == 1


def test_a_report_is_signed_as_an_item_is(post_report, source):
    labeled_item(source)
    body = json.dumps(report()).encode()
    other = SourceFactory()
    response = post_report(source, None, raw=body, headers=signed_headers(other._secret, body))
    assert response.status_code == 401
    old = post_report(source, report(), timestamp=1_000_000)
    assert old.status_code == 401 and old.json()["field"] == "webhook-timestamp"
    assert post_report(source, None, raw=b"{", headers={}).status_code == 400
    assert Report.objects.count() == 0


# --- decisions -------------------------------------------------------------------------


def test_a_decision_answers_the_open_reports_and_products_get_their_ids(
    post_report, source, person, django_capture_on_commit_callbacks, settings
):
    # As in the embedded default, whatever DATABASE_URL the tests run with.
    settings.CALLBACK_ALLOW_HTTP = True
    settings.CALLBACK_ALLOW_PRIVATE = True
    receiver = Receiver().start()
    try:
        source.callback_url = receiver.url
        source.save()
        item = labeled_item(source)
        post_report(source, report(1, reporter="a"))
        post_report(source, report(2, reporter="b"))
        item.refresh_from_db()
        with django_capture_on_commit_callbacks(execute=True):
            decision = decision_record(
                item=item, reviewer=person, action="remove", reason_id=reason_id("remove")
            )
        [request] = receiver.received
    finally:
        receiver.stop()
    payload = Webhook(source._secret).verify(request.body.decode(), request.headers)
    assert payload["type"] == "decision.created"
    assert payload["data"]["report_ids"] == ["r1", "r2"]
    assert set(Report.objects.values_list("decision_id", flat=True)) == {decision.pk}
    item.refresh_from_db()
    assert item.report_score is None and item.status == Item.Status.DECIDED
    # The reporters' record learnt it.
    assert reporters_trust(source_id=source.pk, reporter_ids=["a"])["a"] == pytest.approx(2 / 5)


def test_the_decisions_feed_carries_report_ids(client, post_report, source, person):
    item = labeled_item(source)
    post_report(source, report(1))
    decision_record(item=item, reviewer=person, action="approve")
    response = client.get("/api/decisions/", headers={"Authorization": f"Bearer {source._token}"})
    [event] = response.json()["decisions"]
    assert event["report_ids"] == ["r1"]


def test_an_escalation_leaves_the_reports_open(post_report, source, person):
    item = labeled_item(source)
    post_report(source, report(1))
    item.refresh_from_db()
    decision_record(item=item, reviewer=person, action="escalate", reason_id=reason_id("escalate"))
    item.refresh_from_db()
    assert item.status == Item.Status.ESCALATED
    assert item.queue_score == pytest.approx(NEW)
    assert Report.objects.get().decision_id is None


def test_an_approved_item_returns_only_after_enough_new_reporters(post_report, source, person):
    item = labeled_item(source)
    post_report(source, report(1, reporter="a"))
    item.refresh_from_db()
    decision_record(item=item, reviewer=person, action="approve")
    # The same reporter again and a second one: not enough (3 by default).
    for n, who in enumerate(["a", "b"], start=2):
        post_report(source, report(n, reporter=who))
        item.refresh_from_db()
        assert item.status == Item.Status.DECIDED
        assert in_queue(person) == []
    post_report(source, report(4, reporter="c"))
    item.refresh_from_db()
    assert item.status == Item.Status.REPORTED
    assert in_queue(person) == [item.pk]
    assert in_queue(person, reported=True) == [item.pk]
    decision = decision_record(item=item, reviewer=person, action="approve")
    assert decision.report_ids == ["r2", "r3", "r4"]


def test_the_return_threshold_is_per_source(post_report, person):
    source = SourceFactory(report_return_reporters=1)
    item = labeled_item(source)
    decision_record(item=item, reviewer=person, action="approve")
    post_report(source, report(1))
    item.refresh_from_db()
    assert item.status == Item.Status.REPORTED


def test_a_removed_item_never_returns(post_report, source, person):
    item = labeled_item(source)
    removal = decision_record(
        item=item, reviewer=person, action="remove", reason_id=reason_id("remove")
    )
    for n, who in enumerate("abcdef"):
        response = post_report(source, report(n, reporter=who))
        assert response.status_code == 202
        assert response.json()["status"] == "decided"
    item.refresh_from_db()
    assert item.status == Item.Status.DECIDED and item.queue_score is None
    # The removal answers them.
    assert set(Report.objects.values_list("decision_id", flat=True)) == {removal.pk}


def test_an_undo_opens_the_reports_again(post_report, source, person, settings):
    item = labeled_item(source)
    post_report(source, report(1))
    item.refresh_from_db()
    approval = decision_record(item=item, reviewer=person, action="approve")
    decision_undo(decision=approval, reviewer=person)
    item.refresh_from_db()
    assert item.status == Item.Status.REPORTED
    assert item.report_score == pytest.approx(NEW)
    assert item.queue_score == pytest.approx(NEW)
    assert Report.objects.get().decision_id is None
    again = decision_record(item=item, reviewer=person, action="approve")
    assert again.report_ids == ["r1"]


# --- labels after a report ---------------------------------------------------------------


def test_a_reported_item_is_never_approved_automatically(post_report, source):
    item = labeled_item(source, status=Item.Status.LABELING)
    post_report(source, report(1))
    item_labels_changed(
        item_id=item.pk,
        violation_score=0.02,
        flagged=False,
        labeling=False,
        failed=False,
        auto_approve_reason="auto-approved",
    )
    item.refresh_from_db()
    assert item.status == Item.Status.REPORTED
    assert not Decision.objects.exists()


def test_labels_keep_a_reported_item_in_the_queue_and_a_flag_raises_its_place(post_report, source):
    item = labeled_item(source, status=Item.Status.LABELING)
    post_report(source, report(1))
    common = {"item_id": item.pk, "labeling": False, "failed": False}
    item_labels_changed(violation_score=0.1, flagged=False, **common)
    item.refresh_from_db()
    assert (item.status, item.queue_score) == (Item.Status.REPORTED, pytest.approx(NEW))
    # A near miss above the report score: the higher of the two.
    item_labels_changed(violation_score=0.4, flagged=False, **common)
    item.refresh_from_db()
    assert (item.status, item.queue_score) == (Item.Status.REPORTED, pytest.approx(0.4))
    item_labels_changed(violation_score=0.95, flagged=True, **common)
    item.refresh_from_db()
    assert (item.status, item.queue_score) == (Item.Status.FLAGGED, pytest.approx(0.95))
    assert item.flagged_at is not None
    # A relabel that clears it again: still reported.
    item_labels_changed(violation_score=0.2, flagged=False, **common)
    item.refresh_from_db()
    assert (item.status, item.queue_score) == (Item.Status.REPORTED, pytest.approx(NEW))


def test_a_received_item_enters_the_queue_once_labeled(post_report, source, person):
    item = labeled_item(source, status=Item.Status.RECEIVED)
    post_report(source, report(1))
    item.refresh_from_db()
    assert item.report_score == pytest.approx(NEW)
    item_labels_changed(
        item_id=item.pk, violation_score=0.1, flagged=False, labeling=False, failed=False
    )
    assert in_queue(person) == [item.pk]
    assert item_report_score(item) == pytest.approx(NEW)


# --- the queue's filters and the item page ---------------------------------------------


def test_the_queue_filters_by_reported_and_by_report_reason(post_report, source, person):
    flagged = ItemFactory(source=source, external_id="f", violation_score=0.9, queue_score=0.9)
    spam = labeled_item(source, "spam")
    abuse = labeled_item(source, "abuse")
    post_report(source, report(1, external_id="spam"))
    post_report(source, report(2, external_id="abuse", reason="abuse"))
    assert set(in_queue(person)) == {flagged.pk, spam.pk, abuse.pk}
    assert set(in_queue(person, reported=True)) == {spam.pk, abuse.pk}
    assert in_queue(person, report_reason="abuse") == [abuse.pk]
    assert QueueFilter.from_query(
        QueueFilter(reported=True, report_reason="abuse").params()  # type: ignore[arg-type]
    ) == QueueFilter(reported=True, report_reason="abuse")


def test_the_queue_page_takes_the_filters_from_the_url(client, post_report, source, reviewer):
    labeled_item(source, "spam", content_text="buy cheap pills")
    post_report(source, report(1, external_id="spam"))
    ItemFactory(source=source, external_id="flagged-only", content_text="only flagged")
    page = client.get("/?reported=1").content.decode()
    assert "buy cheap pills" in page and "only flagged" not in page
    assert "only flagged" in client.get("/").content.decode()


def test_the_item_page_shows_reports_with_trust_and_escaped_comments(
    client, post_report, source, reviewer
):
    item = labeled_item(source)
    post_report(source, report(1, reporter="alice", comment="<script>alert(1)</script>"))
    post_report(source, report(2, reporter=None, reason="harassment"))
    page = client.get(f"/items/{item.pk}/").content.decode()
    assert "2 reports" in page
    assert "spam" in page and "harassment" in page
    assert "alice" in page and "25%" in page and "anonymous" in page
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page


# --- the documented contract --------------------------------------------------------------

REPORTS_PATH = "/webhooks/{slug}/reports/"


def test_real_answers_match_the_documented_schemas(post_report, source):
    labeled_item(source)
    body = report(1, comment="see this")
    assert not errors(validator_at(f"{REQUEST_POINTER}/schema"), body)
    answers = {
        202: post_report(source, body),
        200: post_report(source, body),
        404: post_report(source, report(2, external_id="nope")),
        422: post_report(source, report(3, reason="")),
    }
    for status, response in answers.items():
        assert response.status_code == status
        assert errors(response_validator(REPORTS_PATH, "post", status), response.json()) == []


REQUEST_POINTER = "/paths/~1webhooks~1{slug}~1reports~1/post/requestBody/content/application~1json"
