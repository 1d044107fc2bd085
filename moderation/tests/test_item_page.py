"""The item page and what a reviewer does on it, as a team lead found them on day one
(issue 23): history in time order, metadata as JSON, golden items disguised on every visit,
notes with a limit, a stale tab of one's own, undo, escalating again."""

import re
from collections import Counter
from datetime import timedelta
from html import unescape

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from moderation.models import NOTE_MAX_LENGTH, Decision, Item, ItemRevision, ReviewerSettings
from moderation.services.decisions import decision_record
from moderation.services.golden import golden_item_mark
from moderation.tests.factories import ItemFactory, UserFactory, reason_id

pytestmark = pytest.mark.django_db


def decide(client, item, action="approve", **extra):
    data = {"action": action, "revision": item.revision, "decisions_seen": 0, **extra}
    if action in ("remove", "escalate") and f"reason_{action}" not in data:
        data[f"reason_{action}"] = reason_id(action)
    return client.post(f"/items/{item.pk}/", data)


def history(html: str) -> list[str]:
    start = html.index('id="history"')
    block = html[start : html.index("</ul>", start)]
    return [line.split("</li>")[0] for line in block.split("<li")[1:]]


def test_the_metadata_is_shown_as_pretty_printed_escaped_json(client, reviewer):
    item = ItemFactory(metadata={"author": "<b>ann</b>", "flags": [True, None], "n": 2})
    html = client.get(f"/items/{item.pk}/").content.decode()
    block = html[html.index('<pre id="metadata">') :].split("</pre>")[0]
    assert "<b>" not in block  # escaped
    text = unescape(block)
    assert "{'author'" not in text and "True" not in text
    assert '"author": "<b>ann</b>"' in text
    assert '"flags": [\n    true,\n    null\n  ]' in text


def test_the_history_is_in_time_order_an_edit_before_the_decision_made_after_it(client, reviewer):
    start = timezone.now() - timedelta(hours=2)
    item = ItemFactory(received_at=start, flagged_at=start + timedelta(minutes=1))
    ItemRevision.objects.create(
        item=item, number=1, webhook_id="w1", content_hash="a" * 64, received_at=start,
        status="flagged",
    )  # fmt: skip
    Item.objects.filter(pk=item.pk).update(
        received_at=start, revision=2, revised_at=start + timedelta(minutes=30)
    )
    item.refresh_from_db()
    decision_record(item=item, reviewer=UserFactory(username="early"), action="approve")
    Decision.objects.filter(item=item).update(created_at=start + timedelta(hours=1))
    events = history(client.get(f"/items/{item.pk}/").content.decode())
    assert ["received" in events[0], "flagged" in events[1]] == [True, True]
    assert "edited by the product: revision 2" in events[2]
    assert "Approve by early" in events[3]


def test_a_golden_item_reopened_after_the_answer_keeps_its_disguise(client, reviewer):
    gold = ItemFactory(content_text="a plain threat")
    decision_record(
        item=gold, reviewer=UserFactory(username="first-decider"), action="remove",
        reason_id=reason_id("remove"),
    )  # fmt: skip
    golden_item_mark(item=gold, expected_action="remove", created_by=None)
    ItemFactory()  # a golden item only stands in for real work
    ReviewerSettings.objects.create(user=reviewer, golden_share=1.0)
    assert client.get("/queue/next/").url == f"/items/{gold.pk}/"
    gold.refresh_from_db()
    decide(client, gold, "approve", decisions_seen="")
    for url in (f"/items/{gold.pk}/", f"/items/{gold.pk}/?status=mine", f"/items/{gold.pk}/?q=x"):
        html = client.get(url).content.decode()
        assert "first-decider" not in html, url
        assert "Remove by" not in html and "golden" not in html.lower(), url
        assert f"Approve by {reviewer.username}" in html, url


def test_a_note_over_the_limit_is_refused_in_the_form_and_on_the_server(client, reviewer):
    item = ItemFactory()
    html = client.get(f"/items/{item.pk}/").content.decode()
    assert f'maxlength="{NOTE_MAX_LENGTH}"' in html
    response = decide(client, item, "approve", note="x" * 111_000)
    page = client.get(response.url).content.decode()
    assert "Not decided: the note is 111,000 characters long; at most 5,000" in page
    assert not item.decisions.exists()
    decide(client, item, "approve", note="x" * NOTE_MAX_LENGTH)
    assert item.decisions.get().note == "x" * NOTE_MAX_LENGTH


def test_a_stale_tab_of_ones_own_says_so_rather_than_someone_else(client, reviewer):
    item = ItemFactory()
    decide(client, item, "approve")
    response = decide(client, item, "approve")  # the other tab, still showing no decision
    page = client.get(response.url).content.decode()
    assert "someone else" not in page
    assert f"you already decided item {item.pk} (approve) in another tab or window" in page


def test_after_an_undo_the_item_moved_on_to_is_released_at_once(client, reviewer):
    first, second = ItemFactory(violation_score=0.9), ItemFactory(violation_score=0.8)
    client.get("/queue/next/")
    decide(client, first, "approve", next=1)
    assert client.get("/queue/next/").url == f"/items/{second.pk}/"
    html = client.get(f"/items/{second.pk}/").content.decode()
    assert f'name="leaving" value="{second.pk}"' in html
    decision = first.decisions.get()
    client.post(f"/decisions/{decision.pk}/undo/", {"leaving": second.pk})
    second.refresh_from_db()
    first.refresh_from_db()
    assert second.claimed_by is None
    assert first.claimed_by == reviewer


def test_a_senior_escalating_again_keeps_the_first_note_and_is_not_handed_it_back(client):
    item, other = ItemFactory(violation_score=0.9), ItemFactory(violation_score=0.5)
    first_reviewer = UserFactory(username="first-reviewer")
    for it in (item, other):
        decision_record(
            item=it, reviewer=first_reviewer, action="escalate",
            reason_id=reason_id("escalate"), note="looks like a threat to me",
        )  # fmt: skip
    senior = UserFactory(senior=True)
    client.force_login(senior)
    assert (
        client.get("/escalated/next/", follow=True)
        .redirect_chain[-1][0]
        .startswith(f"/items/{item.pk}/")
    )
    item.refresh_from_db()
    response = client.post(
        f"/items/{item.pk}/?status=escalated",
        {"action": "escalate", "reason_escalate": reason_id("escalate", 1), "note": "not sure",
         "revision": item.revision, "decisions_seen": 1, "next": 1},
    )  # fmt: skip
    assert client.get(response.url).url.startswith(f"/items/{other.pk}/")
    other_senior = UserFactory(senior=True)
    client.force_login(other_senior)
    html = client.get(f"/items/{item.pk}/").content.decode()
    box = html[html.index('id="escalation"') :].split("</div>")[0]
    assert "first-reviewer" in box and "looks like a threat to me" in box
    assert senior.username in box and "not sure" in box


def test_the_item_page_reads_each_table_once_where_once_is_enough(client, reviewer):
    """The item page and its frame read the revisions, the reviewer's settings and today's
    media reveals and its bank matches once each (they were read twice: the history and the
    list of revisions, the page and the exposure prompt, the day's and the shift's reveals,
    the bank panel and whether a restricted bank matched)."""
    item = ItemFactory()
    ItemRevision.objects.create(
        item=item, number=1, webhook_id="w1", content_hash="a" * 64,
        received_at=item.received_at, status="flagged",
    )  # fmt: skip
    ReviewerSettings.objects.create(user=reviewer, exposure_budget_reveals=50)
    client.get(f"/items/{item.pk}/")
    with CaptureQueriesContext(connection) as queries:
        response = client.get(f"/items/{item.pk}/")
    assert response.status_code == 200
    tables = Counter(
        table
        for query in queries
        if query["sql"].lstrip().upper().startswith("SELECT")
        for table in re.findall(r'FROM "(\w+)"', query["sql"])
    )
    once = (
        "moderation_itemrevision",
        "moderation_reviewersettings",
        "moderation_mediareveal",
        "moderation_bankmatch",
    )
    assert {table: tables[table] for table in once} == dict.fromkeys(once, 1), tables
