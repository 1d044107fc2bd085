"""What a reviewer sees and does on the item page, in a real browser: the hold on the item
counted down, the note field left with Esc (digits there are text), the exposure counter
following a reveal, an item held by someone else, and axe-core's check of these pages."""

from playwright.sync_api import expect

from moderation.models import Decision, DecisionReason
from moderation.services.claims import item_claim
from moderation.services.decisions import decision_record
from moderation.tests.factories import ItemFactory, UserFactory, reason_id
from moderation.tests.media import png_data_url
from testkit.browser import BROWSER_TEST_MARKS, keys, open_page, shot

try:
    from axe_playwright_python.sync_playwright import Axe
except ImportError:  # the accessibility tests bring it (requirements/dev.txt)
    Axe = None

pytestmark = BROWSER_TEST_MARKS


def serious_accessibility_problems(page) -> list[str]:
    if Axe is None:
        return []
    results = Axe().run(page).response
    return [
        f"{violation['id']}: {node['target']}"
        for violation in results["violations"]
        if violation["impact"] in ("serious", "critical")
        for node in violation["nodes"]
    ]


def test_the_item_page_keyboard_hold_and_exposure_in_a_browser(
    browser, live_server, settings, post_webhook, fake_api, source
):
    reviewer = UserFactory(senior=True)
    page = open_page(browser, live_server, reviewer)

    # The note: digits typed there are text, Esc leaves it and the keys work again.
    noted = ItemFactory(violation_score=0.99, content_text="evil\u202etxt.exe and k\u200bill")
    page.goto(f"{live_server.url}/items/{noted.pk}/")
    assert "⟨U+202E⟩" in page.locator("#content-text").inner_text()
    assert page.locator("#hidden-characters").is_visible()
    page.locator("#claim").wait_for()
    assert "You hold this item" in page.locator("#claim").inner_text()
    page.click("#note")
    page.keyboard.type("seen 12 times")
    assert page.locator("#decide input[type=radio]:checked").count() == 0
    keys(page, "Escape")
    assert page.evaluate("document.activeElement.id") != "note"
    assert serious_accessibility_problems(page) == []
    shot(page, "item-note-and-hold")
    keys(page, "2", "r")
    page.wait_for_url(lambda url: f"/items/{noted.pk}/" not in url)
    decision = Decision.objects.get(item=noted)
    second_remove = DecisionReason.objects.get(action="remove", key=2)
    assert (decision.action, decision.reason, decision.note) == (
        "remove",
        second_remove.name,
        "seen 12 times",
    )

    # The exposure counter follows a reveal at once.
    pictured = post_webhook(
        source,
        {"external_id": "pic", "content_text": "hate conf=0.9", "content_image": png_data_url()},
    ).json()["id"]
    page.goto(f"{live_server.url}/items/{pictured}/")
    assert page.locator("#exposure-today").inner_text() == "0 seen today"
    page.locator("#why-flagged").wait_for()
    keys(page, "v")
    expect(page.locator("#exposure-today")).to_have_text("1 seen today")

    # Held by someone else: who and until when, nothing to decide.
    held = ItemFactory(violation_score=0.5)
    assert item_claim(item=held, reviewer=UserFactory(username="hana"))
    page.goto(f"{live_server.url}/items/{held.pk}/")
    assert "hana" in page.locator("#claimed-by-other").inner_text()
    assert page.locator("#decide").count() == 0
    assert serious_accessibility_problems(page) == []

    # The escalated list: who, why, when.
    escalated = ItemFactory(violation_score=0.7)
    decision_record(
        item=escalated,
        reviewer=UserFactory(username="esme"),
        action="escalate",
        reason_id=reason_id("escalate"),
        note="looks real",
    )
    page.goto(f"{live_server.url}/escalated/")
    cell = page.locator(f'tr[data-item="{escalated.pk}"] td.escalation').inner_text()
    assert "esme" in cell and "looks real" in cell
    assert serious_accessibility_problems(page) == []

    # The hold counted down: a warning before it runs out, then a plain word that it did.
    settings.REVIEW_LEASE_SECONDS = 10
    short = ItemFactory(violation_score=0.4)
    page.goto(f"{live_server.url}/items/{short.pk}/")
    page.locator("#claim.warning .claim-warning").wait_for(state="visible", timeout=15_000)
    page.locator("#claim .claim-expired").wait_for(state="visible", timeout=15_000)
    assert page.problems == []
