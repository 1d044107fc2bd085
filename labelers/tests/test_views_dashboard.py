"""The admins' dashboard (/manage/): figures on a constructed set (today against the past 7
days, per source, failures by kind), each figure's link lists exactly what it counted, staff
only, and a fixed number of queries however much there is."""

import re
from datetime import timedelta
from html import unescape

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from labelers.models import Label
from labelers.selectors import dashboard_periods
from moderation.models import CallbackDelivery, Decision, Item, MediaReveal
from moderation.selectors.queue import queue_figures_cache
from moderation.tests.factories import ItemFactory, SourceFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(client):
    user = UserFactory(is_staff=True, is_superuser=True, username="admin")
    client.force_login(user)
    return user


@pytest.fixture
def moments():
    """Times inside today, inside the past 7 days but not today, and before them."""
    today, week = dashboard_periods()
    return {
        "today": today.start + timedelta(seconds=1),
        "week": today.start - timedelta(days=3),
        "older": week.start - timedelta(minutes=1),
    }


def item_at(source, when, **fields):
    item = ItemFactory(source=source, **fields)
    Item.objects.filter(pk=item.pk).update(received_at=when)
    return item


def label_for(item, *, status=Label.Status.DONE, labeled_at=None):
    return Label.objects.create(
        item=item,
        labeler_version=item.source.labelers.get().versions.get(),
        status=status,
        content_hash=item.content_hash,
        labeled_at=labeled_at,
    )


def decision_at(item, when, *, reviewer, action=Decision.Action.APPROVE):
    decision = Decision.objects.create(item=item, reviewer=reviewer, action=action)
    Decision.objects.filter(pk=decision.pk).update(created_at=when)
    return decision


def dashboard(client):
    response = client.get(reverse("manage_dashboard"))
    assert response.status_code == 200
    return response.content.decode()


def row(page, table_id, heading):
    """The figures (link text) of the row headed `heading` in the table `table_id`."""
    table = re.search(rf'<table id="{table_id}".*?</table>', page, re.S).group(0)
    cells = re.search(
        rf"<tr[^>]*>\s*<th scope=\"row\">{re.escape(heading)}</th>(.*?)</tr>", table, re.S
    )
    assert cells, f"no row {heading!r} in {table_id}"
    return [text for text in re.findall(r"<a [^>]*>([^<]*)</a>", cells.group(1))]


def test_it_counts_items_received_today_and_in_the_past_7_days(client, staff, moments):
    source = SourceFactory()
    for when in (moments["today"], moments["today"], moments["week"], moments["older"]):
        item_at(source, when)
    assert row(dashboard(client), "activity", "Items received") == ["2", "3"]


def test_it_counts_items_flagged_and_labels_given_by_when_it_happened(client, staff, moments):
    source = SourceFactory()
    for when in (moments["today"], moments["week"], moments["older"]):
        item = item_at(source, when)
        Item.objects.filter(pk=item.pk).update(flagged_at=when)
        label_for(item, labeled_at=when)
    unfinished = item_at(source, moments["today"])
    label_for(unfinished, status=Label.Status.FAILED, labeled_at=moments["today"])
    page = dashboard(client)
    assert row(page, "activity", "Items flagged") == ["1", "2"]
    assert row(page, "activity", "Labels given") == ["1", "2"]


def test_it_counts_decisions_by_reviewers_apart_from_automatic_ones_and_not_undos(
    client, staff, moments
):
    reviewer = UserFactory()
    item = ItemFactory(status=Item.Status.DECIDED)
    decided = decision_at(item, moments["today"], reviewer=reviewer)
    undo = decision_at(item, moments["today"], reviewer=reviewer, action=Decision.Action.UNDO)
    Decision.objects.filter(pk=undo.pk).update(undoes=decided)
    decision_at(item, moments["week"], reviewer=reviewer, action=Decision.Action.REMOVE)
    decision_at(item, moments["today"], reviewer=None)
    decision_at(item, moments["older"], reviewer=None)
    page = dashboard(client)
    assert row(page, "activity", "Decisions by reviewers") == ["1", "2"]
    assert row(page, "activity", "Automatic decisions") == ["1", "1"]


def test_it_shows_the_queue_of_each_source_with_its_oldest_item_and_sla_breaches(client, staff):
    busy, calm = SourceFactory(name="Busy"), SourceFactory(name="Calm", review_sla_minutes=60)
    ItemFactory.create_batch(3, source=busy)
    ItemFactory(source=busy, status=Item.Status.DECIDED)
    ItemFactory(source=calm, sla_breached=True)
    ItemFactory(source=calm, status=Item.Status.AUDIT)
    ItemFactory.create_batch(2, source=calm, status=Item.Status.REREVIEW)
    page = dashboard(client)
    # Waiting, oldest (linked to the queue too), past SLA, audit samples, re-reviews.
    assert row(page, "queue-by-source", "Busy")[0] == "3"
    assert row(page, "queue-by-source", "Busy")[2:] == ["0", "0", "0"]
    assert row(page, "queue-by-source", "Calm")[0] == "4"
    assert row(page, "queue-by-source", "Calm")[2:] == ["1", "1", "2"]
    assert "minute" in row(page, "queue-by-source", "Calm")[1]


def test_it_counts_label_failures_by_kind(client, staff):
    source = SourceFactory()
    kinds = [Label.Status.WAITING_KEY] * 2 + [Label.Status.FAILED] + [Label.Status.DONE]
    for status in kinds + [Label.Status.FAILED_TRANSIENT] * 3:
        label_for(ItemFactory(source=source), status=status)
    page = dashboard(client)
    assert row(page, "failures", "Waiting for the API key") == ["2"]
    assert row(page, "failures", "Refused (needs a person)") == ["1"]
    assert row(page, "failures", "Transient (will retry)") == ["3"]


def test_it_counts_callbacks_given_up_and_still_to_send(client, staff):
    source = SourceFactory()
    reviewer = UserFactory()
    states = ["failed", "failed", "pending", "sending", "delivered", "delivered"]
    for state in states:
        decision = Decision.objects.create(
            item=ItemFactory(source=source), reviewer=reviewer, action="approve"
        )
        CallbackDelivery.objects.create(decision=decision, source=source, state=state)
    page = dashboard(client)
    assert row(page, "callbacks", "Failed (given up)") == ["2"]
    assert row(page, "callbacks", "Still to send") == ["2"]


def test_it_shows_each_reviewers_throughput_and_exposure(client, staff, moments):
    ana, bo = UserFactory(username="ana"), UserFactory(username="bo")
    item = ItemFactory()
    for when in (moments["today"], moments["today"], moments["week"], moments["older"]):
        decision_at(item, when, reviewer=ana)
    MediaReveal.objects.create(reviewer=bo, item=item)
    page = dashboard(client)
    assert row(page, "reviewers", "ana") == ["2", "3", "0"]
    # bo decided nothing but saw media today: shown for exposure (its decisions unlinked).
    assert row(page, "reviewers", "bo") == ["1"]


def admin_links(page):
    """(url, figure) of every link to an admin list on the page."""
    pairs = re.findall(r'<a href="(/admin/[^"]+)">([^<]*)</a>', page)
    return [(unescape(url), text) for url, text in pairs]


def test_every_admin_link_lists_exactly_the_rows_its_figure_counts(client, staff, moments):
    source = SourceFactory(review_sla_minutes=30)
    reviewer = UserFactory()
    for when in (moments["today"], moments["week"], moments["older"]):
        item = item_at(source, when, sla_breached=True)
        Item.objects.filter(pk=item.pk).update(flagged_at=when)
        label_for(item, labeled_at=when)
        decision = decision_at(item, when, reviewer=reviewer)
        decision_at(item, when, reviewer=None)
        CallbackDelivery.objects.create(decision=decision, source=source, state="failed")
    label_for(ItemFactory(source=source), status=Label.Status.WAITING_KEY)
    ItemFactory(source=source, status=Item.Status.REREVIEW)
    links = admin_links(dashboard(client))
    assert len(links) >= 15
    for url, figure in links:
        response = client.get(url)
        assert response.status_code == 200, url
        # An admin list that ignored a filter would redirect with ?e=1 or count more rows.
        assert response.context["cl"].result_count == int(figure), url


def test_the_queue_links_show_the_source_s_queue(client, staff):
    source = SourceFactory(name="Forum")
    item = ItemFactory(source=source)
    ItemFactory()  # another source's
    page = dashboard(client)
    url = unescape(re.search(r'<a href="(/\?source=\d+)">1</a>', page).group(1))
    assert url == f"/?source={source.pk}"
    html = client.get(url).content.decode()
    assert f'data-item="{item.pk}"' in html and html.count('class="queue-row') == 1


def test_the_dashboard_is_refused_to_reviewers_who_are_not_staff(client):
    client.force_login(UserFactory())
    assert client.get(reverse("manage_dashboard")).status_code == 403


def test_the_dashboard_sends_anonymous_visitors_to_the_login(client):
    response = client.get(reverse("manage_dashboard"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


def test_staff_find_the_dashboard_in_the_navigation(client, staff):
    page = client.get(reverse("queue")).content.decode()
    assert f'href="{reverse("manage_dashboard")}"' in page


def queries_for_the_page(client):
    # The team queues' figures are kept 5 s per process: each load here counts them.
    queue_figures_cache.clear()
    with CaptureQueriesContext(connection) as queries:
        dashboard(client)
    return len(queries)


def test_the_page_costs_the_same_few_queries_however_many_sources_items_and_reviewers(
    client, staff, moments
):
    def populate():
        source = SourceFactory()
        reviewer = UserFactory()
        for when in moments.values():
            item = item_at(source, when)
            label_for(item, labeled_at=when)
            decision_at(item, when, reviewer=reviewer)
        MediaReveal.objects.create(reviewer=reviewer, item=item)

    populate()
    few = queries_for_the_page(client)
    for _ in range(4):
        populate()
    assert queries_for_the_page(client) == few
    # 19 of its own (one of them the hash banks' savings, two the team queues' list and
    # figures; the daily figures: days changed since counted, daily counts, four counts of
    # the rows of days not counted, reviewers' names, the queue's hourly snapshots), and 6
    # every page costs (the session, the user, the exposure header).
    assert few <= 25
