"""A team queue's own settings govern the items it serves: its SLA (the sweep), its exposure
budget, its audit and golden shares; the SLA header counts only the queues a reviewer is
served; routing loads an item's facts in one query."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.utils import timezone

from moderation.models import Item
from moderation.selectors.queue import queue_sla
from moderation.services.queue import items_sla_refresh
from moderation.services.routing_rules import queue_save
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
