"""Each staff action leaves one audit row, written in the action's transaction: who, the
object, before/after values, never content. A refused action leaves none."""

import json

import pytest
from django.utils import timezone

from audit.chain import chain_verify
from audit.models import AuditEntry
from labelers.criteria import (
    StaleEdit,
    draft_snapshot,
    labeler_draft_save,
    labeler_review_policy_set,
    labeler_version_publish,
    review_policy_snapshot,
)
from labelers.models import Labeler
from moderation.errors import StaleRevision
from moderation.models import AccountActionProposal, Appeal, Author, Item
from moderation.services.appeals import appeal_decide
from moderation.services.authors import proposal_confirm, proposal_dismiss
from moderation.services.claims import item_claim, item_release
from moderation.services.decisions import (
    author_open_items_decide,
    decision_record,
    decision_undo,
)
from moderation.services.golden import (
    golden_answer_record,
    golden_answer_serve,
    golden_item_mark,
    golden_item_unmark,
)
from moderation.services.rereview import items_send_for_rereview
from moderation.services.reviewers import media_reveal_record
from moderation.tests.factories import ItemFactory, LabelerFactory, UserFactory, reason_id

pytestmark = pytest.mark.django_db

MARKER = "private words of a user 7c1e"


@pytest.fixture
def reviewer():
    return UserFactory(username="rev")


@pytest.fixture
def item(source):
    return ItemFactory(source=source, content_text=MARKER, flagged_at=timezone.now())


def rows(action: str) -> list[AuditEntry]:
    return list(AuditEntry.objects.filter(action=action).order_by("seq"))


def only(action: str) -> AuditEntry:
    (row,) = rows(action)
    return row


def no_content_anywhere() -> None:
    stored = json.dumps(list(AuditEntry.objects.values()), default=str)
    assert MARKER not in stored


def test_a_claim_and_a_release_are_recorded(item, reviewer):
    assert item_claim(item=item, reviewer=reviewer)
    assert item_release(item=item, reviewer=reviewer)
    claim, release = only("item.claim"), only("item.release")
    assert (claim.actor_username, claim.object_type, claim.object_id) == (
        "rev",
        "item",
        str(item.pk),
    )
    assert "until" in claim.after and release.actor_id == reviewer.pk
    assert not item_release(item=item, reviewer=reviewer)  # nothing released: no row
    assert len(rows("item.release")) == 1


def test_a_renewed_claim_is_not_recorded_again_until_it_lapsed(item, reviewer):
    assert item_claim(item=item, reviewer=reviewer)
    assert item_claim(item=item, reviewer=reviewer)  # the page again: a renewal
    assert len(rows("item.claim")) == 1
    Item.objects.filter(pk=item.pk).update(claim_expires_at=timezone.now())
    assert item_claim(item=item, reviewer=reviewer)  # lapsed, taken again
    assert len(rows("item.claim")) == 2


def test_opening_an_item_page_records_the_claim_with_the_address(client, item, reviewer):
    client.force_login(reviewer)
    client.get(f"/items/{item.pk}/", REMOTE_ADDR="192.0.2.7")
    assert only("item.claim").ip == "192.0.2.7"


def test_a_decision_is_recorded_with_the_status_before_and_after(item, reviewer):
    decision = decision_record(
        item=item,
        reviewer=reviewer,
        action="remove",
        reason_id=reason_id("remove"),
        note=MARKER,
        revision=item.revision,
    )
    row = only("decision.remove")
    assert (row.object_type, row.object_id) == ("item", str(item.pk))
    assert row.before == {"status": "flagged"}
    assert row.after == {
        "status": "decided",
        "decision_id": decision.pk,
        "revision": item.revision,
        "reason_id": reason_id("remove"),
    }
    no_content_anywhere()


def test_an_escalation_and_an_undo_are_recorded(item, reviewer):
    escalation = decision_record(
        item=item, reviewer=reviewer, action="escalate", reason_id=reason_id("escalate")
    )
    undo = decision_undo(decision=escalation, reviewer=reviewer)
    assert only("decision.escalate").after["status"] == "escalated"
    row = only("decision.undo")
    assert row.before == {"status": "escalated", "decision_id": escalation.pk}
    assert row.after == {"status": "flagged", "decision_id": undo.pk}


def test_a_refused_decision_leaves_no_row(item, reviewer):
    with pytest.raises(StaleRevision):
        decision_record(item=item, reviewer=reviewer, action="approve", revision=item.revision + 1)
    assert not AuditEntry.objects.filter(action__startswith="decision.").exists()


def test_a_media_reveal_is_recorded_each_time(item, reviewer):
    media_reveal_record(item=item, reviewer=reviewer)
    media_reveal_record(item=item, reviewer=reviewer)
    assert [r.object_id for r in rows("media.reveal")] == [str(item.pk)] * 2


def test_golden_mark_answer_and_unmark_are_recorded(item, reviewer):
    lead = UserFactory(username="lead", is_staff=True)
    decision_record(item=item, reviewer=reviewer, action="approve")
    golden = golden_item_mark(item=item, expected_action="approve", note=MARKER, created_by=lead)
    other = UserFactory()
    served = golden_answer_serve(golden=golden, reviewer=other)
    golden_answer_record(answer=served, reviewer=other, action="approve")
    golden_item_unmark(golden=golden, by=lead)
    mark = only("golden.mark")
    assert (mark.actor_username, mark.before, mark.after["expected_action"]) == (
        "lead",
        None,
        "approve",
    )
    assert only("golden.answer").after == {
        "action": "approve",
        "correct": True,
        "answer_id": served.pk,
    }
    assert only("golden.unmark").object_id == str(item.pk)
    no_content_anywhere()


def test_a_remove_all_is_recorded_once_besides_each_decision(source, reviewer):
    author = Author.objects.create(source=source, external_id="u-1", name="Ada")
    items = [ItemFactory(source=source, author=author) for _ in range(2)]
    senior = UserFactory(senior=True)
    author_open_items_decide(
        author=author,
        reviewer=senior,
        action="remove",
        reason_id=reason_id("remove"),
        seen={i.pk: i.revision for i in items},
    )
    assert len(rows("decision.remove")) == 2
    summary = only("author.decide_open_items")
    assert (summary.object_type, summary.object_id) == ("author", str(author.pk))
    assert summary.after["decided"] == 2 and summary.after["action"] == "remove"


def crossed_proposal(source, reviewer) -> AccountActionProposal:
    author = Author.objects.create(source=source, external_id="u-2", name="Bo")
    for _ in range(3):  # the default thresholds propose a warning at 3 strikes
        decision_record(
            item=ItemFactory(source=source, author=author),
            reviewer=reviewer,
            action="remove",
            reason_id=reason_id("remove"),
        )
    return AccountActionProposal.objects.get(author=author)


def test_an_account_action_confirmed_is_recorded_with_what_was_proposed(source, reviewer):
    proposal = crossed_proposal(source, reviewer)
    senior = UserFactory(senior=True)
    action = proposal_confirm(proposal=proposal, senior=senior, action="suspend", days=3)
    row = only("account_action.confirm")
    assert row.object_type == "accountactionproposal" and row.object_id == str(proposal.pk)
    assert row.before == {"action": "warn", "days": None}
    assert row.after == {"action": "suspend", "days": 3, "account_action_id": action.pk}


def test_a_dismissed_proposal_is_recorded(source, reviewer):
    proposal = crossed_proposal(source, reviewer)
    proposal_dismiss(proposal=proposal, senior=UserFactory(senior=True), note=MARKER)
    assert only("account_action.dismiss").object_id == str(proposal.pk)
    no_content_anywhere()


def test_criteria_draft_and_publish_are_recorded_as_a_digest_not_the_text(db):
    admin = UserFactory(username="adm", is_staff=True)
    labeler = LabelerFactory()
    draft = labeler_draft_save(labeler=labeler, criteria_text=MARKER, created_by=admin)
    stale = {**draft_snapshot(draft), "criteria_text": "what another page showed"}
    with pytest.raises(StaleEdit):
        labeler_version_publish(version=draft, seen=stale, published_by=admin)
    published_before = len(rows("criteria.publish"))  # the labeler's first version
    labeler_version_publish(version=draft, seen=draft_snapshot(draft), published_by=admin)
    assert len(rows("criteria.publish")) == published_before + 1
    saved, published = only("criteria.draft_save"), rows("criteria.publish")[-1]
    assert saved.before is None and saved.after["state"] == "draft"
    assert len(saved.after["criteria_sha256"]) == 64
    assert published.actor_username == "adm" and published.after["state"] == "published"
    assert published.after["criteria_sha256"] == saved.after["criteria_sha256"]
    no_content_anywhere()


def test_a_threshold_band_or_audit_share_change_is_recorded_with_old_and_new(db):
    admin = UserFactory(is_staff=True)
    labeler = LabelerFactory()
    Labeler.objects.filter(pk=labeler.pk).update(min_confidence=0.6, audit_share=0.0)
    labeler.refresh_from_db()
    labeler_review_policy_set(
        labeler=labeler,
        min_confidence=0.8,
        auto_approve_confidence=labeler.auto_approve_confidence,
        audit_share=0.1,
        created_by=admin,
        seen=review_policy_snapshot(labeler),
    )
    row = only("labeler.review_policy")
    assert row.before == {"min_confidence": 0.6, "audit_share": 0.0}
    assert row.after == {"min_confidence": 0.8, "audit_share": 0.1}
    assert row.actor_id == admin.pk


def test_the_decisions_export_is_recorded(client):
    admin = UserFactory(is_staff=True)
    client.force_login(admin)
    response = client.get("/manage/export/decisions.jsonl")
    b"".join(response.streaming_content)
    assert only("export.decisions").actor_id == admin.pk


def test_sending_items_for_rereview_is_recorded(item, reviewer):
    decision_record(item=item, reviewer=reviewer, action="approve")
    lead = UserFactory(is_staff=True)
    assert items_send_for_rereview(item_ids=[item.pk], requested_by=lead) == 1
    assert only("items.rereview").after == {"items": 1, "moved": [item.pk]}
    assert Item.objects.get(pk=item.pk).status == "rereview"


def test_rotating_a_signing_secret_is_recorded_without_the_secret(client, source):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    client.post(
        "/admin/moderation/source/",
        {"action": "rotate_secret", "_selected_action": [source.pk]},
    )
    source.refresh_from_db()
    row = only("source.rotate_secret")
    assert row.object_id == str(source.pk)
    assert source.webhook_secret not in json.dumps(list(AuditEntry.objects.values()), default=str)


def test_the_chain_verifies_after_a_working_day(client, item, reviewer):
    client.force_login(reviewer)
    client.get(f"/items/{item.pk}/")
    decision_record(item=item, reviewer=reviewer, action="remove", reason_id=reason_id("remove"))
    checked, broken = chain_verify()
    assert broken is None and checked == AuditEntry.objects.count()


def test_an_appeals_outcome_is_recorded_with_the_decision_it_made(item, reviewer):
    removal = decision_record(
        item=item, reviewer=reviewer, action="remove", reason_id=reason_id("remove")
    )
    appeal = Appeal.objects.create(
        source=item.source, appeal_id="a-1", webhook_id="w-a-1", decision=removal, item=item
    )
    senior = UserFactory(senior=True)
    decided = appeal_decide(appeal=appeal, senior=senior, outcome="overturned", revision=1)
    row = only("appeal.overturned")
    assert row.actor_id == senior.pk and row.object_id == str(appeal.pk)
    assert row.after == {"status": "overturned", "decision_id": decided.result_decision_id}
    no_content_anywhere()
