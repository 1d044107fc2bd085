"""The reviewer's pages in a real browser (Debian's Chromium driven by Playwright)."""

import os
import shutil

import pytest
from django.db import connections
from playwright.sync_api import sync_playwright

from moderation.models import Decision, Item
from moderation.tests.factories import UserFactory
from moderation.tests.media import png_data_url

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM) and os.environ.get("CI", "").lower() not in ("true", "1"),
        reason="Chromium is not installed (apt-get install chromium); CI requires it",
    ),
]


@pytest.fixture
def browser_page(live_server):
    # Playwright's sync API runs an event loop in this thread; the ORM calls made by the test
    # around it are still plain synchronous ones.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        dialogs = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.dialogs = dialogs
        yield page
        # While Playwright's loop runs, Django keeps this thread's connections apart (asgiref
        # treats the thread as async): close the ones the test opened, or they outlive the
        # test and keep PostgreSQL from dropping the test database.
        connections.close_all()
        browser.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def test_a_reviewer_works_the_queue_with_the_keyboard(
    fake_api, post_webhook, source, live_server, browser_page
):
    page = browser_page
    reviewer = UserFactory()
    ids = {}
    for key, payload in {
        "low": {"content_text": "hate conf=0.6 <img src=x onerror=alert(1)>"},
        "top": {"content_text": "kill conf=0.95", "content_image": png_data_url(size=(64, 64))},
        "calm": {"content_text": "a kind word conf=0.99"},
    }.items():
        response = post_webhook(source, {"external_id": key, **payload})
        ids[key] = response.json()["id"]
    assert Item.objects.get(pk=ids["calm"]).status == "labeled"

    page.goto(f"{live_server.url}/")
    page.fill("input[name=username]", reviewer.username)
    page.fill("input[name=password]", "pw-for-tests")
    page.click("button[type=submit]")
    rows = page.locator("tr.queue-row").evaluate_all("rows => rows.map(r => r.dataset.item)")
    assert rows == [str(ids["top"]), str(ids["low"])]

    page.keyboard.press("n")  # start reviewing: the top item, claimed
    page.wait_for_url(f"**/items/{ids['top']}/")
    figure = page.locator("figure.media")
    assert "blurred" in figure.get_attribute("class")
    assert page.locator("figure.media img").evaluate("i => getComputedStyle(i).filter") != "none"
    figure.click()
    assert "blurred" not in figure.get_attribute("class")

    page.fill("#reason", "credible threat")
    page.locator("#reason").blur()
    page.keyboard.press("r")  # remove, then on to the next item
    page.wait_for_url(f"**/items/{ids['low']}/")
    decision = Decision.objects.get(item_id=ids["top"])
    assert (decision.action, decision.reason, decision.reviewer) == (
        "remove",
        "credible threat",
        reviewer,
    )
    # Hostile text is shown as text, never run.
    assert "<img src=x onerror=alert(1)>" in page.locator("#content-text").inner_text()
    page.keyboard.press("a")
    page.wait_for_url(f"{live_server.url}/")
    assert page.locator("tr.queue-row").count() == 0
    assert page.dialogs == []
