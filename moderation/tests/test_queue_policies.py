"""A team queue's own settings govern the items it serves: its SLA (the sweep), its exposure
budget, its audit and golden shares; the SLA header counts only the queues a reviewer is
served; routing loads an item's facts in one query."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from labelers.routing import routing_cache
from moderation.models import (
    Author,
    Bank,
    GoldenAnswer,
    GoldenItem,
    Item,
    ReviewerSettings,
)
from moderation.selectors.queue import queue_sla
from moderation.services.decisions import decision_record
from moderation.services.golden import golden_item_mark
from moderation.services.queue import items_sla_refresh
from moderation.services.reviewers import media_reveal_record, reviewer_settings_save
from moderation.services.routing import item_route, items_route
from moderation.services.routing_rules import default_queue, queue_save, rule_save
from moderation.tests.factories import ItemFactory, SourceFactory, UserFactory, sort_key

pytestmark = pytest.mark.django_db


def _waited(item, minutes) -> None:
    Item.objects.filter(pk=item.pk).update(
        waiting_since=timezone.now() - timedelta(minutes=minutes)
    )


def _breached(*items) -> list[bool]:
    return [Item.objects.get(pk=item.pk).sla_breached for item in items]


# --- The SLA sweep and the SLA header ---------------------------------------------------------


def test_the_sla_sweep_holds_a_team_queues_items_to_the_queues_own_sla(admin, graphic):
    queue_save(actor=admin, queue=graphic, sla_minutes=10)
    source = SourceFactory(review_sla_minutes=60)
    late = ItemFactory(source=source, queue=graphic, violation_score=0.7)
    fresh = ItemFactory(source=source, queue=graphic)
    elsewhere = ItemFactory(source=source)  # the default queue: its source's 60 minutes
    _waited(late, 20)
    _waited(fresh, 5)
    _waited(elsewhere, 20)
    assert items_sla_refresh() == 1
    assert _breached(late, fresh, elsewhere) == [True, False, False]
    # First within its score band, as any breached item.
    assert Item.objects.get(pk=late.pk).queue_key == sort_key(0.7, breached=True)
    assert items_sla_refresh() == 0
    # The queue's SLA lengthened past the wait: unmarked, back to its place.
    queue_save(actor=admin, queue=graphic, sla_minutes=30)
    assert items_sla_refresh() == 1
    assert _breached(late) == [False]
    assert Item.objects.get(pk=late.pk).queue_key == sort_key(0.7, breached=False)
    # No SLA of its own any more: its source's holds it again.
    queue_save(actor=admin, queue=graphic, sla_minutes=None)
    _waited(late, 61)
    assert items_sla_refresh() == 1
    assert _breached(late, fresh, elsewhere) == [True, False, False]


def test_the_sla_header_counts_only_the_queues_the_reviewer_is_served(admin, graphic):
    source = SourceFactory(review_sla_minutes=10)
    hidden = ItemFactory(source=source, queue=graphic)
    mine = ItemFactory(source=source)
    _waited(hidden, 60)
    _waited(mine, 20)
    items_sla_refresh()
    outsider = UserFactory()
    row = next(r for r in queue_sla(reviewer=outsider) if r.source == source)
    assert (row.waiting.n, row.past_sla.n) == (1, 1)
    assert row.oldest_since == Item.objects.get(pk=mine.pk).waiting_since
    # A member of the team, and an admin, count both queues.
    member = UserFactory()
    member.groups.add(Group.objects.get(name="Graphic team"))
    for reviewer in (member, admin):
        row = next(r for r in queue_sla(reviewer=reviewer) if r.source == source)
        assert (row.waiting.n, row.past_sla.n) == (2, 2)
        assert row.oldest_since == Item.objects.get(pk=hidden.pk).waiting_since


# --- Routing's cost ---------------------------------------------------------------------------


def _every_kind_of_rule(admin, queues, source, bank):
    """Ten rules using every condition kind; an item in Portuguese scored 0.95 matches only
    the last."""
    conditions = [
        {"sources": [source.pk + 1000]},
        {"labelers": [10_000]},
        {"score_max": 0.1},
        {"formats": ["video"]},
        {"languages": ["ar"]},
        {"report_reasons": ["csam"]},
        {"strikes_min": 5},
        {"banks": [bank.pk]},
        {"score_min": 0.9, "formats": ["image"]},
        {"score_min": 0.9, "languages": ["pt"]},
    ]
    for n, (queue, condition) in enumerate(zip(queues, conditions, strict=True)):
        rule_save(actor=admin, rule=None, name=f"r{n}", queue=queue, conditions=condition)


def test_routing_loads_an_items_extra_facts_in_one_query(admin, django_assert_num_queries):
    source = SourceFactory()
    author = Author.objects.create(source=source, external_id="a-1")
    queues = [queue_save(actor=admin, queue=None, name=f"Team {n}") for n in range(10)]
    _every_kind_of_rule(admin, queues, source, Bank.objects.create(name="b", action="review"))
    items = [
        ItemFactory(source=source, author=author, violation_score=0.95, language="pt")
        for _ in range(3)
    ]
    item_route(item_id=items[0].pk)  # the rules, loaded once per process
    # The item's row, its extra facts (labels, reports, strikes, banks: one query), the move.
    with django_assert_num_queries(3):
        assert item_route(item_id=items[1].pk) is True
    assert Item.objects.get(pk=items[1].pk).queue_id == queues[9].pk
    # Many items at once: still one query of facts for them all.
    Item.objects.filter(pk__in=[i.pk for i in items]).update(queue=None)
    with django_assert_num_queries(2 + len(items)):
        assert items_route(item_ids=[i.pk for i in items]) == len(items)


def test_rules_needing_no_extra_fact_cost_no_query_of_facts(admin, django_assert_num_queries):
    graphic = queue_save(actor=admin, queue=None, name="Graphic")
    rule_save(
        actor=admin,
        rule=None,
        name="pt",
        queue=graphic,
        conditions={"languages": ["pt"], "score_min": 0.9},
    )
    first, second = (ItemFactory(violation_score=0.95, language="pt") for _ in range(2))
    item_route(item_id=first.pk)
    with django_assert_num_queries(2):  # the item's row and the move
        assert item_route(item_id=second.pk) is True


# --- A queue's exposure budget, golden and audit shares ---------------------------------------


def _next(client) -> int | None:
    """The item "next" opens (None: back to the queue)."""
    url = client.get(reverse("queue_next")).url
    match = re.match(r"^/items/(\d+)/", url)
    return int(match.group(1)) if match else None


def _decide(item) -> None:
    Item.objects.filter(pk=item.pk).update(
        status=Item.Status.DECIDED, queue_key=None, claimed_by=None
    )


def _revealed(reviewer) -> None:
    """The reviewer revealed the media of an item (since decided) this shift."""
    item = ItemFactory(content_image="images/seen.png")
    media_reveal_record(item=item, reviewer=reviewer)
    _decide(item)


@pytest.fixture
def member(team):
    user = UserFactory()
    user.groups.add(team)
    return user


def test_a_queues_exposure_budget_holds_back_its_media_once_reached(client, admin, graphic, member):
    queue_save(actor=admin, queue=graphic, exposure_budget_reveals=1)
    anywhere = ItemFactory(violation_score=0.97, content_image="images/a.png")
    graphic_media = ItemFactory(violation_score=0.95, content_image="images/b.png", queue=graphic)
    graphic_text = ItemFactory(violation_score=0.6, queue=graphic)
    _revealed(member)  # one reveal this shift
    client.force_login(member)
    # The default queue has no budget of its own, nor has the reviewer: its media is served.
    assert _next(client) == anywhere.pk
    _decide(anywhere)
    # The Graphic queue's budget (1 reveal) is reached: its text-only items first.
    assert _next(client) == graphic_text.pk
    _decide(graphic_text)
    assert _next(client) == graphic_media.pk


def test_a_queues_exposure_budget_replaces_the_reviewers_own(client, admin, graphic, member):
    queue_save(actor=admin, queue=graphic, exposure_budget_reveals=10)
    reviewer_settings_save(reviewer=member, exposure_budget_reveals=1)
    media = ItemFactory(violation_score=0.95, content_image="images/b.png", queue=graphic)
    ItemFactory(violation_score=0.6, queue=graphic)
    _revealed(member)
    client.force_login(member)
    # Over their own budget, not over the queue's: the queue's media is served by score.
    assert _next(client) == media.pk


def _golden(**item_fields) -> GoldenItem:
    item = ItemFactory(**item_fields)
    decision_record(item=item, reviewer=UserFactory(), action="approve")
    return golden_item_mark(item=item, expected_action="approve", created_by=None)


def test_a_queues_golden_share_replaces_the_reviewers(client, admin, graphic, member):
    queue_save(actor=admin, queue=graphic, golden_share=1.0)
    ReviewerSettings.objects.create(user=member, golden_share=0.0)
    waiting = ItemFactory(violation_score=0.9, queue=graphic)
    gold = _golden(queue=graphic)
    client.force_login(member)
    # Every "next" in the Graphic queue may be golden: its golden item is served.
    assert _next(client) == gold.item_id
    assert GoldenAnswer.objects.filter(golden=gold, reviewer=member).exists()
    # None left: the waiting item.
    GoldenItem.objects.filter(pk=gold.pk).update(active=False)
    assert _next(client) == waiting.pk


def test_a_reviewer_is_never_served_another_teams_golden_item(client, admin, graphic):
    outsider = UserFactory()
    ReviewerSettings.objects.create(user=outsider, golden_share=1.0)
    waiting = ItemFactory(violation_score=0.9)
    _golden(queue=graphic)
    client.force_login(outsider)
    assert _next(client) == waiting.pk
    assert not GoldenAnswer.objects.filter(reviewer=outsider).exists()


def test_a_queue_with_no_golden_share_leaves_the_reviewers(client, admin, graphic, member):
    ReviewerSettings.objects.create(user=member, golden_share=0.0)
    waiting = ItemFactory(violation_score=0.9, queue=graphic)
    _golden(queue=graphic)
    client.force_login(member)
    assert _next(client) == waiting.pk


def _clean(post_webhook, source, text) -> Item:
    response = post_webhook(source, {"external_id": text, "content_text": text})
    assert response.status_code in (200, 202), response.content
    return Item.objects.get(pk=response.json()["id"])


def _labeler_shares(source, *, audit_share, auto_approve=None) -> None:
    labeler = source.labelers.get()
    labeler.audit_share = audit_share
    labeler.auto_approve_confidence = auto_approve
    labeler.save()
    routing_cache.clear()


def test_a_queues_audit_share_replaces_its_labelers(fake_api, post_webhook, source, admin):
    _labeler_shares(source, audit_share=0.0, auto_approve=0.5)
    audited = queue_save(actor=admin, queue=None, name="Audited", audit_share=1.0)
    rule_save(
        actor=admin, rule=None, name="all", queue=audited, conditions={"sources": [source.pk]}
    )
    item = _clean(post_webhook, source, "calm text conf=0.9")
    item.refresh_from_db()
    # The labelers audit none and would approve it; the queue it routes to audits all.
    assert item.status == Item.Status.AUDIT and not item.decisions.exists()
    assert item.queue_id == audited.pk
    other = SourceFactory()
    other.labelers.set(source.labelers.all())
    routing_cache.clear()
    elsewhere = _clean(post_webhook, other, "calm text elsewhere conf=0.9")
    elsewhere.refresh_from_db()
    # An item routed elsewhere keeps its labelers' shares: approved by the system.
    assert elsewhere.status == Item.Status.DECIDED and elsewhere.decisions.get().automatic


def test_a_queues_zero_audit_share_stops_its_labelers_sample(fake_api, post_webhook, source, admin):
    _labeler_shares(source, audit_share=1.0, auto_approve=0.5)
    queue_save(actor=admin, queue=default_queue(), audit_share=0.0)
    item = _clean(post_webhook, source, "calm text conf=0.9")
    item.refresh_from_db()
    # The default queue (no rules) audits none: the labelers' band approves it.
    assert item.status == Item.Status.DECIDED and item.decisions.get().automatic
