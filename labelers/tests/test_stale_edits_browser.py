"""Two admins in real browsers: A reads the draft, B edits it, A presses "Publish": nothing
is published, and A sees what B changed. Setup: testkit/browser.py."""

from labelers.criteria import labeler_draft_save
from labelers.models import LabelerVersion
from moderation.tests.factories import LabelerFactory, UserFactory
from testkit.browser import BROWSER_TEST_MARKS, accessibility_problems, open_page, shot

pytestmark = BROWSER_TEST_MARKS

REFUSED = "Failed to load resource: the server responded with a status of 409 (Conflict)"


def test_a_publish_from_a_page_another_admin_overtook_publishes_nothing(browser, live_server):
    labeler = LabelerFactory()
    labeler_draft_save(labeler=labeler, criteria_text="Label hate as 1")
    url = f"{live_server.url}/manage/labelers/{labeler.pk}/"
    admin_a = open_page(browser, live_server, UserFactory(is_staff=True, username="admin-a"))
    admin_b = open_page(browser, live_server, UserFactory(is_staff=True, username="admin-b"))
    admin_a.goto(url)
    admin_b.goto(url)

    admin_b.fill("#draft-form textarea[name=criteria_text]", "Label everything but hate as 1")
    admin_b.click("#draft-form button[type=submit]")
    admin_b.wait_for_selector("text=Draft v2 saved")

    admin_a.click("#publish-form button[type=submit]")
    admin_a.wait_for_selector("#stale-edit")
    said = admin_a.locator("#stale-edit").inner_text()
    assert "Nothing was published: the draft was edited by admin-b" in said
    assert "-Label hate as 1" in said and "+Label everything but hate as 1" in said
    assert labeler.current_version.number == 1
    shot(admin_a, "stale-publish-refused")
    assert accessibility_problems(admin_a) == []

    # Having read it, A publishes what the page now shows.
    admin_a.click("#publish-form button[type=submit]")
    admin_a.wait_for_selector("text=is published")
    current = labeler.current_version
    assert current.criteria_text == "Label everything but hate as 1"
    assert current.state == LabelerVersion.State.PUBLISHED
    # The refusal's own status (409 Conflict), which Chromium logs; nothing else.
    assert admin_a.problems == [REFUSED] and admin_b.problems == []
