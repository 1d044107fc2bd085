"""A team queue's own settings govern the items it serves: its SLA (the sweep), its exposure
budget, its audit and golden shares; the SLA header counts only the queues a reviewer is
served; routing loads an item's facts in one query."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from moderation.models import Author, Bank, Item
from moderation.selectors.queue import queue_sla
from moderation.services.queue import items_sla_refresh
from moderation.services.routing import item_route, items_route
from moderation.services.routing_rules import queue_save, rule_save
from moderation.tests.factories import ItemFactory, SourceFactory, UserFactory, sort_key

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin():
    return UserFactory(is_staff=True, reviewer=False)


@pytest.fixture
def team():
    return Group.objects.create(name="Graphic team")


@pytest.fixture
def graphic(admin, team):
    return queue_save(actor=admin, queue=None, name="Graphic", team_id=team.pk)


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
