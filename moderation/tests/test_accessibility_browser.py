"""Every page in a real browser, checked by axe-core: no serious or critical violation on
the reviewer's pages (queue, item, undo bar, escalated, my decisions, settings), the leads'
and admins' pages (team, golden, dashboard, labelers), the login and every error page; and
long text from products wraps instead of widening a page (issue 23). Two tests, one
Chromium start each: browser setup and helpers are testkit/browser.py's."""

from django.test import RequestFactory

from labelers.criteria import labeler_draft_save
from labelers.shadow import shadow_run_create
from moderation.models import GoldenAnswer, Item, ReviewerSettings
from moderation.services.decisions import decision_record
from moderation.services.golden import golden_answer_record, golden_answer_serve, golden_item_mark
from moderation.tests.factories import ItemFactory, SourceFactory, UserFactory, reason_id
from moderation.views import errors
from testkit.browser import BROWSER_TEST_MARKS, accessibility_problems, keys, open_page, shot

pytestmark = BROWSER_TEST_MARKS

UNBROKEN = "x" * 2_000  # a post without spaces
LONG_ID = "i" * 255  # the longest external id a product may send


def checked(page, url_or_none, *, status=None, live_server=None) -> dict:
    """Open the page (or check the one shown) and return its axe problems and overflow."""
    if url_or_none is not None:
        response = page.goto(f"{live_server.url}{url_or_none}")
        if status is not None:
            assert response.status == status, (url_or_none, response.status)
    return {
        "axe": accessibility_problems(page),
        "overflow": page.evaluate("() => document.documentElement.scrollWidth - innerWidth"),
    }


def rendered(handler, user) -> str:
    request = RequestFactory().get("/")
    request.user = user
    request.session = {}
    return handler(request).content.decode()


def test_the_reviewers_pages_and_every_error_page_pass_axe(browser, live_server):
    source = SourceFactory(name="Forum")
    ItemFactory(source=source, content_text=UNBROKEN, violation_score=0.99)
    long_id = ItemFactory(source=source, external_id=LONG_ID, violation_score=0.95,
                          metadata={"author": "ann", "thread": [1, 2]})  # fmt: skip
    ItemFactory(source=source, status=Item.Status.AUDIT, violation_score=0.1, queue_score=0.75)
    reviewer = UserFactory(username="rita")
    own_escalation = ItemFactory(source=source, violation_score=0.2)
    decision_record(
        item=own_escalation, reviewer=reviewer, action="escalate",
        reason_id=reason_id("escalate"), note="not sure",
    )  # fmt: skip
    page = open_page(browser, live_server, reviewer)
    found = {}
    found["queue"] = checked(page, "/", live_server=live_server)
    found["item"] = checked(page, f"/items/{long_id.pk}/", live_server=live_server)
    keys(page, "a")  # approve: the next page carries the undo bar
    page.wait_for_selector("#undo")
    undo = page.locator("#undo button")
    colours = undo.evaluate("b => [getComputedStyle(b).color, getComputedStyle(b).backgroundColor]")
    assert colours[0] != colours[1]
    found["undo bar"] = checked(page, None)
    shot(page, "undo-bar")
    found["my decisions"] = checked(page, "/me/decisions/", live_server=live_server)
    found["settings"] = checked(page, "/me/settings/", live_server=live_server)
    found["400 filters"] = checked(page, "/?score_min=2", status=400, live_server=live_server)
    found["403"] = checked(
        page, f"/items/{own_escalation.pk}/", status=403, live_server=live_server
    )
    assert "You escalated this item" in page.locator("#error-why").inner_text()
    assert page.locator("nav[aria-label=Main]").is_visible()
    shot(page, "error-403-own-escalation")
    found["404"] = checked(page, "/items/987654/", status=404, live_server=live_server)
    for name, handler in (("400", errors.bad_request), ("500", errors.server_error)):
        page.goto(f"{live_server.url}/me/settings/")
        page.set_content(rendered(handler, reviewer))
        found[name] = checked(page, None)
    page.goto(f"{live_server.url}/me/settings/")
    page.context.clear_cookies(name="csrftoken")
    page.click("#settings-form button[type=submit]")
    page.wait_for_selector("#error-page")
    found["csrf"] = checked(page, None)

    senior = open_page(browser, live_server, UserFactory(senior=True))
    found["escalated"] = checked(senior, "/escalated/", live_server=live_server)
    found["escalated item"] = checked(
        senior, f"/items/{own_escalation.pk}/", live_server=live_server
    )
    login = browser.new_page()
    found["login"] = checked(login, "/accounts/login/", live_server=live_server)

    assert {name: f["axe"] for name, f in found.items() if f["axe"]} == {}
    assert {name: f["overflow"] for name, f in found.items() if f["overflow"] > 0} == {}
    # The error pages' own statuses are logged by the browser as failed loads: expected.
    unexpected = [p for p in page.problems if not p.startswith("Failed to load resource")]
    assert unexpected == [] and senior.problems == []


def test_the_leads_and_admins_pages_pass_axe(browser, live_server):
    source = SourceFactory(name="Forum")
    labeler = source.labelers.get()
    labeler_draft_save(labeler=labeler, criteria_text="Label hateful content, drafted")
    gold = ItemFactory(source=source, content_text="a plain threat")
    decision_record(item=gold, reviewer=UserFactory(), action="remove",
                    reason_id=reason_id("remove"))  # fmt: skip
    golden = golden_item_mark(item=gold, expected_action="remove", created_by=None)
    ordinary = ItemFactory(source=source)  # a golden item only stands in for real work
    wrong = UserFactory(username="walt")
    answer = golden_answer_serve(golden=golden, reviewer=wrong)
    golden_answer_record(answer=answer, reviewer=wrong, action="approve")
    run = shadow_run_create(
        version=labeler.current_version, source=source, sample_size=5, decided_only=False
    )
    admin = UserFactory(username="lena", is_staff=True)
    page = open_page(browser, live_server, admin, height=900)
    urls = [
        "/team/",
        f"/team/{wrong.pk}/golden-wrong/",
        f"/items/{gold.pk}/",  # a decided item, with the golden form
        "/manage/",
        "/manage/labelers/",
        "/manage/labelers/new/",
        f"/manage/labelers/{labeler.pk}/",
        f"/manage/labelers/{labeler.pk}/quality/",
        f"/manage/labelers/{labeler.pk}/rereview/",
        "/manage/relabel-runs/",
    ]
    found = {url: checked(page, url, status=200, live_server=live_server) for url in urls}
    # The run is still queued: its page reloads itself (app.js, every 3 s) ...
    page.goto(f"{live_server.url}/manage/shadow-runs/{run.pk}/")
    with page.expect_navigation(timeout=10_000):
        pass
    page.click("#auto-refresh-stop")  # ... until the reader stops it
    assert "refreshing stopped" in page.locator("#auto-refresh").inner_text()
    found["shadow run"] = checked(page, None)

    # The golden item as served to a reviewer, then reopened after the answer.
    rita = UserFactory(username="rita")
    ReviewerSettings.objects.create(user=rita, golden_share=1.0)
    served = open_page(browser, live_server, rita)
    keys(served, "n")
    served.wait_for_url(f"**/items/{gold.pk}/")
    found["golden served"] = checked(served, None)
    keys(served, "a")
    served.wait_for_url(f"**/items/{ordinary.pk}/")
    assert GoldenAnswer.objects.filter(reviewer=rita, answered_at__isnull=False).exists()
    found["golden reopened"] = checked(served, f"/items/{gold.pk}/", live_server=live_server)

    assert {name: f["axe"] for name, f in found.items() if f["axe"]} == {}
    assert {name: f["overflow"] for name, f in found.items() if f["overflow"] > 0} == {}
    assert page.problems == [] and served.problems == []
