"""The statement of reasons every removal and account action carries back to the product:
the reason and its policy text, the facts relied on, automatic or not, and until when to
appeal (the source's appeal window)."""

from datetime import timedelta

import pytest

from labelers.models import Label
from moderation.models import AccountAction, Author, DecisionReason, Item, Report
from moderation.selectors.authors import account_action_event
from moderation.selectors.decisions import decision_event, decisions_page
from moderation.services.decisions import decision_record
from moderation.tests.factories import LabelerFactory, SourceFactory, UserFactory, reason_id

pytestmark = pytest.mark.django_db


@pytest.fixture
def reviewer():
    return UserFactory()


@pytest.fixture
def source():
    return SourceFactory(appeal_window_days=30)


def flagged(source, external_id="post-1", author=None) -> Item:
    return Item.objects.create(
        source=source,
        external_id=external_id,
        webhook_id=f"msg-{external_id}",
        content_text="I will find you",
        content_hash=f"h-{external_id}",
        status=Item.Status.FLAGGED,
        queue_score=0.9,
        author=author,
    )


def label(item, labeler, answer="1", confidence=0.93, revision=1) -> Label:
    return Label.objects.create(
        item=item,
        labeler_version=labeler.versions.get(),
        revision=revision,
        content_hash=item.content_hash,
        status=Label.Status.DONE,
        label=answer,
        confidence=confidence,
    )


def remove(item, reviewer):
    return decision_record(
        item=item, reviewer=reviewer, action="remove", reason_id=reason_id("remove")
    )


def test_a_removal_states_its_reason_policy_labeler_and_appeal_window(source, reviewer):
    DecisionReason.objects.filter(pk=reason_id("remove")).update(
        policy_text="Threats against a person are removed."
    )
    threats = LabelerFactory(slug="threats")
    item = flagged(source)
    label(item, threats, confidence=0.93)
    decision = remove(item, reviewer)
    statement = decision_event(decision, include_reviewer=False)["statement_of_reasons"]
    assert statement["reason"] == decision.reason
    assert statement["policy"] == "Threats against a person are removed."
    [fact] = statement["facts"]
    assert fact["decision_id"] == decision.pk and fact["external_id"] == "post-1"
    assert fact["flagged_by"] == [{"labeler": "threats", "labeler_version": 1, "confidence": 0.93}]
    assert fact["reports"] == []
    assert statement["automated_detection"] is True
    assert statement["automated_decision"] is False
    until = decision.created_at + timedelta(days=30)
    assert statement["appeal"]["until"] == until.isoformat()
    assert f"/webhooks/{source.slug}/appeals/" in statement["appeal"]["how"]


def test_a_removal_nothing_flagged_says_detection_was_not_automatic(source, reviewer):
    labeler = LabelerFactory()
    item = flagged(source)
    label(item, labeler, answer="0", confidence=0.6)
    # A "1" on an earlier revision is not what the removal relied on.
    label(item, LabelerFactory(), answer="1", revision=0)
    statement = decision_event(remove(item, reviewer), include_reviewer=False)
    statement = statement["statement_of_reasons"]
    assert statement["facts"][0]["flagged_by"] == []
    assert statement["automated_detection"] is False


def test_an_approval_carries_no_statement(source, reviewer):
    decision = decision_record(item=flagged(source), reviewer=reviewer, action="approve")
    assert "statement_of_reasons" not in decision_event(decision, include_reviewer=False)


def test_the_feed_builds_each_removals_statement_in_a_fixed_number_of_queries(
    source, reviewer, django_assert_max_num_queries
):
    labeler = LabelerFactory()
    for n in range(5):
        item = flagged(source, f"post-{n}")
        label(item, labeler, confidence=0.5 + n / 10)
        remove(item, reviewer)
    with django_assert_max_num_queries(3):
        events, _, _ = decisions_page(source=source, since=0, size=10)
    confidences = [
        e["statement_of_reasons"]["facts"][0]["flagged_by"][0]["confidence"] for e in events
    ]
    assert confidences == [0.5, 0.6, 0.7, 0.8, 0.9]


def test_an_account_action_states_in_the_same_shape_with_the_sources_window(source, reviewer):
    author = Author.objects.create(source=source, external_id="u-1")
    labeler = LabelerFactory(slug="threats")
    decisions = []
    for n in range(2):
        item = flagged(source, f"post-{n}", author=author)
        label(item, labeler)
        decisions.append(remove(item, reviewer))
    action = AccountAction.objects.create(
        source=source,
        author=author,
        action="warn",
        active_strikes=2,
        decision_ids=[d.pk for d in decisions],
    )
    statement = account_action_event(action)["statement_of_reasons"]
    removal = decision_event(decisions[0], include_reviewer=False)["statement_of_reasons"]
    assert set(statement) == set(removal)
    assert [f["decision_id"] for f in statement["facts"]] == [d.pk for d in decisions]
    assert statement["facts"][0] == {**removal["facts"][0], "strikes": 1}
    until = action.created_at + timedelta(days=30)
    assert statement["appeal"]["until"] == until.isoformat()
    assert "account_action_id" in statement["appeal"]["how"]


def test_admins_write_each_reasons_policy_text_and_each_sources_appeal_window(client, source):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    reason = DecisionReason.objects.get(pk=reason_id("remove"))
    page = client.get(f"/admin/moderation/decisionreason/{reason.pk}/change/").content.decode()
    assert 'name="policy_text"' in page
    page = client.get(f"/admin/moderation/source/{source.pk}/change/").content.decode()
    assert 'name="appeal_window_days"' in page and 'name="appeal_sla_minutes"' in page


def test_a_removal_answering_reports_relies_on_them_and_names_no_reporter(source, reviewer):
    item = flagged(source)
    for n, reason in enumerate(["harassment", "spam"]):
        Report.objects.create(
            source=source,
            report_id=f"r-{n}",
            webhook_id=f"w-{n}",
            item=item,
            reason=reason,
            reporter_id=f"reporter-{n}",
            comment="look at this",
        )
    removal = remove(item, reviewer)
    assert removal.report_ids == ["r-0", "r-1"]
    statement = decision_event(removal, include_reviewer=False)["statement_of_reasons"]
    (fact,) = statement["facts"]
    assert [(r["report_id"], r["reason"]) for r in fact["reports"]] == [
        ("r-0", "harassment"),
        ("r-1", "spam"),
    ]
    assert "reporter-0" not in str(statement) and "look at this" not in str(statement)
