"""Reports and appeals in a real browser (issue 26's proof): three users report an item its
labeler cleared, it tops the queue above an item reported once, a senior removes it by
keyboard and the product gets the removal with the three report ids and a statement of
reasons; the author appeals, the remover (a senior too) never sees the appeal, another
senior overturns it by key and the product gets appeal.decided. Everything the product
receives is verified with standardwebhooks. Setup: testkit/browser.py."""

import json
import urllib.request

from standardwebhooks.webhooks import Webhook

from labelers.tasks import label_sweep_task
from moderation.models import Appeal, Decision, Item
from moderation.tests.factories import SourceFactory, UserFactory
from testkit.browser import BROWSER_TEST_MARKS, accessibility_problems, keys, open_page, shot
from testkit.receiver import Receiver
from testkit.signing import signed_headers

pytestmark = BROWSER_TEST_MARKS


def post_signed(live_server, source, path: str, payload: dict) -> tuple[int, dict]:
    """POST a signed body to one of the source's webhooks as the product does."""
    body = json.dumps(payload).encode()
    request = urllib.request.Request(
        f"{live_server.url}/webhooks/{source.slug}/{path}",
        data=body,
        headers={"Content-Type": "application/json", **signed_headers(source._secret, body)},
    )
    with urllib.request.urlopen(request) as response:
        return response.status, json.load(response)


def received(receiver, source) -> dict[str, dict]:
    """What the product got so far, by webhook-id, each verified as a product would."""
    verify = Webhook(source._secret)
    return {
        request.headers["webhook-id"]: verify.verify(request.body.decode(), request.headers)
        for request in receiver.received
    }


def test_reported_by_three_removed_by_key_appealed_and_overturned_by_another_senior(
    browser, live_server, fake_api, settings
):
    settings.CALLBACK_ALLOW_HTTP = True
    settings.CALLBACK_ALLOW_PRIVATE = True
    receiver = Receiver().start()
    try:
        source = SourceFactory(callback_url=receiver.url)
        # Two items the labeler cleared (no flag word: label "0"), so not in the queue.
        ids = {}
        for external_id, text in (("post-1", "see you at the match"), ("post-2", "nice photo")):
            status, answer = post_signed(
                live_server,
                source,
                "",
                {"external_id": external_id, "content_text": text, "author": {"id": "u-1"}},
            )
            assert status == 202
            ids[external_id] = answer["id"]
        label_sweep_task()
        many, once = Item.objects.get(pk=ids["post-1"]), Item.objects.get(pk=ids["post-2"])
        assert many.status == once.status == Item.Status.LABELED
        assert many.queue_score is None and once.queue_score is None

        # Three users report post-1, one reports post-2.
        for n, (external_id, reporter) in enumerate(
            [("post-1", "u-11"), ("post-1", "u-12"), ("post-1", "u-13"), ("post-2", "u-14")],
            start=1,
        ):
            status, answer = post_signed(
                live_server,
                source,
                "reports/",
                {
                    "report_id": f"r{n}",
                    "external_id": external_id,
                    "reason": "harassment",
                    "reporter": {"id": reporter},
                },
            )
            assert (status, answer["item"], answer["status"]) == (202, ids[external_id], "reported")
        many.refresh_from_db()
        once.refresh_from_db()
        # Three new reporters: 1 - 0.75³; one: 0.25 (the README's formula).
        assert abs(many.report_score - (1 - 0.75**3)) < 1e-9
        assert abs(once.report_score - 0.25) < 1e-9

        # The remover is a senior: the appeal must still never reach them.
        remover = UserFactory(senior=True)
        page = open_page(browser, live_server, remover)
        rows = page.locator("tr.queue-row").evaluate_all("rows => rows.map(r => r.dataset.item)")
        assert rows == [str(many.pk), str(once.pk)]
        assert page.locator("tr.queue-row .tag-reported").count() == 2
        shot(page, "reported-queue")
        keys(page, "n")  # the top item, claimed
        page.wait_for_url(f"**/items/{many.pk}/")
        keys(page, "1", "r")  # reason 1 of remove, then remove: on to the next item
        page.wait_for_url(f"**/items/{once.pk}/")
        assert page.problems == []

        removal = Decision.objects.get(item=many)
        assert (removal.action, removal.reviewer) == ("remove", remover)
        event = received(receiver, source)[f"dec_{removal.pk}"]
        assert event["type"] == "decision.created"
        data = event["data"]
        assert (data["external_id"], data["action"]) == ("post-1", "remove")
        assert data["report_ids"] == ["r1", "r2", "r3"]
        statement = data["statement_of_reasons"]
        assert statement["reason"] == removal.reason != ""
        assert [r["report_id"] for r in statement["facts"][0]["reports"]] == ["r1", "r2", "r3"]
        assert statement["facts"][0]["flagged_by"] == []  # users saw it, not the labeler
        assert statement["automated_detection"] is False
        assert statement["automated_decision"] is False
        assert statement["appeal"]["until"] and "/appeals/" in statement["appeal"]["how"]

        # The author appeals through the product.
        status, answer = post_signed(
            live_server,
            source,
            "appeals/",
            {"appeal_id": "ap-1", "external_id": "post-1", "statement": "It was a <b>quote</b>."},
        )
        appeal = Appeal.objects.get()
        assert (status, answer) == (202, {"id": appeal.pk, "status": "pending"})

        # The remover, senior as they are, is not given it.
        page.goto(f"{live_server.url}/appeals/")
        assert page.locator("tr[data-appeal]").count() == 0
        assert "No appeal is waiting for you." in page.locator("#appeals").inner_text()
        refused = page.goto(f"{live_server.url}/appeals/{appeal.pk}/")
        assert refused.status == 403
        assert "appeal-decide" not in page.content()

        # Another senior overturns it on the appeal page, by key.
        senior = UserFactory(senior=True)
        page = open_page(browser, live_server, senior)
        page.goto(f"{live_server.url}/appeals/")
        assert page.locator("tr[data-appeal]").evaluate_all(
            "rows => rows.map(r => r.dataset.appeal)"
        ) == [str(appeal.pk)]
        assert accessibility_problems(page) == []
        shot(page, "appeals")
        page.locator(f"tr[data-appeal='{appeal.pk}'] a").click()
        page.wait_for_url(f"**/appeals/{appeal.pk}/")
        assert page.locator("#statement").inner_text() == "It was a <b>quote</b>."
        assert page.locator("#appealed-reason").inner_text() == removal.reason
        assert remover.get_username() in page.locator("#appealed").inner_text()
        assert accessibility_problems(page) == []
        shot(page, "appeal")
        keys(page, "o")
        page.wait_for_url(f"{live_server.url}/appeals/")
        assert "ap-1: overturned" in page.locator(".messages").inner_text()
        assert page.locator("tr[data-appeal]").count() == 0
        assert page.problems == []

        appeal.refresh_from_db()
        assert (appeal.status, appeal.decided_by) == (Appeal.Status.OVERTURNED, senior)
        restored = appeal.result_decision
        assert (restored.item_id, restored.action) == (many.pk, "approve")
        events = received(receiver, source)
        assert events[f"dec_{restored.pk}"]["data"]["action"] == "approve"
        decided = events[f"appeal_{appeal.pk}"]
        assert decided["type"] == "appeal.decided"
        assert decided["data"] == {
            "appeal_id": "ap-1",
            "outcome": "overturned",
            "decision_id": restored.pk,
            "appealed_decision_id": removal.pk,
            "external_id": "post-1",
            "author_id": "u-1",
            "decided_at": appeal.decided_at.isoformat(),
        }
    finally:
        receiver.stop()
