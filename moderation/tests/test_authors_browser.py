"""Authors in a real browser (Debian's Chromium driven by Playwright): a reviewer removes an
author's items by keyboard and watches their strikes rise; a senior confirms the proposed
suspension on the author's page."""

from moderation.models import AccountAction, Author, CallbackDelivery
from moderation.tests.factories import ItemFactory, SourceFactory, UserFactory
from testkit.browser import BROWSER_TEST_MARKS, keys, open_page, shot

pytestmark = BROWSER_TEST_MARKS


def test_strikes_rise_by_keyboard_and_a_senior_confirms_the_suspension(browser, live_server):
    source = SourceFactory(
        callback_url="https://products.example/hook",
        account_thresholds=[{"strikes": 3, "action": "suspend", "days": 7}],
    )
    author = Author.objects.create(source=source, external_id="u-7", name="<b>Mallory</b>")
    items = [
        ItemFactory(source=source, author=author, violation_score=score, content_text=f"post {n}")
        for n, score in enumerate((0.99, 0.98, 0.97, 0.96))
    ]
    reviewer = UserFactory()
    page = open_page(browser, live_server, reviewer)
    keys(page, "n")
    for n, item in enumerate(items[:3]):
        page.wait_for_url(f"**/items/{item.pk}/")
        # The panel counts the strikes so far; the name is text, not markup.
        assert page.locator("#author-active-strikes").inner_text() == str(n)
        assert page.locator("#author-panel .author-name strong").inner_text() == "<b>Mallory</b>"
        keys(page, "1", "r")
    page.wait_for_url(f"**/items/{items[3].pk}/")
    assert page.locator("#author-active-strikes").inner_text() == "3"
    assert "1 account action proposed" in page.locator("#author-proposals").inner_text()
    shot(page, "author-panel")
    keys(page, "p")  # the author's page, one key
    page.wait_for_url(f"**/authors/{author.pk}/")
    assert page.locator("#timeline > li").count() >= 7  # 4 items, 3 strikes, the proposal
    assert page.problems == []

    senior = UserFactory(senior=True)
    page = open_page(browser, live_server, senior)
    page.goto(f"{live_server.url}/authors/{author.pk}/")
    proposal = page.locator("form.proposal")
    assert proposal.locator("select[name=action]").input_value() == "suspend"
    assert proposal.locator("input[name=days]").input_value() == "7"
    shot(page, "author-page")
    proposal.locator("input[name=note]").fill("three removals in a row")
    proposal.locator("button[value=confirm]").click()
    page.wait_for_url(f"**/authors/{author.pk}/")
    action = AccountAction.objects.get()
    assert (action.action, action.active_strikes, action.note) == (
        "suspend",
        3,
        "three removals in a row",
    )
    assert CallbackDelivery.objects.filter(account_action=action).exists()
    assert "account action: Suspend" in page.locator("#timeline").inner_text()
    assert page.problems == []
