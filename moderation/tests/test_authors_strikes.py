"""Strikes (a removal counts its reason's weight, within the source's window; undo and a later
approval withdraw it) and account actions (thresholds propose, seniors confirm or dismiss;
a confirmed action reaches the product as account.action.created)."""

import json
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from moderation.callbacks import deliveries
from moderation.models import (
    AccountAction,
    AccountActionProposal,
    Author,
    CallbackDelivery,
    DecisionReason,
    Item,
    Strike,
)
from moderation.selectors import authors as authors_selectors
from moderation.services import authors as authors_services
from moderation.services.decisions import decision_record, decision_undo
from moderation.tests.factories import ItemFactory, SourceFactory, UserFactory, reason_id
from moderation.tests.test_openapi import errors, response_validator, validator_at
from testkit.receiver import Receiver

pytestmark = pytest.mark.django_db


@pytest.fixture
def reviewer():
    return UserFactory()


@pytest.fixture
def senior():
    return UserFactory(senior=True)


@pytest.fixture
def author(source):
    return Author.objects.create(source=source, external_id="u-1", name="Ada")


def item_of(author, **fields) -> Item:
    return ItemFactory(source=author.source, author=author, flagged_at=timezone.now(), **fields)


def remove(item, reviewer, reason=None):
    return decision_record(
        item=item, reviewer=reviewer, action="remove", reason_id=reason or reason_id("remove")
    )


def strikes(author) -> int:
    return authors_selectors.active_strike_count(author)


def proposals(author):
    return list(AccountActionProposal.objects.filter(author=author).order_by("id"))


# --- strikes -------------------------------------------------------------------------------------


def test_a_removal_counts_one_strike_by_default(author, reviewer):
    remove(item_of(author), reviewer)
    assert strikes(author) == 1


def test_a_removal_counts_its_reasons_weight(author, reviewer):
    DecisionReason.objects.filter(pk=reason_id("remove")).update(strike_weight=3)
    remove(item_of(author), reviewer)
    assert strikes(author) == 3


def test_a_reason_of_weight_zero_does_not_count(author, reviewer):
    DecisionReason.objects.filter(pk=reason_id("remove")).update(strike_weight=0)
    remove(item_of(author), reviewer)
    assert strikes(author) == 0 and not Strike.objects.exists()


def test_an_approval_or_escalation_counts_no_strike(author, reviewer):
    decision_record(item=item_of(author), reviewer=reviewer, action="approve")
    decision_record(
        item=item_of(author), reviewer=reviewer, action="escalate", reason_id=reason_id("escalate")
    )
    assert strikes(author) == 0


def test_an_item_without_author_counts_no_strike(source, reviewer):
    remove(ItemFactory(source=source), reviewer)
    assert not Strike.objects.exists()


def test_strikes_expire_after_the_sources_window(author, reviewer):
    remove(item_of(author), reviewer)
    remove(item_of(author), reviewer)
    old = Strike.objects.order_by("id").first()
    Strike.objects.filter(pk=old.pk).update(created_at=timezone.now() - timedelta(days=91))
    assert strikes(author) == 1
    author.source.strike_window_days = 120
    author.source.save()
    assert strikes(Author.objects.get(pk=author.pk)) == 2


def test_an_undo_withdraws_the_strike(author, reviewer):
    decision = remove(item_of(author), reviewer)
    assert strikes(author) == 1
    decision_undo(decision=decision, reviewer=reviewer)
    assert strikes(author) == 0
    strike = Strike.objects.get()
    assert strike.withdrawn_at is not None and strike.withdrawn_by.action == "undo"


def test_an_approval_on_re_review_withdraws_the_strike_and_its_undo_restores_it(author, reviewer):
    item = item_of(author)
    remove(item, reviewer)
    Item.objects.filter(pk=item.pk).update(status=Item.Status.REREVIEW)
    approval = decision_record(
        item=Item.objects.get(pk=item.pk), reviewer=reviewer, action="approve"
    )
    assert strikes(author) == 0
    decision_undo(decision=approval, reviewer=reviewer)
    assert strikes(author) == 1


def test_removing_an_item_again_does_not_count_it_twice(author, reviewer):
    item = item_of(author)
    remove(item, reviewer)
    Item.objects.filter(pk=item.pk).update(status=Item.Status.REREVIEW)
    remove(Item.objects.get(pk=item.pk), reviewer)
    assert strikes(author) == 1


def test_strikes_of_one_author_do_not_count_for_another(source, reviewer):
    a = Author.objects.create(source=source, external_id="a")
    b = Author.objects.create(source=source, external_id="b")
    remove(item_of(a), reviewer)
    assert (strikes(a), strikes(b)) == (1, 0)


# --- proposals --------------------------------------------------------------------------------


def test_a_proposal_appears_exactly_when_a_threshold_is_crossed(author, reviewer):
    remove(item_of(author), reviewer)
    remove(item_of(author), reviewer)
    assert proposals(author) == []
    third = remove(item_of(author), reviewer)
    [proposal] = proposals(author)
    assert (proposal.action, proposal.threshold, proposal.active_strikes) == ("warn", 3, 3)
    assert proposal.decision_id == third.pk and len(proposal.decision_ids) == 3
    assert proposal.status == "proposed"


def test_the_same_strikes_do_not_propose_again(author, reviewer):
    for _ in range(4):
        remove(item_of(author), reviewer)
    assert [p.action for p in proposals(author)] == ["warn"]


def test_each_higher_threshold_proposes_once(author, reviewer):
    for _ in range(9):
        remove(item_of(author), reviewer)
    assert [(p.action, p.days) for p in proposals(author)] == [
        ("warn", None),
        ("suspend", 7),
        ("ban", None),
    ]


def test_a_heavy_removal_proposes_the_highest_threshold_it_crosses(author, reviewer):
    DecisionReason.objects.filter(pk=reason_id("remove")).update(strike_weight=5)
    remove(item_of(author), reviewer)
    assert [p.action for p in proposals(author)] == ["suspend"]


def test_new_strikes_after_old_ones_expired_propose_again(author, reviewer):
    for _ in range(3):
        remove(item_of(author), reviewer)
    Strike.objects.update(created_at=timezone.now() - timedelta(days=100))
    for _ in range(3):
        remove(item_of(author), reviewer)
    assert [p.action for p in proposals(author)] == ["warn", "warn"]


def test_per_source_thresholds_decide(author, reviewer):
    author.source.account_thresholds = [{"strikes": 1, "action": "ban"}]
    author.source.save()
    remove(item_of(author), reviewer)
    assert [p.action for p in proposals(author)] == ["ban"]


def test_the_proposal_commits_with_the_decision_that_crossed(author, reviewer):
    for _ in range(2):
        remove(item_of(author), reviewer)
    with pytest.raises(RuntimeError), transaction.atomic():
        remove(item_of(author), reviewer)
        assert len(proposals(author)) == 1
        raise RuntimeError("the decision's transaction rolls back")
    assert proposals(author) == [] and strikes(author) == 2


def test_undoing_the_removal_that_crossed_dismisses_its_proposal(author, reviewer):
    for _ in range(2):
        remove(item_of(author), reviewer)
    third = remove(item_of(author), reviewer)
    decision_undo(decision=third, reviewer=reviewer)
    [proposal] = proposals(author)
    assert proposal.status == "dismissed" and "undone" in proposal.note


# --- confirming and dismissing --------------------------------------------------------------------


def crossed(author, reviewer, n=3) -> AccountActionProposal:
    for _ in range(n):
        remove(item_of(author), reviewer)
    return proposals(author)[-1]


def test_a_senior_confirms_a_proposal_as_proposed(author, reviewer, senior):
    proposal = crossed(author, reviewer)
    action = authors_services.proposal_confirm(proposal=proposal, senior=senior, note="ok")
    assert (action.action, action.until, action.active_strikes) == ("warn", None, 3)
    assert len(action.decision_ids) == 3 and action.created_by == senior
    proposal.refresh_from_db()
    assert proposal.status == "confirmed" and proposal.account_action == action


def test_a_senior_may_change_the_action_and_its_length(author, reviewer, senior):
    proposal = crossed(author, reviewer)
    action = authors_services.proposal_confirm(
        proposal=proposal, senior=senior, action="suspend", days=3
    )
    assert action.action == "suspend"
    assert timedelta(days=3) - (action.until - action.created_at) < timedelta(seconds=1)


def test_a_suspension_needs_a_length(author, reviewer, senior):
    proposal = crossed(author, reviewer)
    with pytest.raises(ValueError, match="length"):
        authors_services.proposal_confirm(proposal=proposal, senior=senior, action="suspend")
    assert not AccountAction.objects.exists()


def test_a_proposal_is_confirmed_once(author, reviewer, senior):
    proposal = crossed(author, reviewer)
    authors_services.proposal_confirm(proposal=proposal, senior=senior)
    with pytest.raises(authors_services.ProposalClosed):
        authors_services.proposal_confirm(proposal=proposal, senior=senior)
    with pytest.raises(authors_services.ProposalClosed):
        authors_services.proposal_dismiss(proposal=proposal, senior=senior)
    assert AccountAction.objects.count() == 1


def test_a_dismissed_proposal_keeps_its_note_and_makes_no_action(author, reviewer, senior):
    proposal = crossed(author, reviewer)
    authors_services.proposal_dismiss(proposal=proposal, senior=senior, note="a misunderstanding")
    proposal.refresh_from_db()
    assert proposal.status == "dismissed" and proposal.note == "a misunderstanding"
    assert not AccountAction.objects.exists()


def test_the_author_api_lists_confirmed_actions(client, author, reviewer, senior):
    action = authors_services.proposal_confirm(proposal=crossed(author, reviewer), senior=senior)
    response = client.get(
        "/api/authors/u-1/", headers={"Authorization": f"Bearer {author.source._token}"}
    )
    answer = response.json()
    assert (answer["items"], answer["flagged"], answer["removed"]) == (3, 3, 3)
    assert answer["active_strikes"] == 3
    assert answer["actions"] == [
        {
            "account_action_id": action.pk,
            "action": "warn",
            "until": None,
            "created_at": action.created_at.isoformat(),
            "lifted_at": None,
        }
    ]


# --- account.action.created ----------------------------------------------------------------------


@pytest.fixture
def receiver(settings):
    settings.CALLBACK_ALLOW_HTTP = True
    settings.CALLBACK_ALLOW_PRIVATE = True
    server = Receiver().start()
    yield server
    server.stop()


def test_a_confirmed_action_reaches_the_receiver_signed(
    receiver, reviewer, senior, django_capture_on_commit_callbacks
):
    source = SourceFactory(callback_url=receiver.url)
    author = Author.objects.create(source=source, external_id="u-9")
    proposal = crossed(author, reviewer)
    receiver.received.clear()
    with django_capture_on_commit_callbacks(execute=True):
        action = authors_services.proposal_confirm(
            proposal=proposal, senior=senior, action="suspend", days=7
        )
    [request] = receiver.received
    payload = Webhook(source._secret).verify(request.body.decode(), request.headers)
    assert request.headers["webhook-id"] == f"acct_{action.pk}"
    assert payload["type"] == "account.action.created"
    data = payload["data"]
    assert data["account_action_id"] == action.pk and data["author_id"] == "u-9"
    assert data["action"] == "suspend" and data["until"] == action.until.isoformat()
    assert data["active_strikes"] == 3 and data["decision_ids"] == action.decision_ids
    reasons = data["statement_of_reasons"]
    assert [fact["decision_id"] for fact in reasons["facts"]] == action.decision_ids
    assert reasons["automated_decision"] is False and reasons["appeal"]["until"]
    delivery = CallbackDelivery.objects.get(account_action=action)
    assert delivery.state == CallbackDelivery.State.DELIVERED


def test_a_failed_action_callback_is_retried_like_a_decision(
    receiver, reviewer, senior, django_capture_on_commit_callbacks
):
    source = SourceFactory(callback_url=receiver.url)
    author = Author.objects.create(source=source, external_id="u-9")
    proposal = crossed(author, reviewer)
    receiver.answers = [500]
    with django_capture_on_commit_callbacks(execute=True):
        action = authors_services.proposal_confirm(proposal=proposal, senior=senior)
    delivery = CallbackDelivery.objects.get(account_action=action)
    assert delivery.state == CallbackDelivery.State.PENDING and delivery.attempts == 1
    assert delivery.next_attempt_at > timezone.now()


def test_a_removals_callback_names_the_author(
    receiver, reviewer, django_capture_on_commit_callbacks
):
    source = SourceFactory(callback_url=receiver.url)
    author = Author.objects.create(source=source, external_id="u-9")
    with django_capture_on_commit_callbacks(execute=True):
        remove(item_of(author), reviewer)
    data = json.loads(receiver.received[0].body)["data"]
    assert data["author_id"] == "u-9"


def feed(client, source, **params):
    response = client.get(
        "/api/decisions/", params, headers={"Authorization": f"Bearer {source._token}"}
    )
    assert response.status_code == 200, response.content
    return response.json()


def test_the_feed_with_all_events_lists_actions_among_decisions(client, author, reviewer, senior):
    proposal = crossed(author, reviewer)
    action = authors_services.proposal_confirm(proposal=proposal, senior=senior)
    later = remove(item_of(author), reviewer)
    page = feed(client, author.source, events="all")
    assert [event["type"] for event in page["events"]] == [
        "decision.created",
        "decision.created",
        "decision.created",
        "account.action.created",
        "decision.created",
    ]
    assert page["events"][3]["data"]["account_action_id"] == action.pk
    assert page["next"] == f"{later.pk}.{action.pk}" and page["has_more"] is False
    # Without events=all the feed is the decisions alone, as before.
    assert len(feed(client, author.source)["decisions"]) == 4


def test_the_all_events_feed_pages_without_skips_or_repeats(client, author, reviewer, senior):
    authors_services.proposal_confirm(proposal=crossed(author, reviewer), senior=senior)
    for _ in range(2):
        remove(item_of(author), reviewer)
    seen, cursor = [], "0"
    for _ in range(20):
        page = feed(client, author.source, events="all", since=cursor, limit=2)
        seen += [(e["type"], json.dumps(e["data"], sort_keys=True)) for e in page["events"]]
        cursor = page["next"]
        if not page["has_more"]:
            break
    assert len(seen) == len(set(seen)) == 6


# --- the OpenAPI document tells the truth -------------------------------------------------


def test_the_author_api_and_the_action_events_match_the_documented_schemas(
    client, author, reviewer, senior
):
    author.source.callback_include_reviewer = True
    author.source.save()
    action = authors_services.proposal_confirm(proposal=crossed(author, reviewer), senior=senior)
    token = {"Authorization": f"Bearer {author.source._token}"}
    answer = client.get("/api/authors/u-1/", headers=token).json()
    assert errors(response_validator("/api/authors/{author_id}/", "get", 200), answer) == []
    missing = client.get("/api/authors/nobody/", headers=token).json()
    assert errors(response_validator("/api/authors/{author_id}/", "get", 404), missing) == []
    page = feed(client, author.source, events="all", limit=3)
    assert errors(response_validator("/api/decisions/", "get", 200), page) == []
    rest = feed(client, author.source, events="all", since=page["next"])
    assert errors(response_validator("/api/decisions/", "get", 200), rest) == []
    body = json.loads(deliveries.account_action_body(action))
    pointer = "/webhooks/accountAction/post/requestBody/content/application~1json"
    assert errors(validator_at(pointer + "/schema"), body) == []
