"""Appeals for seniors: the queue (pending, oldest first, never to the person who made the
appealed decision or confirmed the action), the appeal page, and the outcome: upheld, or
overturned (the item restored and its strikes withdrawn; an account action lifted), sent
to the product as appeal.decided."""

import importlib
import json
from datetime import timedelta

import pytest
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from labelers.models import Label
from labelers.quality.loaders import Overturns, version_overturns
from moderation.callbacks import deliveries
from moderation.errors import ClaimConflict, NotAllowed, StaleRevision
from moderation.models import (
    AccountAction,
    AccountActionProposal,
    Appeal,
    Author,
    CallbackDelivery,
    Decision,
    Item,
    Strike,
)
from moderation.selectors.appeals import appeals_queue, overturns_by_reviewer
from moderation.selectors.authors import author_counts
from moderation.services.appeals import AppealClosed, AppealPayload, appeal_decide, appeal_receive
from moderation.services.decisions import decision_record, decision_undo
from moderation.tests.factories import LabelerFactory, SourceFactory, UserFactory, reason_id
from moderation.tests.test_openapi import errors, response_validator, validator_at
from testkit.receiver import Receiver

MIGRATION_0030 = importlib.import_module("moderation.migrations.0030_appeal_decision_reviewer")

pytestmark = pytest.mark.django_db


@pytest.fixture
def receiver(settings):
    # As in the embedded default: callbacks to http://127.0.0.1 allowed.
    settings.CALLBACK_ALLOW_HTTP = True
    settings.CALLBACK_ALLOW_PRIVATE = True
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture
def reviewer():
    return UserFactory()


@pytest.fixture
def remover():
    """A senior who removed the item: the appeal must never reach them."""
    return UserFactory(senior=True)


@pytest.fixture
def senior():
    return UserFactory(senior=True)


@pytest.fixture
def author(source):
    return Author.objects.create(source=source, external_id="u-1")


def removed(source, remover, external_id="post-1", author=None, note="") -> Decision:
    item = Item.objects.create(
        source=source,
        external_id=external_id,
        webhook_id=f"msg-{external_id}",
        content_text="<b>I will find you</b>",
        content_hash=f"h-{external_id}",
        status=Item.Status.FLAGGED,
        queue_score=0.9,
        author=author,
    )
    return decision_record(
        item=item, reviewer=remover, action="remove", reason_id=reason_id("remove"), note=note
    )


def appeal_of(decision, appeal_id="a-1", statement="") -> Appeal:
    return Appeal.objects.create(
        source=decision.item.source,
        appeal_id=appeal_id,
        webhook_id=f"msg-{appeal_id}",
        decision=decision,
        decision_reviewer_id=decision.reviewer_id,  # as appeal_receive stores it
        item=decision.item,
        statement=statement,
    )


def action_appeal(source, confirmed_by) -> Appeal:
    author = Author.objects.create(source=source, external_id="u-9")
    action = AccountAction.objects.create(
        source=source,
        author=author,
        action="suspend",
        until=timezone.now() + timedelta(days=7),
        active_strikes=5,
        decision_ids=[],
        created_by=confirmed_by,
    )
    return Appeal.objects.create(
        source=source, appeal_id="acct-1", webhook_id="m", account_action=action
    )


def queue_ids(user):
    rows, _ = appeals_queue(user=user, source_ids=None)
    return [row.appeal.pk for row in rows]


# --- the queue and who gets an appeal --------------------------------------------------------


def test_the_queue_lists_pending_appeals_oldest_first(source, remover, senior):
    first = appeal_of(removed(source, remover, "p1"), "a-1")
    second = appeal_of(removed(source, remover, "p2"), "a-2")
    Appeal.objects.filter(pk=second.pk).update(received_at=timezone.now() - timedelta(hours=1))
    decided = appeal_of(removed(source, remover, "p3"), "a-3")
    Appeal.objects.filter(pk=decided.pk).update(status=Appeal.Status.UPHELD)
    assert queue_ids(senior) == [second.pk, first.pk]


def test_the_remover_never_gets_the_appeal_even_as_a_senior(client, source, remover, senior):
    appeal = appeal_of(removed(source, remover))
    assert queue_ids(remover) == [] and queue_ids(senior) == [appeal.pk]
    client.force_login(remover)
    assert client.get(f"/appeals/{appeal.pk}/").status_code == 403
    response = client.post(
        f"/appeals/{appeal.pk}/", {"outcome": "overturned", "revision": appeal.item.revision}
    )
    assert response.status_code == 403
    with pytest.raises(NotAllowed):
        appeal_decide(appeal=appeal, senior=remover, outcome="overturned")
    appeal.refresh_from_db()
    assert appeal.status == Appeal.Status.PENDING


def test_the_senior_who_confirmed_an_action_never_gets_its_appeal(source, senior):
    confirmer = UserFactory(senior=True)
    appeal = action_appeal(source, confirmer)
    assert queue_ids(confirmer) == [] and queue_ids(senior) == [appeal.pk]
    with pytest.raises(NotAllowed):
        appeal_decide(appeal=appeal, senior=confirmer, outcome="overturned")


def test_a_reviewer_who_is_not_senior_is_refused_the_appeals_pages(client, source, remover):
    appeal = appeal_of(removed(source, remover))
    client.force_login(UserFactory())
    assert client.get("/appeals/").status_code == 403
    assert client.get(f"/appeals/{appeal.pk}/").status_code == 403


def test_a_past_sla_appeal_is_marked_in_the_queue(client, remover, senior):
    source = SourceFactory(appeal_sla_minutes=60)
    late = appeal_of(removed(source, remover, "p1"), "a-1")
    Appeal.objects.filter(pk=late.pk).update(received_at=timezone.now() - timedelta(hours=2))
    on_time = appeal_of(removed(source, remover, "p2"), "a-2")
    rows, _ = appeals_queue(user=senior, source_ids=None)
    assert [(row.appeal.pk, row.breached) for row in rows] == [(late.pk, True), (on_time.pk, False)]
    client.force_login(senior)
    page = client.get("/appeals/").content.decode()
    assert page.count("past SLA") == 1


# --- the appeal page --------------------------------------------------------------------------


def test_the_page_shows_the_statement_escaped_and_the_removals_reason_and_note(
    client, source, remover, senior
):
    removal = removed(source, remover, note="clear threat")
    appeal = appeal_of(removal, statement="<script>alert(1)</script> it was a quote")
    client.force_login(senior)
    response = client.get(f"/appeals/{appeal.pk}/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; it was a quote" in page
    assert "<script>alert(1)" not in page
    assert removal.reason in page and "clear threat" in page
    assert "&lt;b&gt;I will find you&lt;/b&gt;" in page  # the item's content, escaped
    assert f'name="revision" value="{removal.item.revision}"' in page
    assert 'id="history"' in page and "Remove by" in page


def test_the_item_page_marks_a_pending_appeal_and_links_seniors_to_it(
    client, source, remover, senior
):
    removal = removed(source, remover)
    appeal = appeal_of(removal)
    client.force_login(remover)
    page = client.get(f"/items/{removal.item_id}/").content.decode()
    assert 'id="pending-appeal"' in page and f'href="/appeals/{appeal.pk}/"' not in page
    client.force_login(senior)
    page = client.get(f"/items/{removal.item_id}/").content.decode()
    assert 'id="pending-appeal"' in page and f'href="/appeals/{appeal.pk}/"' in page
    appeal_decide(appeal=appeal, senior=senior, outcome="upheld")
    assert 'id="pending-appeal"' not in client.get(f"/items/{removal.item_id}/").content.decode()


# --- outcomes ---------------------------------------------------------------------------------


def test_upholding_keeps_the_removal_and_its_strike(source, author, remover, senior):
    removal = removed(source, remover, author=author)
    appeal = appeal_decide(appeal=appeal_of(removal), senior=senior, outcome="upheld")
    assert (appeal.status, appeal.decided_by, appeal.result_decision) == ("upheld", senior, None)
    item = Item.objects.get(pk=removal.item_id)
    assert item.decisions.count() == 1
    assert Strike.objects.get(decision=removal).withdrawn_at is None


def test_overturning_a_removal_restores_the_item_and_withdraws_its_strike(
    source, author, remover, senior
):
    removal = removed(source, remover, author=author)
    appeal = appeal_decide(
        appeal=appeal_of(removal), senior=senior, outcome="overturned", note="satire"
    )
    approval = appeal.result_decision
    assert (approval.action, approval.reviewer, approval.note) == ("approve", senior, "satire")
    item = Item.objects.get(pk=removal.item_id)
    assert item.status == Item.Status.DECIDED
    assert item.decisions.order_by("-id").first() == approval
    strike = Strike.objects.get(decision=removal)
    assert strike.withdrawn_at is not None and strike.withdrawn_by == approval
    assert item.decided_action == "approve"


def test_undoing_an_overturn_leaves_the_item_removed_again(source, author, remover, senior):
    removal = removed(source, remover, author=author)
    appeal = appeal_decide(appeal=appeal_of(removal), senior=senior, outcome="overturned")
    decision_undo(decision=appeal.result_decision, reviewer=senior)
    item = Item.objects.get(pk=removal.item_id)
    assert (item.status, item.decided_action) == (Item.Status.DECIDED, "remove")
    assert author_counts(author)["removed"] == 1


def test_overturning_dismisses_the_proposal_the_removal_made(author, remover, senior):
    source = author.source
    source.account_thresholds = [{"strikes": 1, "action": "warn"}]
    source.save()
    removal = removed(source, remover, author=author)
    assert AccountActionProposal.objects.get().status == "proposed"
    appeal_decide(appeal=appeal_of(removal), senior=senior, outcome="overturned")
    assert AccountActionProposal.objects.get().status == "dismissed"


def test_overturning_an_account_action_lifts_it(source, senior):
    appeal = action_appeal(source, UserFactory(senior=True))
    appeal_decide(appeal=appeal, senior=senior, outcome="overturned")
    action = AccountAction.objects.get()
    assert action.lifted_at is not None
    assert Appeal.objects.get().result_decision is None


def test_an_outcome_for_a_revision_edited_since_is_refused(source, remover, senior):
    removal = removed(source, remover)
    appeal = appeal_of(removal)
    Item.objects.filter(pk=removal.item_id).update(revision=2)
    with pytest.raises(StaleRevision):
        appeal_decide(appeal=appeal, senior=senior, outcome="overturned", revision=1)
    assert Appeal.objects.get().status == "pending"
    assert Decision.objects.count() == 1


def test_an_item_decided_again_since_the_appeal_is_refused(source, remover, senior):
    removal = removed(source, remover)
    appeal = appeal_of(removal)
    Item.objects.filter(pk=removal.item_id).update(status=Item.Status.REREVIEW)
    decision_record(item=removal.item, reviewer=UserFactory(), action="approve")
    with pytest.raises(ClaimConflict):
        appeal_decide(appeal=appeal, senior=senior, outcome="overturned", revision=1)
    assert Appeal.objects.get().status == "pending"


def test_a_decided_appeal_is_not_decided_twice(source, remover, senior):
    appeal = appeal_of(removed(source, remover))
    appeal_decide(appeal=appeal, senior=senior, outcome="overturned")
    with pytest.raises(AppealClosed):
        appeal_decide(appeal=appeal, senior=UserFactory(senior=True), outcome="upheld")
    assert Decision.objects.filter(action="approve").count() == 1


def test_the_page_posts_an_outcome_with_the_revision_it_showed(client, source, remover, senior):
    removal = removed(source, remover)
    appeal = appeal_of(removal)
    client.force_login(senior)
    missing = client.post(f"/appeals/{appeal.pk}/", {"outcome": "overturned"})
    assert missing.status_code == 302
    assert Appeal.objects.get().status == "pending"
    stale = client.post(f"/appeals/{appeal.pk}/", {"outcome": "overturned", "revision": 2})
    assert stale.status_code == 302 and Appeal.objects.get().status == "pending"
    done = client.post(f"/appeals/{appeal.pk}/", {"outcome": "overturned", "revision": 1})
    assert done.status_code == 302 and done["Location"] == "/appeals/"
    assert Appeal.objects.get().status == "overturned"


# --- back to the product ----------------------------------------------------------------------


def test_the_product_receives_appeal_decided_signed_with_the_new_decision(
    receiver, remover, senior, django_capture_on_commit_callbacks
):
    source = SourceFactory(callback_url=receiver.url)
    author = Author.objects.create(source=source, external_id="u-1")
    removal = removed(source, remover, author=author)
    appeal = appeal_of(removal, appeal_id="a-7")
    receiver.received.clear()
    with django_capture_on_commit_callbacks(execute=True):
        appeal = appeal_decide(appeal=appeal, senior=senior, outcome="overturned")
    payloads = {
        request.headers["webhook-id"]: Webhook(source._secret).verify(
            request.body.decode(), request.headers
        )
        for request in receiver.received
    }
    approval = appeal.result_decision
    assert payloads[f"dec_{approval.pk}"]["data"]["action"] == "approve"
    event = payloads[f"appeal_{appeal.pk}"]
    assert event["type"] == "appeal.decided"
    assert event["data"] == {
        "appeal_id": "a-7",
        "outcome": "overturned",
        "decision_id": approval.pk,
        "appealed_decision_id": removal.pk,
        "external_id": "post-1",
        "author_id": "u-1",
        "decided_at": appeal.decided_at.isoformat(),
    }
    delivery = CallbackDelivery.objects.get(appeal=appeal)
    assert delivery.state == CallbackDelivery.State.DELIVERED


def test_an_account_action_appeal_upheld_names_the_action_and_no_decision(
    receiver, senior, django_capture_on_commit_callbacks
):
    source = SourceFactory(callback_url=receiver.url)
    appeal = action_appeal(source, UserFactory(senior=True))
    with django_capture_on_commit_callbacks(execute=True):
        appeal_decide(appeal=appeal, senior=senior, outcome="upheld")
    [request] = receiver.received
    event = Webhook(source._secret).verify(request.body.decode(), request.headers)
    assert event["type"] == "appeal.decided"
    data = event["data"]
    assert (data["outcome"], data["decision_id"]) == ("upheld", None)
    assert data["account_action_id"] == appeal.account_action_id
    assert data["author_id"] == "u-9"


def test_a_real_appeal_decided_body_matches_the_documented_webhook(source, remover, senior):
    appeal = appeal_decide(
        appeal=appeal_of(removed(source, remover)), senior=senior, outcome="overturned"
    )
    action = appeal_decide(appeal=action_appeal(source, remover), senior=senior, outcome="upheld")
    pointer = "/webhooks/appealDecided/post/requestBody/content/application~1json"
    validator = validator_at(pointer + "/schema")
    for decided in (appeal, action):
        assert errors(validator, json.loads(deliveries.appeal_body(decided))) == []


# --- overturn rates -------------------------------------------------------------------------


def flagged_removed(source, remover, version, n) -> Decision:
    removal = removed(source, remover, external_id=f"flagged-{version.pk}-{n}")
    Label.objects.create(
        item=removal.item,
        labeler_version=version,
        content_hash=removal.item.content_hash,
        status=Label.Status.DONE,
        label="1",
        confidence=0.9,
    )
    return removal


def test_the_overturn_rate_counts_decided_appeals_of_removals_the_version_flagged(
    client, source, remover, senior
):
    version = LabelerFactory().versions.get()
    other = LabelerFactory().versions.get()
    for n, outcome in enumerate(["overturned", "overturned", "upheld", None]):
        appeal = appeal_of(flagged_removed(source, remover, version, n), f"v-{n}")
        if outcome:
            appeal_decide(appeal=appeal, senior=senior, outcome=outcome)
    appeal_decide(
        appeal=appeal_of(flagged_removed(source, remover, other, 9), "o-9"),
        senior=senior,
        outcome="overturned",
    )
    assert version_overturns(version.pk) == Overturns(decided=3, overturned=2)
    assert version_overturns(other.pk) == Overturns(decided=1, overturned=1)
    client.force_login(UserFactory(is_staff=True))
    html = client.get(f"/manage/labelers/{version.labeler_id}/quality/").content.decode()
    assert '67 % <span class="meta">(2/3 appeals)</span>' in html


def test_the_team_page_shows_each_reviewers_overturn_rate(client, source, remover, senior):
    for n, outcome in enumerate(["overturned", "upheld", "upheld", "upheld"]):
        appeal = appeal_of(removed(source, remover, external_id=f"r-{n}"), f"r-{n}")
        appeal_decide(appeal=appeal, senior=senior, outcome=outcome)
    appeal_of(removed(source, remover, external_id="pending"), "pending")
    client.force_login(UserFactory(is_staff=True))
    html = client.get("/team/").content.decode()
    assert f'<tr data-reviewer="{remover.username}"><td>{remover.username}</td>' in html
    assert "25 % (1/4)" in html
    # In the page's body, not its <title> (where the browser shows it as text).
    assert html.index('id="overturns"') > html.index("</title>")


def test_an_appeal_keeps_the_reviewer_whose_removal_it_appeals(source, remover):
    removal = removed(source, remover, external_id="by-a-person")
    appeal, _ = appeal_receive(
        source=source,
        payload=AppealPayload("a-person", "", external_id="by-a-person"),
        webhook_id="m-person",
    )
    assert appeal.decision_id == removal.pk and appeal.decision_reviewer_id == remover.pk


def test_the_migration_gives_earlier_appeals_their_reviewer(source, remover):
    by_person = Appeal.objects.create(
        source=source,
        appeal_id="before",
        webhook_id="m-before",
        decision=(decision := removed(source, remover, external_id="before")),
        item=decision.item,
    )
    automatic = removed(source, remover, external_id="automatic")
    Decision.objects.filter(pk=automatic.pk).update(reviewer=None)
    automatic.refresh_from_db()
    by_nobody = appeal_of(automatic, "automatic")
    MIGRATION_0030.appeals_keep_their_reviewer(apps, None)
    by_person.refresh_from_db()
    by_nobody.refresh_from_db()
    assert by_person.decision_reviewer_id == remover.pk
    assert by_nobody.decision_reviewer_id is None


def test_overturns_per_reviewer_read_the_appeals_alone(source, remover, senior):
    """Not joined to the decisions appealed: the team page's cost follows the appeals."""
    appeal = appeal_of(removed(source, remover, external_id="r-1"), "r-1")
    appeal_decide(appeal=appeal, senior=senior, outcome="overturned")
    with CaptureQueriesContext(connection) as queries:
        rows = overturns_by_reviewer()
    assert rows == [{"reviewer": remover.username, "decided": 1, "overturned": 1}]
    assert [q["sql"] for q in queries if "moderation_decision" in q["sql"]] == []


# --- the decisions feed ----------------------------------------------------------------------


def feed(client, source, **params):
    response = client.get(
        "/api/decisions/", params, headers={"Authorization": f"Bearer {source._token}"}
    )
    assert response.status_code == 200, response.content
    return response.json()


def test_the_all_events_feed_lists_appeal_outcomes_in_the_order_they_were_decided(
    client, source, remover, senior
):
    older = appeal_of(removed(source, remover, "p1"), "a-1")
    newer = appeal_of(removed(source, remover, "p2"), "a-2")
    # Decided in the other order than received: the feed follows the outcomes.
    appeal_decide(appeal=newer, senior=senior, outcome="upheld")
    overturned = appeal_decide(appeal=older, senior=senior, outcome="overturned")
    page = feed(client, source, events="all")
    assert [(e["type"], e["data"].get("appeal_id")) for e in page["events"]] == [
        ("decision.created", None),
        ("decision.created", None),
        ("appeal.decided", "a-2"),
        ("decision.created", None),
        ("appeal.decided", "a-1"),
    ]
    assert page["events"][4]["data"]["decision_id"] == overturned.result_decision_id
    assert page["next"] == f"{overturned.result_decision_id}.0.2"
    assert errors(response_validator("/api/decisions/", "get", 200), page) == []


def test_the_all_events_feed_pages_appeals_without_skips_or_repeats(
    client, source, remover, senior
):
    for n in range(3):
        appeal = appeal_of(removed(source, remover, f"p{n}"), f"a-{n}")
        appeal_decide(appeal=appeal, senior=senior, outcome="overturned")
    seen, cursor = [], "0"
    for _ in range(20):
        page = feed(client, source, events="all", since=cursor, limit=2)
        seen += [(e["type"], json.dumps(e["data"], sort_keys=True)) for e in page["events"]]
        cursor = page["next"]
        if not page["has_more"]:
            break
    assert len(seen) == len(set(seen)) == 9  # 3 removals, 3 approvals, 3 outcomes
    # An old cursor (decision.action) still works: appeal outcomes come from the start.
    assert len(feed(client, source, events="all", since="0.0")["events"]) == 9


def test_the_author_api_says_when_an_action_was_lifted(client, source, senior):
    appeal = action_appeal(source, UserFactory(senior=True))
    appeal_decide(appeal=appeal, senior=senior, outcome="overturned")
    answer = client.get(
        "/api/authors/u-9/", headers={"Authorization": f"Bearer {source._token}"}
    ).json()
    [action] = answer["actions"]
    assert action["lifted_at"] == AccountAction.objects.get().lifted_at.isoformat()
    assert errors(response_validator("/api/authors/{author_id}/", "get", 200), answer) == []


def test_an_appeal_shows_on_its_authors_timeline(client, source, author, remover, senior):
    removed(source, remover, author=author)
    payload = AppealPayload("a-tl", "<i>mine</i>", external_id="post-1")
    appeal, _ = appeal_receive(source=source, payload=payload, webhook_id="m")
    assert appeal.author == author
    appeal_decide(appeal=appeal, senior=senior, outcome="upheld")
    client.force_login(senior)
    page = client.get(f"/authors/{author.pk}/").content.decode()
    assert 'data-kind="appeal"' in page and "<code>a-tl</code>" in page
    assert "&lt;i&gt;mine&lt;/i&gt;" in page and "upheld" in page


def test_the_page_of_an_account_action_appeal_shows_the_action_and_its_removals(
    client, source, author, remover, senior
):
    removal = removed(source, remover, author=author, note="threat")
    appeal = action_appeal(source, UserFactory(senior=True))
    AccountAction.objects.filter(pk=appeal.account_action_id).update(decision_ids=[removal.pk])
    client.force_login(senior)
    response = client.get(f"/appeals/{appeal.pk}/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "Suspend until" in page and 'id="action-decisions"' in page
    assert "post-1" in page and "threat" in page
    assert 'name="revision"' not in page
    assert 'id="nav-appeals"' in page
    done = client.post(f"/appeals/{appeal.pk}/", {"outcome": "overturned"})
    assert done.status_code == 302
    assert AccountAction.objects.get().lifted_at is not None
