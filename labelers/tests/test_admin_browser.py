"""The admins' quality loop in a real browser (Debian's Chromium driven by Playwright): edit
the criteria as a draft, shadow-run it against the fake labeling API over HTTP, read the
comparison, publish, open the quality page. The setup is moderation/tests/test_browser.py's.
Screenshots go to SCREENSHOT_DIR (CI prints it)."""

import os
import shutil
from pathlib import Path

import pytest
from django.conf import settings
from django.db import connections
from playwright.sync_api import sync_playwright

from labelers.models import Label, LabelerVersion, ShadowLabel, ShadowRun
from moderation.models import Decision, Item
from moderation.tests.factories import ItemFactory, SourceFactory, UserFactory

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
SCREENSHOT_DIR = Path(os.environ.get("SCREENSHOT_DIR", settings.DATA_DIR / "screenshots"))

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not os.path.exists(CHROMIUM) and os.environ.get("CI", "").lower() not in ("true", "1"),
        reason="Chromium is not installed (apt-get install chromium); CI requires it",
    ),
]

# The fake API flags texts with "hate"/"kill"; "[invert]" in the criteria flips its answer.
DRAFT = "Label hateful content\nbut read it backwards [invert]"


@pytest.fixture
def browser(live_server):
    # Playwright's sync API runs an event loop in this thread; the ORM calls made by the test
    # around it are still plain synchronous ones.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        # Close the connections this thread opened while Playwright's loop ran, or they
        # outlive the test and keep PostgreSQL from dropping the test database.
        connections.close_all()
        browser.close()
    os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)


def open_page(browser, live_server, user):
    """A logged-in page that records dialogs, CSP violations and console errors."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.problems = []
    page.on("dialog", lambda d: (page.problems.append(f"dialog {d.message}"), d.dismiss()))
    page.on("console", lambda m: m.type == "error" and page.problems.append(m.text))
    page.add_init_script(
        "document.addEventListener('securitypolicyviolation',"
        " e => console.error('CSP violation: ' + e.violatedDirective));"
    )
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", user.username)
    page.fill("input[name=password]", "pw-for-tests")
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    return page


def shot(page, name):
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOT_DIR / f"{name}.png"), full_page=True)


def labeled(source, text, label, *, status=Item.Status.LABELED):
    """An item the published version answered, as the labeling flow leaves it."""
    item = ItemFactory(source=source, content_text=text, status=status)
    Label.objects.create(
        item=item,
        labeler_version=source.labelers.get().current_version,
        status=Label.Status.DONE,
        label=label,
        confidence=0.9,
        content_hash=item.content_hash,
        model="cope-latest",
    )
    return item


def test_an_admin_drafts_criteria_shadow_runs_them_reads_the_comparison_and_publishes(
    browser, live_server, fake_api
):
    source = SourceFactory()
    labeler = source.labelers.get()
    hateful = labeled(source, "I hate you conf=0.9", "1", status=Item.Status.FLAGGED)
    removed = labeled(source, "kill them all conf=0.95", "1", status=Item.Status.DECIDED)
    Decision.objects.create(item=removed, action=Decision.Action.REMOVE)
    kind = labeled(source, "what a lovely day conf=0.8", "0")
    statuses = dict(Item.objects.values_list("id", "status"))
    admin = UserFactory(is_staff=True)
    page = open_page(browser, live_server, admin)

    page.goto(f"{live_server.url}/manage/labelers/{labeler.pk}/")
    page.fill("#draft-form textarea[name=criteria_text]", DRAFT)
    page.click("#draft-form button[type=submit]")
    page.wait_for_selector("#shadow-form")
    draft = labeler.versions.get(state=LabelerVersion.State.DRAFT)
    assert page.locator("#shadow-title").inner_text() == "Shadow-run the draft"

    page.fill("#shadow-form input[name=sample_size]", "10")
    page.click("#shadow-form button[type=submit]")
    run = ShadowRun.objects.get()
    page.wait_for_url(f"**/manage/shadow-runs/{run.pk}/")
    # Tasks run eagerly here; a worker would finish it while the page refreshes itself.
    page.wait_for_selector("#shadow-state[data-state=done]", timeout=20_000)
    assert page.locator("#shadow-progress").inner_text() == "3 / 3"
    assert page.locator("#shadow-flagged").inner_text().startswith("1")  # the draft inverts
    assert page.locator("#baseline-flagged").inner_text() == "2"
    assert "0 % of 3 items" in page.locator("#agreement-baseline").inner_text()
    rows = page.locator("tr.disagreement").evaluate_all("rows => rows.map(r => r.dataset.item)")
    assert sorted(rows) == sorted(str(i.pk) for i in (hateful, removed, kind))
    assert page.locator(f'tr.disagreement a[href="/items/{removed.pk}/"]').count() == 1
    shot(page, "shadow-run")
    assert [call["criteria_text"] for call in fake_api.calls] == [draft.criteria_text] * 3
    assert ShadowLabel.objects.filter(run=run, status="done").count() == 3
    assert dict(Item.objects.values_list("id", "status")) == statuses  # nothing moved

    page.click("text=← " + labeler.name)
    page.click("#publish-form button[type=submit]")
    page.wait_for_selector("text=is published")
    draft.refresh_from_db()
    assert draft.state == LabelerVersion.State.PUBLISHED
    assert labeler.current_version == draft

    page.click("text=Quality per version")
    page.wait_for_url(f"**/manage/labelers/{labeler.pk}/quality/")
    assert page.locator(f"#version-{draft.number}").count() == 1
    shot(page, "labeler-quality")
    assert page.problems == []
