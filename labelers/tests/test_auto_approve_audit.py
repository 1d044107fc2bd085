"""A labeler's auto-approve band and audit share, and the labeler versions each verdict and
decision keeps: through the real pipeline (signed webhook, the fake API over HTTP)."""

import json

import pytest

from labelers import criteria
from labelers.criteria import labeler_review_policy_set
from labelers.models import Reevaluation
from labelers.quality.loaders import labeler_report
from labelers.routing import routing_cache
from labelers.verdict import audit_draw, item_refresh
from moderation.models import CallbackDelivery, Decision, DecisionReason, Item
from moderation.selectors.decisions import decision_event
from moderation.services.claims import item_claim
from moderation.services.decisions import decision_record, decision_undo
from moderation.tests.factories import LabelerFactory, UserFactory

pytestmark = pytest.mark.django_db


def ingest(post_webhook, source, text, external_id=None):
    response = post_webhook(source, {"external_id": external_id or text, "content_text": text})
    assert response.status_code in (200, 202), response.content
    return Item.objects.get(pk=response.json()["id"])


def removal_reason():
    return DecisionReason.objects.filter(action="remove", active=True).first()


def band(source, *, auto_approve=None, audit_share=0.0, min_confidence=None):
    labeler = source.labelers.get()
    labeler.auto_approve_confidence = auto_approve
    labeler.audit_share = audit_share
    labeler.min_confidence = min_confidence
    labeler.save()
    routing_cache.clear()
    return labeler


def test_a_confident_zero_inside_the_band_is_approved_by_the_system(fake_api, post_webhook, source):
    labeler = band(source, auto_approve=0.9)
    source.callback_url = "http://127.0.0.1:9/decisions"  # nothing listens: it stays pending
    source.save()
    item = ingest(post_webhook, source, "lovely weather conf=0.95")
    item.refresh_from_db()
    assert item.status == Item.Status.DECIDED and item.queue_key is None
    decision = item.decisions.get()
    assert decision.reviewer is None and decision.automatic
    assert decision.action == Decision.Action.APPROVE
    assert "auto-approve band" in decision.reason
    assert decision.labeler_versions == [labeler.current_version.pk]
    # Sent back to the product like any decision, marked automatic.
    assert CallbackDelivery.objects.filter(decision=decision).exists()
    event = decision_event(decision, include_reviewer=True)
    assert (event["action"], event["automatic"], event["reviewer"]) == ("approve", True, None)


def test_a_zero_below_the_band_and_any_one_are_not_auto_approved(fake_api, post_webhook, source):
    band(source, auto_approve=0.9)
    unsure = ingest(post_webhook, source, "lovely weather conf=0.85")
    flagged = ingest(post_webhook, source, "I hate you conf=0.99")
    unsure.refresh_from_db()
    flagged.refresh_from_db()
    assert unsure.status == Item.Status.LABELED and not unsure.decisions.exists()
    assert flagged.status == Item.Status.FLAGGED and not flagged.decisions.exists()


def test_without_a_band_nothing_is_auto_approved(fake_api, post_webhook, source):
    item = ingest(post_webhook, source, "lovely weather conf=0.99")
    item.refresh_from_db()
    assert item.status == Item.Status.LABELED and not item.decisions.exists()


def test_every_routed_labeler_must_agree_for_an_auto_approval(fake_api, post_webhook, source):
    band(source, auto_approve=0.9)
    other = LabelerFactory(slug="other")  # no band: it cannot vouch for an item
    source.labelers.add(other)
    routing_cache.clear()
    item = ingest(post_webhook, source, "lovely weather conf=0.95")
    item.refresh_from_db()
    assert item.labels.count() == 2
    assert item.status == Item.Status.LABELED and not item.decisions.exists()
    other.auto_approve_confidence = 0.9
    other.save()
    routing_cache.clear()
    item_refresh(item_id=item.pk)
    item.refresh_from_db()
    assert item.status == Item.Status.DECIDED
    assert sorted(item.decisions.get().labeler_versions) == sorted(
        labeler.current_version.pk for labeler in source.labelers.all()
    )


def test_a_recomputed_verdict_never_approves_twice(fake_api, post_webhook, source):
    band(source, auto_approve=0.9)
    item = ingest(post_webhook, source, "lovely weather conf=0.95")
    for _ in range(3):
        item_refresh(item_id=item.pk)
    assert item.decisions.count() == 1


def test_a_human_decision_is_never_replaced_by_an_auto_approval(fake_api, post_webhook, source):
    item = ingest(post_webhook, source, "I hate you conf=0.99")
    reviewer = UserFactory()
    decision_record(item=item, reviewer=reviewer, action="approve")
    band(source, auto_approve=0.5)
    item_refresh(item_id=item.pk)
    assert list(item.decisions.values_list("reviewer", flat=True)) == [reviewer.pk]


def test_changing_the_band_on_the_labeler_page_reevaluates_undecided_items(
    fake_api, post_webhook, source, client, django_capture_on_commit_callbacks
):
    item = ingest(post_webhook, source, "lovely weather conf=0.95")
    labeler = source.labelers.get()
    client.force_login(UserFactory(is_staff=True))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            f"/manage/labelers/{labeler.pk}/policy/",
            {
                "min_confidence": "",
                "auto_approve_confidence": "0.9",
                "audit_share": "0",
                "confirm_count": "1",  # the count the confirmation page showed
                "seen": json.dumps(criteria.review_policy_snapshot(labeler)),
            },
        )
    assert response.status_code == 302
    labeler.refresh_from_db()
    assert labeler.auto_approve_confidence == 0.9
    reevaluation = Reevaluation.objects.get()
    assert reevaluation.state == Reevaluation.State.DONE and reevaluation.total == 1
    item.refresh_from_db()
    assert item.status == Item.Status.DECIDED and item.decisions.get().automatic


def test_the_band_and_share_are_checked(db):
    labeler = LabelerFactory()
    for bad in ({"auto_approve_confidence": 0.4}, {"audit_share": 1.5}, {"min_confidence": 1.2}):
        values = {"min_confidence": None, "auto_approve_confidence": None, "audit_share": 0.0}
        with pytest.raises(ValueError):
            labeler_review_policy_set(labeler=labeler, **{**values, **bad})


def test_the_audit_draw_is_fixed_per_item_revision_and_near_uniform():
    assert audit_draw(7, 1) == audit_draw(7, 1)
    assert audit_draw(7, 1) != audit_draw(7, 2)
    draws = [audit_draw(item, 1) for item in range(1, 4001)]
    assert all(0 <= draw < 1 for draw in draws)
    below = sum(draw < 0.25 for draw in draws)
    assert 900 < below < 1100  # 1,000 expected; a fair draw is within 4 sigma (~110)


def test_a_share_of_unflagged_items_goes_to_the_queue_as_audit(fake_api, post_webhook, source):
    band(source, audit_share=0.3, auto_approve=0.5)
    items = [ingest(post_webhook, source, f"calm text {n} conf=0.9") for n in range(40)]
    audited = []
    for item in items:
        item.refresh_from_db()
        drawn = audit_draw(item.pk, item.revision) < 0.3
        if drawn:
            audited.append(item)
            # In the queue, sorted among likely violations, never auto-approved.
            assert item.status == Item.Status.AUDIT and not item.decisions.exists()
            assert item.queue_score == 0.75 and item.queue_key is not None
        else:
            assert item.status == Item.Status.DECIDED and item.decisions.get().automatic
    assert 4 <= len(audited) <= 24  # 12 expected
    # An audit item is decided like any queued item, and its decision keeps the versions.
    decision = decision_record(item=audited[0], reviewer=UserFactory(), action="approve")
    assert decision.status_before == Item.Status.AUDIT
    assert decision.labeler_versions == [source.labelers.get().current_version.pk]


def test_a_flagged_item_is_never_an_audit_sample(fake_api, post_webhook, source):
    band(source, audit_share=1.0)
    flagged = ingest(post_webhook, source, "I hate you conf=0.9")
    clean = ingest(post_webhook, source, "calm conf=0.9")
    flagged.refresh_from_db()
    clean.refresh_from_db()
    assert flagged.status == Item.Status.FLAGGED
    assert clean.status == Item.Status.AUDIT


def test_a_reviewer_decision_keeps_the_versions_in_force(fake_api, post_webhook, source):
    item = ingest(post_webhook, source, "I hate you conf=0.9")
    labeler = source.labelers.get()
    item.refresh_from_db()
    assert item.verdict_versions == [labeler.current_version.pk]
    decision = decision_record(item=item, reviewer=UserFactory(), action="approve")
    assert decision.labeler_versions == [labeler.current_version.pk]


def test_an_undone_decision_puts_an_audit_item_back_where_it_sorted(fake_api, post_webhook, source):
    band(source, audit_share=1.0)
    item = ingest(post_webhook, source, "calm conf=0.9")
    reviewer = UserFactory()
    decision = decision_record(item=item, reviewer=reviewer, action="approve")
    decision_undo(decision=decision, reviewer=reviewer)
    item.refresh_from_db()
    assert item.status == Item.Status.AUDIT and item.queue_score == 0.75
    assert item.queue_key is not None


def test_quality_counts_people_only_and_estimates_recall_from_the_audit(
    fake_api, post_webhook, source
):
    labeler = band(source, audit_share=1.0)
    reviewer = UserFactory()
    flagged = [ingest(post_webhook, source, f"I hate you {n} conf=0.9") for n in range(2)]
    audited = [ingest(post_webhook, source, f"calm {n} conf=0.9") for n in range(3)]
    for item in flagged + audited[:1]:
        decision_record(
            item=item, reviewer=reviewer, action="remove", reason_id=removal_reason().pk
        )
    for item in audited[1:]:
        decision_record(item=item, reviewer=reviewer, action="approve")
    # An item the system approved: never counted as a human label.
    band(source, audit_share=0.0, auto_approve=0.5)
    approved = ingest(post_webhook, source, "calm again conf=0.9")
    assert approved.decisions.get().automatic
    (report,) = labeler_report(labeler)
    assert report.quality.labeled == 6 and report.quality.decided == 5
    assert report.quality.precision == 1.0
    assert (report.quality.audit_decided, report.quality.audit_removed) == (3, 1)
    # 2 caught; of 4 items nobody flagged, a third (by the audit) were violations: 4/3 missed.
    assert report.quality.recall == pytest.approx(2 / (2 + 4 / 3))


def test_an_item_a_reviewer_holds_is_left_to_them(fake_api, post_webhook, source):
    band(source, audit_share=1.0)
    item = ingest(post_webhook, source, "calm conf=0.95")
    reviewer = UserFactory()
    assert item_claim(item=item, reviewer=reviewer)
    band(source, audit_share=0.0, auto_approve=0.9)  # the admin lowers the share meanwhile
    item_refresh(item_id=item.pk)
    item.refresh_from_db()
    assert item.status == Item.Status.AUDIT and not item.decisions.exists()
    assert item.claimed_by == reviewer


def test_widening_the_band_over_waiting_items_asks_with_a_count_first(
    fake_api, post_webhook, source, client, django_capture_on_commit_callbacks
):
    waiting = [ingest(post_webhook, source, f"calm {n} conf=0.95") for n in range(3)]
    ingest(post_webhook, source, "calm but unsure conf=0.6")
    labeler = source.labelers.get()
    client.force_login(UserFactory(is_staff=True))
    values = {
        "min_confidence": "",
        "auto_approve_confidence": "0.9",
        "audit_share": "0",
        "seen": json.dumps(criteria.review_policy_snapshot(labeler)),
    }
    url = f"/manage/labelers/{labeler.pk}/policy/"
    response = client.post(url, values)
    assert response.status_code == 200
    assert "Up to <strong>3</strong> undecided items" in response.content.decode()
    labeler.refresh_from_db()
    assert labeler.auto_approve_confidence is None  # nothing set before the confirmation
    # A stale count (items came or went meanwhile) asks again.
    response = client.post(url, {**values, "confirm_count": "7"})
    assert response.status_code == 200 and 'id="policy-changed"' in response.content.decode()
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {**values, "confirm_count": "3"})
    assert response.status_code == 302
    for item in waiting:
        item.refresh_from_db()
        assert item.status == Item.Status.DECIDED and item.decisions.get().automatic
