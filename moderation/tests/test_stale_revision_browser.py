"""The blocker of issue 23 in a real browser: a post is edited (a signed webhook) while a
reviewer has it open; their decision, made by keyboard on the old text, is refused and the
new text shown in its place. Setup: testkit/browser.py."""

import json
import urllib.request

from labelers.tasks import label_sweep_task
from moderation.models import Decision, Item
from moderation.tests.factories import SourceFactory, UserFactory
from testkit.browser import BROWSER_TEST_MARKS, accessibility_problems, keys, open_page, shot
from testkit.signing import signed_headers

pytestmark = BROWSER_TEST_MARKS

REFUSED = "Failed to load resource: the server responded with a status of 409 (Conflict)"


def send(live_server, source, external_id: str, text: str) -> int:
    """The product sends a post over HTTP, signed; beat's dispatch then labels it."""
    body = json.dumps({"external_id": external_id, "content_text": text}).encode()
    request = urllib.request.Request(
        f"{live_server.url}/webhooks/{source.slug}/",
        data=body,
        headers={"Content-Type": "application/json", **signed_headers(source._secret, body)},
    )
    with urllib.request.urlopen(request) as response:
        item_id = json.load(response)["id"]
    label_sweep_task()
    return item_id


def test_an_approval_by_key_on_text_edited_meanwhile_is_refused_and_the_new_text_shown(
    browser, live_server, fake_api
):
    source = SourceFactory()
    item_id = send(live_server, source, "qa-edit-1", "I hate mondays")
    assert Item.objects.get(pk=item_id).status == Item.Status.FLAGGED
    page = open_page(browser, live_server, UserFactory())
    keys(page, "n")
    page.wait_for_url(f"**/items/{item_id}/")
    assert "I hate mondays" in page.locator("#content-text").inner_text()

    # Bait and switch: the author edits the post while the reviewer reads the harmless text.
    send(live_server, source, "qa-edit-1", "I hate you, and I know where you live")
    keys(page, "a")
    page.wait_for_selector(".messages .stale-revision")
    assert "This post was edited while you had it open" in page.locator(".messages").inner_text()
    assert "Your approval was not recorded" in page.locator(".messages").inner_text()
    assert page.locator("#content-text").inner_text() == "I hate you, and I know where you live"
    assert not Decision.objects.exists()
    shot(page, "stale-revision-refused")
    assert accessibility_problems(page) == []

    # The new revision is decided as usual, and the decision is about it.
    keys(page, "2", "r")
    page.wait_for_url(f"{live_server.url}/")
    decision = Decision.objects.get()
    assert (decision.revision, decision.action) == (2, "remove")
    # The refusal's own status (409 Conflict), which Chromium logs; nothing else.
    assert page.problems == [REFUSED]
