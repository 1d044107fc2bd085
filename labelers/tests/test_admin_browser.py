"""The admins' quality loop in a real browser (Debian's Chromium driven by Playwright): edit
the criteria as a draft, shadow-run it against the fake labeling API over HTTP, read the
comparison, publish, open the quality page. The setup is testkit/browser.py's.
Screenshots go to SCREENSHOT_DIR (CI prints it)."""

from labelers.models import Label, LabelerVersion, ShadowLabel, ShadowRun
from moderation.models import Decision, Item
from moderation.tests.factories import ItemFactory, SourceFactory, UserFactory
from testkit.browser import BROWSER_TEST_MARKS, open_page, shot

pytestmark = BROWSER_TEST_MARKS

# The fake API flags texts with "hate"/"kill"; "[invert]" in the criteria flips its answer.
DRAFT = "Label hateful content\nbut read it backwards [invert]"


def open_admin_page(browser, live_server, user):
    return open_page(browser, live_server, user, height=900)


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
    page = open_admin_page(browser, live_server, admin)

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
