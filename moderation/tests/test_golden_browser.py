"""A golden item in a real browser: served by `n` like any waiting item, answered by keyboard
alone, recorded as a golden answer (never a Decision) and counted on the leads' Team page.
Browser setup and helpers: testkit/browser.py."""

from moderation.models import Decision, GoldenAnswer, ReviewerSettings
from moderation.services.decisions import decision_record
from moderation.services.golden import golden_item_mark
from moderation.tests.factories import ItemFactory, SourceFactory, UserFactory, reason_id
from testkit.browser import BROWSER_TEST_MARKS, keys, open_page, shot

pytestmark = BROWSER_TEST_MARKS


def test_a_golden_item_is_answered_by_keyboard_and_counted_for_the_lead(browser, live_server):
    source = SourceFactory()
    top, second = (
        ItemFactory(source=source, violation_score=score, content_text=f"ordinary at {score}")
        for score in (0.9, 0.7)
    )
    gold_item = ItemFactory(
        source=source, violation_score=0.95, content_text="I will find you and hurt you"
    )
    decider = UserFactory(username="earlier-decider")
    decision_record(
        item=gold_item, reviewer=decider, action="remove", reason_id=reason_id("remove")
    )
    golden_item_mark(
        item=gold_item, expected_action="remove", note="a plain threat", created_by=None
    )
    decisions_before = list(Decision.objects.order_by("pk").values())
    reviewer = UserFactory(username="rita")
    ReviewerSettings.objects.create(user=reviewer, golden_share=1.0)

    page = open_page(browser, live_server, reviewer)
    # The queue lists only the waiting items: the golden one is decided.
    rows = page.locator("tr.queue-row").evaluate_all("rows => rows.map(r => r.dataset.item)")
    assert rows == [str(top.pk), str(second.pk)]

    pressed = keys(page, "n")
    page.wait_for_url(f"**/items/{gold_item.pk}/")
    html = page.content()
    assert "golden" not in html.lower() and decider.username not in html
    assert "a plain threat" not in html
    assert page.locator("#history li[class^=decision-]").count() == 0
    assert "Flagged (in queue)" in page.locator(".item-head .status").inner_text()
    assert page.locator("#decide").is_visible() and page.locator("#claimed-by-other").count() == 0
    shot(page, "golden-item-served")

    pressed += keys(page, "2", "r")  # reason 2 of remove, then remove: on to the next item
    page.wait_for_url(f"**/items/{top.pk}/")
    assert pressed == 3
    assert page.locator("#undo").count() == 0  # nothing to undo after a golden answer
    given = GoldenAnswer.objects.get()
    assert (given.reviewer, given.action, given.reason, given.correct) == (
        reviewer,
        "remove",
        "Violence or threat",
        True,
    )
    assert list(Decision.objects.order_by("pk").values()) == decisions_before
    gold_item.refresh_from_db()
    assert (gold_item.status, gold_item.claimed_by) == ("decided", None)
    top.refresh_from_db()
    assert top.claimed_by == reviewer  # the ordinary item is claimed as usual
    assert page.problems == []

    lead = open_page(browser, live_server, UserFactory(username="lena", is_staff=True))
    lead.goto(f"{live_server.url}/team/")
    row = lead.locator('#golden tr[data-reviewer="rita"]')
    assert "100 % (1/1)" in row.locator(".golden-share").inner_text()
    assert "none" in row.locator("td").last.inner_text()  # no wrong answers
    shot(lead, "team-golden-agreement")
    assert lead.problems == []


def test_skipping_a_golden_item_by_key_moves_on_and_counts_for_nothing(browser, live_server):
    ordinary = ItemFactory(violation_score=0.8, content_text="an ordinary item")
    gold_item = ItemFactory(violation_score=0.9, content_text="a golden one")
    decision_record(item=gold_item, reviewer=UserFactory(), action="approve")
    golden_item_mark(item=gold_item, expected_action="approve", created_by=None)
    reviewer = UserFactory(username="sam")
    ReviewerSettings.objects.create(user=reviewer, golden_share=1.0)
    page = open_page(browser, live_server, reviewer)
    keys(page, "n")
    page.wait_for_url(f"**/items/{gold_item.pk}/")
    keys(page, "s")
    page.wait_for_url(f"**/items/{ordinary.pk}/")
    skipped = GoldenAnswer.objects.get()
    assert (skipped.action, skipped.answered_at, skipped.correct) == ("skip", None, None)
    # The reviewer comes back to it (loaded afresh, not from the browser's cache): still a
    # waiting item to them.
    page.goto(f"{live_server.url}/items/{gold_item.pk}/")
    assert page.locator("#decide").is_visible()
    assert page.locator("#history li[class^=decision-]").count() == 0

    lead = open_page(browser, live_server, UserFactory(is_staff=True))
    lead.goto(f"{live_server.url}/team/")
    row = lead.locator('#golden tr[data-reviewer="sam"]')
    assert row.locator(".golden-share").inner_text() == "– (0/0)"  # no answer to score
    assert row.locator(".golden-skipped").inner_text() == "1"
    shot(lead, "team-golden-skipped")
    assert page.problems == [] and lead.problems == []
