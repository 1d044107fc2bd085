"""The queue pages as a team lead found them on day one (issue 23): audit samples marked,
the escalated queue's own counts, filters that say when they are wrong, an empty "next"
that says what is really the case, and the team page counting like the dashboard."""

import ast
from pathlib import Path

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from moderation.models import Decision, Item, MediaReveal, ReviewerSettings
from moderation.selectors.queue import queue_figures_cache
from moderation.services.claims import item_claim
from moderation.services.decisions import decision_record, decision_undo
from moderation.services.reviewers import reviewer_settings_save
from moderation.tests.factories import ItemFactory, SourceFactory, UserFactory, reason_id

pytestmark = pytest.mark.django_db


def info(client, url) -> str:
    """The message a redirect left, as the next page shows it."""
    page = client.get(url, follow=True).content.decode()
    return page[page.index('class="messages"') :].split("</ul>")[0]


def test_audit_samples_are_marked_in_the_queue_with_how_they_are_placed(client, reviewer):
    ItemFactory(status=Item.Status.AUDIT, violation_score=0.05, queue_score=0.75)
    html = client.get("/").content.decode()
    assert 'class="tag tag-audit"' in html and "audit sample</span>" in html
    assert "as if it scored 0.75" in html


def test_the_escalated_queue_counts_escalated_items_per_source(client):
    source = SourceFactory()
    for _ in range(3):
        ItemFactory(source=source)
    escalated = ItemFactory(source=source)
    decision_record(
        item=escalated, reviewer=UserFactory(), action="escalate", reason_id=reason_id("escalate")
    )
    client.force_login(UserFactory(senior=True))
    html = client.get("/escalated/").content.decode()
    row = html[html.index(f'data-source="{source.pk}"') :].split("</tr>")[0]
    assert '<td class="sla-waiting">1</td>' in row
    queue_figures_cache.clear()
    html = client.get("/").content.decode()
    row = html[html.index(f'data-source="{source.pk}"') :].split("</tr>")[0]
    assert '<td class="sla-waiting">3</td>' in row


def test_invalid_filter_values_are_named_with_a_400(client, reviewer):
    response = client.get("/?score_min=2&received_from=yesterday")
    html = response.content.decode()
    assert response.status_code == 400
    assert "Score from must be a number from 0 to 1; “2” is not." in html
    assert "Received from must be a date (YYYY-MM-DD)" in html
    assert client.get("/?score_min=0.5").status_code == 200


def test_a_5000_character_search_answers_a_clear_400_and_the_form_caps_it(client, reviewer):
    response = client.get("/", {"q": "a" * 5000})
    assert response.status_code == 400
    assert "The search is 5,000 characters long; at most 255" in response.content.decode()
    assert 'name="q" value="" placeholder="external id or text" maxlength="255"' in (
        client.get("/").content.decode()
    )


def test_gunicorn_lets_a_long_search_reach_the_app():
    """Its default request line (4094 bytes) answers a 5,000-character search with a bare
    414 before the app can say anything."""
    tree = ast.parse(Path("gunicorn.conf.py").read_text())
    settings = {
        target.id: node.value
        for node in tree.body
        if isinstance(node, ast.Assign)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    assert ast.literal_eval(settings["limit_request_line"]) >= 8000


def test_next_says_when_the_waiting_items_are_held_by_someone_else(client, reviewer):
    item = ItemFactory()
    item_claim(item=item, reviewer=UserFactory())
    message = info(client, "/queue/next/")
    assert "The queue is empty" not in message
    assert "1 item is being reviewed by someone else right now" in message


def test_next_says_when_a_search_ran_out_while_items_wait_outside_it(client, reviewer):
    ItemFactory(content_text="nothing to see")
    message = info(client, "/queue/next/?q=zebra")
    assert "Nothing waits under these filters and search; 1 item waits in the whole queue" in (
        message
    )


def test_next_says_when_the_items_left_are_ones_you_skipped(client, reviewer):
    item = ItemFactory()
    client.get("/queue/next/")
    client.post(f"/items/{item.pk}/skip/")
    message = info(client, "/queue/next/")
    assert "1 item you skipped is not handed to you again this session" in message


def test_next_on_a_truly_empty_queue_says_nothing_waits(client, reviewer):
    assert "nothing is waiting for review" in info(client, "/queue/next/")


def test_the_team_page_counts_decisions_as_the_dashboard_does_without_undos(client):
    reviewer = UserFactory(username="dora")
    item = ItemFactory()
    decision = decision_record(item=item, reviewer=reviewer, action="approve")
    decision_undo(decision=decision, reviewer=reviewer)
    decision_record(item=item, reviewer=reviewer, action="approve")
    assert Decision.objects.filter(reviewer=reviewer).count() == 3
    client.force_login(UserFactory(is_staff=True))
    team = client.get("/team/").content.decode()
    assert "<tr><td>dora</td><td>2</td>" in team
    dashboard = client.get("/manage/").content.decode()
    row = dashboard[dashboard.index('<th scope="row">dora</th>') :].split("</tr>")[0]
    assert ">2</a></td>" in row


def test_the_break_prompt_says_revealed_and_counts_in_the_singular(client, reviewer):
    reviewer_settings_save(reviewer=reviewer, exposure_budget_reveals=1)
    MediaReveal.objects.create(reviewer=reviewer, item=ItemFactory())
    html = client.get("/me/settings/").content.decode()
    prompt = html[html.index('id="break-prompt"') :].split("<form")[0]
    assert "You have revealed media on 1 item this shift." in " ".join(prompt.split())
    assert "reviewed" not in prompt


def test_the_queue_page_reads_each_thing_once(client):
    """A reviewer's sources were read four times a page, and labeling's banner (four
    queries, the same for every reviewer) on every page: once a page, and once per process
    every few seconds."""
    mine, other = SourceFactory(), SourceFactory()
    for n in range(30):
        ItemFactory(source=mine if n % 2 else other)
    reviewer = UserFactory()
    ReviewerSettings.objects.create(user=reviewer).sources.set([mine])
    client.force_login(reviewer)
    with CaptureQueriesContext(connection) as first:
        assert client.get("/").status_code == 200
    with CaptureQueriesContext(connection) as second:
        html = client.get("/").content.decode()
    assert html.count('class="queue-row') == 15  # their source's items only

    def reads(queries, table):
        return sum(f'FROM "{table}"' in query["sql"] for query in queries.captured_queries)

    assert reads(first, "moderation_reviewersettings_sources") == 1
    assert reads(second, "moderation_reviewersettings_sources") == 1
    assert reads(first, "labelers_dispatchheartbeat") == 1
    assert reads(second, "labelers_dispatchheartbeat") == 0  # the banner, read a moment ago
    assert len(second.captured_queries) <= 14
