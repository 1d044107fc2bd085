"""The reviewer's pages in a real browser (Debian's Chromium driven by Playwright): the
keyboard-only flow, reasons by digit, undo, skip, escalation, two reviewers at once, media
revealed by key, the CSP, hostile text. Screenshots go to SCREENSHOT_DIR (CI prints it)."""

from moderation.models import Decision, Item
from moderation.tests.factories import ItemFactory, SourceFactory, UserFactory
from moderation.tests.media import png_data_url
from testkit.browser import BROWSER_TEST_MARKS, accessibility_problems, keys, open_page, shot

pytestmark = BROWSER_TEST_MARKS


def test_a_reviewer_decides_several_items_with_the_keyboard_alone(browser, live_server):
    source = SourceFactory()
    top, middle, low = (
        ItemFactory(source=source, violation_score=score, content_text=f"item at {score}")
        for score in (0.97, 0.8, 0.6)
    )
    reviewer = UserFactory()
    page = open_page(browser, live_server, reviewer)
    rows = page.locator("tr.queue-row").evaluate_all("rows => rows.map(r => r.dataset.item)")
    assert rows == [str(top.pk), str(middle.pk), str(low.pk)]
    shot(page, "queue")

    pressed = keys(page, "n")  # start reviewing: the top item, claimed
    page.wait_for_url(f"**/items/{top.pk}/")
    pressed += keys(page, "2", "r")  # reason 2 of remove, then remove: on to the next item
    page.wait_for_url(f"**/items/{middle.pk}/")
    pressed += keys(page, "a")  # approve needs no reason: one key
    page.wait_for_url(f"**/items/{low.pk}/")
    pressed += keys(page, "1", "e")  # escalate with reason 1
    page.wait_for_url(f"{live_server.url}/")  # the queue is empty
    assert pressed == 6
    decided = {d.item_id: (d.action, d.reason) for d in Decision.objects.all()}
    assert decided == {
        top.pk: ("remove", "Violence or threat"),
        middle.pk: ("approve", ""),
        low.pk: ("escalate", "Unsure: needs a senior"),
    }
    assert page.locator("tr.queue-row").count() == 0
    assert page.problems == []


def test_remove_without_a_reason_asks_for_one_and_decides_nothing(browser, live_server):
    item = ItemFactory()
    page = open_page(browser, live_server, UserFactory())
    page.goto(f"{live_server.url}/items/{item.pk}/")
    page.keyboard.press("r")
    assert "Pick a reason to remove first" in page.locator("#reason-hint").inner_text()
    assert not Decision.objects.exists()
    keys(page, "Escape", "3")
    page.keyboard.press("r")
    page.wait_for_url(f"{live_server.url}/")
    assert Decision.objects.get().reason == "Sexual content"


def test_undo_by_key_returns_the_item_and_keeps_both_records(browser, live_server):
    first, second = ItemFactory(violation_score=0.9), ItemFactory(violation_score=0.8)
    page = open_page(browser, live_server, UserFactory())
    keys(page, "n")
    page.wait_for_url(f"**/items/{first.pk}/")
    keys(page, "a")
    page.wait_for_url(f"**/items/{second.pk}/")
    assert page.locator("#undo button").get_attribute("aria-keyshortcuts") == "u"
    keys(page, "u")
    page.wait_for_url(f"**/items/{first.pk}/")
    first.refresh_from_db()
    assert first.status == "flagged"
    assert list(first.decisions.values_list("action", flat=True)) == ["approve", "undo"]
    assert page.locator("#history .decision-undo").count() == 1


def test_skip_hands_over_the_next_item_and_frees_the_skipped_one(browser, live_server):
    first, second = ItemFactory(violation_score=0.9), ItemFactory(violation_score=0.8)
    page = open_page(browser, live_server, UserFactory())
    keys(page, "n")
    page.wait_for_url(f"**/items/{first.pk}/")
    keys(page, "s")
    page.wait_for_url(f"**/items/{second.pk}/")
    first.refresh_from_db()
    assert first.claimed_by is None


def test_two_reviewers_at_once_never_hold_the_same_item(browser, live_server):
    items = [ItemFactory(violation_score=0.9 - n / 100) for n in range(2)]
    one = open_page(browser, live_server, UserFactory())
    two = open_page(browser, live_server, UserFactory())
    one.keyboard.press("n")
    one.wait_for_url("**/items/*/")
    two.keyboard.press("n")
    two.wait_for_url("**/items/*/")
    assert one.url != two.url
    held = Item.objects.filter(claimed_by__isnull=False).values_list("claimed_by", flat=True)
    assert len(set(held)) == 2 and {i.pk for i in items} == set(
        Item.objects.filter(claimed_by__isnull=False).values_list("pk", flat=True)
    )
    # The second reviewer opening the first's item sees it held and cannot decide it.
    two.goto(one.url)
    assert two.locator("#claimed-by-other").is_visible()
    two.keyboard.press("a")
    two.wait_for_load_state()
    assert not Decision.objects.exists()


def test_blurred_media_is_revealed_by_key_and_counted(browser, live_server, fake_api, post_webhook):
    source = SourceFactory()
    response = post_webhook(
        source,
        {
            "external_id": "pic",
            "content_text": "hate",
            "content_image": png_data_url(size=(64, 64)),
        },
    )
    item_id = response.json()["id"]
    reviewer = UserFactory()
    page = open_page(browser, live_server, reviewer)
    page.goto(f"{live_server.url}/items/{item_id}/")
    figure = page.locator("figure.media")
    assert "blurred" in figure.get_attribute("class")
    assert "blur" in page.locator("figure.media img").evaluate("i => getComputedStyle(i).filter")
    shot(page, "item-blurred-media")
    with page.expect_response(lambda r: r.url.endswith("/reveal/")) as revealed:
        page.keyboard.press("v")
    assert revealed.value.status == 204
    assert "blurred" not in figure.get_attribute("class")
    page.goto(f"{live_server.url}/me/settings/")
    assert "1" in page.locator("#exposure strong").inner_text()


def test_the_escalation_queue_refuses_a_reviewer_and_a_senior_decides(browser, live_server):
    item = ItemFactory(content_text="is this a threat?")
    reviewer = UserFactory()
    page = open_page(browser, live_server, reviewer)
    keys(page, "n")
    page.wait_for_url(f"**/items/{item.pk}/")
    keys(page, "4", "e")  # escalate: credible threat... reason 4 of escalate
    page.wait_for_url(f"{live_server.url}/")
    assert page.locator("#nav-escalated").count() == 0
    refused = page.goto(f"{live_server.url}/escalated/")
    assert refused.status == 403
    assert page.goto(f"{live_server.url}/items/{item.pk}/").status == 403

    senior = open_page(browser, live_server, UserFactory(senior=True))
    senior.click("#nav-escalated")
    assert senior.locator("tr.queue-row").count() == 1
    shot(senior, "escalated-queue")
    keys(senior, "n")
    senior.wait_for_url(f"**/items/{item.pk}/?status=escalated")
    assert reviewer.username in senior.locator("#escalation").inner_text()
    keys(senior, "1", "r")
    senior.wait_for_url(f"{live_server.url}/?status=escalated")
    item.refresh_from_db()
    assert item.status == "decided"


def test_pages_carry_a_csp_and_no_inline_script_and_hostile_text_stays_text(browser, live_server):
    hostile = ItemFactory(content_text="<img src=x onerror=alert(1)><script>alert(2)</script>")
    page = open_page(browser, live_server, UserFactory())
    for url in ("/", f"/items/{hostile.pk}/", "/me/decisions/", "/me/settings/"):
        response = page.goto(f"{live_server.url}{url}")
        assert "script-src 'self'" in response.headers["content-security-policy"]
        inline = page.locator("script:not([src])").count()
        handlers = page.evaluate(
            "() => [...document.querySelectorAll('*')].filter("
            "e => [...e.attributes].some(a => a.name.startsWith('on'))).length"
        )
        assert (inline, handlers) == (0, 0), url
    page.goto(f"{live_server.url}/items/{hostile.pk}/")
    assert "<script>alert(2)</script>" in page.locator("#content-text").inner_text()
    page.keyboard.press("?")
    assert page.locator("dialog#shortcuts").is_visible()
    listed = page.locator("#shortcut-list").inner_text()
    assert "Approve (a)" in listed and "Skip (s)" in listed and "1–9" in listed
    assert page.problems == []


def test_the_item_page_works_on_a_narrow_screen(browser, live_server):
    item = ItemFactory(content_text="short text")
    page = open_page(browser, live_server, UserFactory(), width=390, height=844)
    page.goto(f"{live_server.url}/items/{item.pk}/")
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    assert page.locator("button.action-approve").is_visible()
    shot(page, "item-narrow")


def test_filters_survive_next_decisions_and_skips(browser, live_server):
    wanted, other = SourceFactory(), SourceFactory()
    mine = [ItemFactory(source=wanted, violation_score=0.9 - n / 100) for n in range(3)]
    ItemFactory(source=other, violation_score=0.99)  # higher, but filtered out
    page = open_page(browser, live_server, UserFactory())
    page.select_option("select[name=source]", str(wanted.pk))
    page.click("#queue-filters button[type=submit]")
    page.wait_for_url(f"**/?*source={wanted.pk}*")
    keys(page, "n")
    page.wait_for_url(f"**/items/{mine[0].pk}/?*source={wanted.pk}*")
    keys(page, "a")
    page.wait_for_url(f"**/items/{mine[1].pk}/?*source={wanted.pk}*")
    keys(page, "s")
    page.wait_for_url(f"**/items/{mine[2].pk}/?*source={wanted.pk}*")
    keys(page, "q")
    page.wait_for_url(f"**/?*source={wanted.pk}*")
    assert page.locator("select[name=source]").input_value() == str(wanted.pk)


def test_a_digit_that_picks_nothing_says_so_and_decides_nothing(browser, live_server):
    """Approve has three reasons and remove seven: "8" picks nothing anywhere, and "5 a"
    is not an approval without a reason."""
    item = ItemFactory()
    page = open_page(browser, live_server, UserFactory())
    page.goto(f"{live_server.url}/items/{item.pk}/")
    keys(page, "8")
    assert page.locator("#reason-hint").inner_text() == "No reason has the key 8: nothing picked."
    keys(page, "5", "a")
    hint = page.locator("#reason-hint").inner_text()
    assert hint.startswith("Approve has no reason with the key 5")
    assert not Decision.objects.exists()
    assert accessibility_problems(page) == []
    keys(page, "Escape", "a")  # approve, explicitly without a reason
    page.wait_for_url(f"{live_server.url}/")
    assert Decision.objects.get().reason == ""
    assert page.problems == []
