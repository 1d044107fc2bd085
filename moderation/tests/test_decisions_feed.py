"""GET /api/decisions/: a product that missed callbacks catches up, page by page."""

import json
import threading
import time

import pytest
from django.db import connection, transaction

from moderation.models import Decision, Item
from moderation.selectors.decisions import decisions_page
from moderation.services.decisions import decision_record, decision_undo
from moderation.tests.factories import SourceFactory, UserFactory, decided_flagged_item

pytestmark = pytest.mark.django_db


@pytest.fixture
def reviewer():
    return UserFactory()


def decide(source, reviewer, n: int, action="remove") -> int:
    return decided_flagged_item(source, reviewer, n, action).pk


def feed(client, source, **params):
    response = client.get(
        "/api/decisions/", params, headers={"Authorization": f"Bearer {source._token}"}
    )
    assert response.status_code == 200, response.content
    return response.json()


def test_the_feed_lists_the_sources_decisions_oldest_first(client, reviewer):
    source, other = SourceFactory(), SourceFactory()
    mine = [decide(source, reviewer, 1), decide(source, reviewer, 2)]
    decide(other, reviewer, 3)
    page = feed(client, source)
    assert [d["decision_id"] for d in page["decisions"]] == mine
    assert page["decisions"][0]["external_id"] == "post-1"
    assert page["next"] == str(mine[-1]) and page["has_more"] is False


def test_the_feed_numbers_each_items_decisions_in_one_query(
    client, reviewer, django_assert_max_num_queries
):
    source = SourceFactory()
    decide(source, reviewer, 1)
    item = Item.objects.get(external_id="post-1")
    Item.objects.filter(pk=item.pk).update(status=Item.Status.FLAGGED)
    decision_record(item=item, reviewer=reviewer, action="approve", reason_id=None)
    decide(source, reviewer, 2)
    with django_assert_max_num_queries(3):
        events, _, _ = decisions_page(source=source, since=0, size=10)
    assert [(e["external_id"], e["sequence"]) for e in events] == [
        ("post-1", 1),
        ("post-1", 2),
        ("post-2", 1),
    ]


def test_the_feed_pages_by_cursor_and_never_repeats_or_skips(client, reviewer):
    source, other = SourceFactory(), SourceFactory()
    expected = [decide(source, reviewer, n) for n in range(5)]
    seen, cursor, added = [], "0", 0
    for _ in range(50):
        page = feed(client, source, since=cursor, limit=2)
        assert len(page["decisions"]) <= 2
        seen += [d["decision_id"] for d in page["decisions"]]
        cursor = page["next"]
        if added < 6:
            # Decisions keep coming between page reads, for this source and another.
            expected.append(decide(source, reviewer, 100 + added))
            decide(other, reviewer, 200 + added)
            added += 1
        elif not page["has_more"]:
            break
    assert seen == expected
    assert len(set(seen)) == len(seen) == 11


def test_an_empty_page_keeps_the_cursor_so_the_product_can_poll(client, reviewer):
    source = SourceFactory()
    first = decide(source, reviewer, 1)
    page = feed(client, source, since=first)
    assert page == {"decisions": [], "next": str(first), "has_more": False}
    later = decide(source, reviewer, 2)
    assert [d["decision_id"] for d in feed(client, source, since=page["next"])["decisions"]] == [
        later
    ]


def test_the_feed_needs_the_sources_token(client):
    assert client.get("/api/decisions/").status_code == 401
    bad = client.get("/api/decisions/", headers={"Authorization": "Bearer nope"})
    assert bad.status_code == 401


@pytest.mark.parametrize("params", [{"since": "abc"}, {"since": "-1"}, {"limit": "0"}])
def test_a_bad_cursor_or_limit_is_a_400(client, params):
    source = SourceFactory()
    response = client.get(
        "/api/decisions/", params, headers={"Authorization": f"Bearer {source._token}"}
    )
    assert response.status_code == 400
    assert response.json()["field"] in ("since", "limit")


@pytest.mark.django_db(transaction=True)
def test_a_decision_that_commits_late_is_not_skipped_by_a_reader_in_between():
    """Ids are handed out at insert, not at commit: without the source's lock, a decision
    inserted later but committed first would be read, and the cursor would pass over the
    earlier one for good."""
    source, reviewer = SourceFactory(), UserFactory()
    items = [
        Item.objects.create(
            source=source,
            external_id=f"late-{n}",
            webhook_id=f"late-{n}",
            content_hash=f"late-{n}",
            status=Item.Status.FLAGGED,
        )
        for n in (1, 2)
    ]
    first_inserted, release_first = threading.Event(), threading.Event()
    ids: dict[str, int] = {}
    errors: list[BaseException] = []

    def decide_first():
        try:
            with transaction.atomic():
                ids["first"] = decision_record(
                    item=items[0], reviewer=reviewer, action="approve"
                ).pk
                first_inserted.set()
                release_first.wait(10)
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    def decide_second():
        try:
            first_inserted.wait(10)
            ids["second"] = decision_record(item=items[1], reviewer=reviewer, action="approve").pk
        except BaseException as exc:
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=decide_first), threading.Thread(target=decide_second)]
    for thread in threads:
        thread.start()
    try:
        assert first_inserted.wait(10)
        time.sleep(0.5)  # the second decision is as far as it can get meanwhile
        seen, cursor, _ = decisions_page(source=source, since=0, size=10)
        assert seen == []  # nothing committed yet, so nothing to pass over
    finally:
        release_first.set()
        for thread in threads:
            thread.join(20)
    assert errors == []
    assert ids["first"] < ids["second"]
    rest, _, _ = decisions_page(source=source, since=cursor, size=10)
    assert [d["decision_id"] for d in rest] == [ids["first"], ids["second"]]


def test_the_feed_leaves_out_escalations_and_their_undos(client, reviewer):
    source = SourceFactory()
    escalation = Decision.objects.get(pk=decide(source, reviewer, 1, "escalate"))
    undo = decision_undo(decision=escalation, reviewer=reviewer)
    assert undo.action == "undo"
    removed = decide(source, reviewer, 2)
    page = feed(client, source)
    assert [d["decision_id"] for d in page["decisions"]] == [removed]
    assert "escalate" not in json.dumps(page)
