"""The author beside every item (the item page's panel, the queue's strike badge and author
filter), the author's page (timeline, deciding all open items) and the seniors' Accounts list."""

import importlib
import re
from datetime import timedelta

import pytest
from django.apps import apps
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from moderation import models
from moderation.models import (
    AccountAction,
    AccountActionProposal,
    Author,
    CallbackDelivery,
    Decision,
    Item,
    ReviewerSettings,
    Strike,
)
from moderation.selectors import authors as selectors_authors
from moderation.selectors.authors import author_timeline
from moderation.services import decisions as services_decisions
from moderation.services.authors import proposal_confirm
from moderation.services.decisions import decision_record
from moderation.tests.factories import ItemFactory, SourceFactory, UserFactory, reason_id

pytestmark = pytest.mark.django_db


@pytest.fixture
def senior(client):
    user = UserFactory(senior=True)
    client.force_login(user)
    return user


@pytest.fixture
def author(source):
    return Author.objects.create(
        source=source,
        external_id="u-1",
        name="<script>alert(1)</script>",
        account_created_at=timezone.now() - timedelta(days=400),
    )


def item_of(author, **fields) -> Item:
    return ItemFactory(source=author.source, author=author, flagged_at=timezone.now(), **fields)


def remove(item, user=None):
    return decision_record(
        item=item, reviewer=user or UserFactory(), action="remove", reason_id=reason_id("remove")
    )


# --- the item page's author panel -------------------------------------------------------------


def test_the_item_page_shows_the_author_panel_escaped(client, reviewer, author):
    remove(item_of(author))
    page = client.get(f"/items/{item_of(author).pk}/").content.decode()
    assert 'id="author-panel"' in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page and "<script>alert(1)" not in page
    assert 'id="author-items">2<' in page and 'id="author-removed">1<' in page
    assert 'id="author-active-strikes">1<' in page
    assert f'href="/authors/{author.pk}/"' in page and 'data-key="p"' in page
    assert "1\xa0year" in page  # the account's age


def test_an_item_without_author_has_no_panel(client, reviewer, source):
    page = client.get(f"/items/{ItemFactory(source=source).pk}/").content.decode()
    assert 'id="author-panel"' not in page


def item_page_queries(client, item) -> int:
    with CaptureQueriesContext(connection) as queries:
        assert client.get(f"/items/{item.pk}/").status_code == 200
    return len(queries)


def test_the_author_panel_costs_the_same_queries_whatever_the_history(client, reviewer, source):
    newcomer = Author.objects.create(source=source, external_id="new")
    veteran = Author.objects.create(source=source, external_id="old")
    senior = UserFactory(senior=True)
    for _ in range(9):
        remove(item_of(veteran))
    for proposal in AccountActionProposal.objects.filter(author=veteran):
        proposal_confirm(proposal=proposal, senior=senior)
    assert AccountAction.objects.filter(author=veteran).count() == 3
    once = Author.objects.create(source=source, external_id="once")
    remove(item_of(once))
    AccountAction.objects.create(
        author=once, source=source, action="warn", created_by=senior, active_strikes=1
    )
    first, second, third = item_of(newcomer), item_of(veteran), item_of(once)
    # Warm the per-process caches, and claim them (a renewal is what is measured).
    for item in (first, second, third):
        item_page_queries(client, item)
    # The panel is one query; an author with account actions, one more for them.
    assert item_page_queries(client, second) == item_page_queries(client, first) + 1
    assert item_page_queries(client, second) == item_page_queries(client, third)


# --- the queue: strike badge and author filter ----------------------------------------------------


def test_the_queue_row_shows_the_authors_strikes(client, reviewer, author, source):
    remove(item_of(author))
    remove(item_of(author))
    waiting = item_of(author)
    clean = ItemFactory(source=source)
    page = client.get("/").content.decode()
    row = page[page.index(f'data-item="{waiting.pk}"') :]
    assert "2 strikes" in row[: row.index("</tr>")]
    other = page[page.index(f'data-item="{clean.pk}"') :]
    assert "strike" not in other[: other.index("</tr>")]


def test_the_queue_filters_by_author(client, reviewer, author, source):
    mine = item_of(author)
    other = ItemFactory(source=source)
    page = client.get(f"/?author={author.pk}").content.decode()
    assert f'data-item="{mine.pk}"' in page and f'data-item="{other.pk}"' not in page
    assert 'id="author-filter"' in page


# --- the author's page ----------------------------------------------------------------


def test_the_authors_page_is_a_timeline_newest_first(client, reviewer, author):
    first = item_of(author)
    remove(first)
    second = item_of(author)
    page = client.get(f"/authors/{author.pk}/").content.decode()
    assert page.index(f'item <a href="/items/{second.pk}/"') < page.index("1 strike</strong>")
    assert page.index("1 strike</strong>") < page.index(f'item <a href="/items/{first.pk}/"')


def test_the_timeline_pages_by_keyset_without_gaps(author):
    for n in range(7):
        item = item_of(author)
        if n % 2:
            remove(item)
    everything, following = author_timeline(author, size=100)
    assert following is None and len(everything) == 11  # 7 items, 3 strikes, a proposal
    seen, cursor = [], None
    for _ in range(10):
        page, cursor = author_timeline(author, after=cursor, size=3)
        seen += [(e.kind, e.pk) for e in page]
        if cursor is None:
            break
    assert seen == [(e.kind, e.pk) for e in everything]
    keys = [e.key for e in everything]
    assert keys == sorted(keys, reverse=True)


def test_a_bad_timeline_cursor_shows_the_first_page(client, reviewer, author):
    item_of(author)
    assert client.get(f"/authors/{author.pk}/?after=nonsense").status_code == 200


def test_another_sources_author_is_not_found_for_a_restricted_reviewer(client, reviewer, author):
    settings_row = ReviewerSettings.objects.create(user=reviewer)
    settings_row.sources.set([SourceFactory()])
    assert client.get(f"/authors/{author.pk}/").status_code == 404


def test_a_senior_removes_all_open_items_each_with_its_own_decision(
    client, senior, author, settings
):
    author.source.callback_url = "https://products.example/hook"
    author.source.save()
    items = [item_of(author) for _ in range(3)]
    decided = item_of(author, status=Item.Status.DECIDED)
    page = client.get(f"/authors/{author.pk}/").content.decode()
    assert "Remove all 3 open items" in page
    assert f'name="seen" value="{",".join(f"{i.pk}:1" for i in items)}"' in page
    assert "Removed 3 items." in remove_all(client, author, page).content.decode()
    removals = Decision.objects.filter(item__in=items, action="remove")
    assert removals.count() == 3
    assert CallbackDelivery.objects.filter(decision__in=removals).count() == 3
    assert not Decision.objects.filter(item=decided).exists()
    assert Item.objects.filter(pk__in=[i.pk for i in items], status="decided").count() == 3


def remove_all(client, author, page: str):
    """Post the author page's "remove all" form as it was rendered in `page`."""
    seen = re.search(r'name="seen" value="([^"]*)"', page).group(1)
    expected = re.search(r'name="expected" value="(\d+)"', page).group(1)
    return client.post(
        f"/authors/{author.pk}/remove-open/",
        {"expected": expected, "seen": seen, "reason": reason_id("remove"), "confirm": "on"},
        follow=True,
    )


def test_removing_all_leaves_an_item_edited_since_the_page_was_shown(client, senior, author):
    items = [item_of(author) for _ in range(3)]
    page = client.get(f"/authors/{author.pk}/").content.decode()
    # The product edits the second item (its new text may be harmless) while the page is open.
    Item.objects.filter(pk=items[1].pk).update(revision=2, content_text="all fixed now")
    response = remove_all(client, author, page)
    html = response.content.decode()
    assert "Removed 2 items." in html
    assert f"Not removed: 1 item was edited since your page was shown (item {items[1].pk})" in html
    removed = set(Decision.objects.filter(action="remove").values_list("item_id", flat=True))
    assert removed == {items[0].pk, items[2].pk}
    assert Item.objects.get(pk=items[1].pk).status == Item.Status.FLAGGED


def test_removing_all_removes_nothing_when_the_open_items_changed_at_the_same_count(
    client, senior, author
):
    first, second = item_of(author), item_of(author)
    page = client.get(f"/authors/{author.pk}/").content.decode()
    decision_record(item=first, reviewer=UserFactory(), action="approve")
    arrived = item_of(author)  # still two open: the count alone would not notice
    response = remove_all(client, author, page)
    html = response.content.decode()
    assert "Nothing removed: 2 items are open now, not 2 (1 item arrived and 1 item was " in html
    assert not Decision.objects.filter(action="remove").exists()
    assert {second.pk, arrived.pk} == set(
        Item.objects.filter(status=Item.Status.FLAGGED).values_list("pk", flat=True)
    )


def test_removing_all_needs_the_count_still_right(client, senior, author):
    for _ in range(2):
        item_of(author)
    page = client.get(f"/authors/{author.pk}/").content.decode()
    item_of(author)
    html = remove_all(client, author, page).content.decode()
    assert "Nothing removed: 3 items are open now, not 2 (1 item arrived since" in html
    assert not Decision.objects.exists()


def test_an_author_with_more_open_items_than_a_batch_is_removed_a_batch_at_a_time(
    client, senior, author, monkeypatch
):
    # An author with 80,000 open items once made the page carry 80,000 id:revision pairs
    # (669 kB) and the removal 80,000 decisions in one request.
    for module in (models, selectors_authors, services_decisions):
        monkeypatch.setattr(module, "REMOVE_ALL_BATCH", 3)
    items = [item_of(author) for _ in range(5)]
    page = client.get(f"/authors/{author.pk}/").content.decode()
    assert "5 items are open: this removes the oldest 3" in page
    assert f'name="seen" value="{",".join(f"{i.pk}:1" for i in items[:3])}"' in page
    assert "Removed 3 items." in remove_all(client, author, page).content.decode()
    assert set(Decision.objects.values_list("item_id", flat=True)) == {i.pk for i in items[:3]}
    page = client.get(f"/authors/{author.pk}/").content.decode()
    assert "Remove all 2 open items" in page
    assert "Removed 2 items." in remove_all(client, author, page).content.decode()
    assert Item.objects.filter(status=Item.Status.DECIDED).count() == 5


def test_removing_all_is_for_seniors(client, reviewer, author):
    item_of(author)
    response = client.post(
        f"/authors/{author.pk}/remove-open/", {"expected": 1, "reason": reason_id("remove")}
    )
    assert response.status_code == 403 and not Decision.objects.exists()


# --- the seniors' Accounts list -------------------------------------------------------


def crossed(author) -> AccountActionProposal:
    for _ in range(3):
        remove(item_of(author))
    return AccountActionProposal.objects.get(author=author)


def test_seniors_see_proposals_and_confirm_one_with_a_change(client, senior, author):
    proposal = crossed(author)
    page = client.get("/account-actions/").content.decode()
    assert f'id="proposal-{proposal.pk}"' in page
    client.post(
        f"/account-actions/{proposal.pk}/",
        {"decision": "confirm", "action": "suspend", "days": "3", "note": "repeat"},
    )
    action = AccountAction.objects.get()
    assert (action.action, action.note, action.created_by) == ("suspend", "repeat", senior)
    assert f'id="proposal-{proposal.pk}"' not in client.get("/account-actions/").content.decode()
    assert (
        "account action: <strong>Suspend</strong>"
        in client.get(f"/authors/{author.pk}/").content.decode()
    )


def test_a_proposal_whose_strikes_lapsed_is_marked_and_confirmed_only_on_purpose(
    client, senior, author
):
    proposal = crossed(author)
    # The strikes behind it run out while it waits.
    Strike.objects.filter(author=author).update(created_at=timezone.now() - timedelta(days=365))
    page = client.get("/account-actions/").content.decode()
    assert f'id="proposal-{proposal.pk}-lapsed"' in page and "Active strikes now 0" in page
    assert 'name="lapsed_ok"' in page
    response = client.post(f"/account-actions/{proposal.pk}/", {"decision": "confirm"}, follow=True)
    assert "below the 3 that proposed it" in response.content.decode()
    assert not AccountAction.objects.exists()
    client.post(f"/account-actions/{proposal.pk}/", {"decision": "confirm", "lapsed_ok": "1"})
    assert AccountAction.objects.get().action == proposal.action


def test_a_senior_dismisses_a_proposal_with_a_note(client, senior, author):
    proposal = crossed(author)
    client.post(f"/account-actions/{proposal.pk}/", {"decision": "dismiss", "note": "context"})
    proposal.refresh_from_db()
    assert (proposal.status, proposal.note) == ("dismissed", "context")
    assert not AccountAction.objects.exists()


def test_the_accounts_list_is_for_seniors(client, reviewer, author):
    proposal = crossed(author)
    assert client.get("/account-actions/").status_code == 403
    assert (
        client.post(f"/account-actions/{proposal.pk}/", {"decision": "confirm"}).status_code == 403
    )
    assert not AccountAction.objects.exists()


# --- repeat offenders, for leads -------------------------------------------------------------


def test_leads_see_authors_by_active_strikes_or_open_items(client, author, source):
    quiet = Author.objects.create(source=source, external_id="quiet")
    for _ in range(2):
        remove(item_of(author))
    for _ in range(3):
        item_of(quiet)
    client.force_login(UserFactory(is_staff=True))
    by_strikes = client.get("/authors/").content.decode()
    assert by_strikes.index(f'data-author="{author.pk}"') < by_strikes.index(
        f'data-author="{quiet.pk}"'
    )
    by_open = client.get("/authors/?sort=open").content.decode()
    assert by_open.index(f'data-author="{quiet.pk}"') < by_open.index(f'data-author="{author.pk}"')


def test_the_authors_list_is_for_leads(client, reviewer):
    assert client.get("/authors/").status_code == 403


def test_the_removed_count_follows_the_decision_each_item_stands_on(author):
    """The panel and the API count an item as removed by the action it stands on: a
    removal counts, its undo does not, an approval after it does not, an edit does not."""
    kept, undone, edited = item_of(author), item_of(author), item_of(author)
    reviewer = UserFactory()
    remove(kept, reviewer)
    services_decisions.decision_undo(decision=remove(undone, reviewer), reviewer=reviewer)
    remove(edited, reviewer)
    Item.objects.filter(pk=edited.pk).update(revision=2, status=Item.Status.FLAGGED)
    approved = item_of(author)
    decision_record(item=approved, reviewer=reviewer, action="approve")
    assert selectors_authors.author_counts(author)["removed"] == 1
    assert selectors_authors.author_panel_for(author).removed.n == 1
    assert Item.objects.get(pk=kept.pk).decided_action == "remove"
    assert Item.objects.get(pk=undone.pk).decided_action == ""
    assert Item.objects.get(pk=approved.pk).decided_action == "approve"


def test_the_migration_fills_in_the_action_decided_items_stand_on(author):
    fill = importlib.import_module("moderation.migrations.0019_item_decided_action")
    removed, approved, waiting = item_of(author), item_of(author), item_of(author)
    remove(removed)
    decision_record(item=approved, reviewer=UserFactory(), action="approve")
    Item.objects.update(decided_action="")
    fill.fill_decided_action(apps, None)
    assert dict(Item.objects.values_list("pk", "decided_action")) == {
        removed.pk: "remove",
        approved.pk: "approve",
        waiting.pk: "",
    }


def test_the_panels_counts_stop_at_a_cap(client, reviewer, author, monkeypatch):
    monkeypatch.setattr("moderation.selectors.authors.PANEL_COUNT_CAP", 3)
    for _ in range(5):
        item_of(author)
    page = client.get(f"/items/{item_of(author).pk}/").content.decode()
    assert 'id="author-items">3+<' in page and 'id="author-flagged">3+<' in page
    assert 'id="author-removed">0<' in page


def test_the_panels_strikes_stop_at_a_cap_and_say_so(client, reviewer, author, monkeypatch):
    """An author with more standing strikes than the cap: the panel sums the latest cap + 1
    of them (one index range) and says it is at least that."""
    monkeypatch.setattr("moderation.selectors.authors.PANEL_COUNT_CAP", 3)
    for _ in range(5):
        remove(item_of(author))
    page = client.get(f"/items/{item_of(author).pk}/").content.decode()
    assert 'id="author-active-strikes">4+<' in page
    assert "4+ strikes</span>" in page
    monkeypatch.setattr("moderation.selectors.authors.PANEL_COUNT_CAP", 10)
    page = client.get(f"/items/{item_of(author).pk}/").content.decode()
    assert 'id="author-active-strikes">5<' in page
