"""Decisions made in the browser reach the product's receiver, signed, through real
processes: gunicorn, a Celery worker with beat, and a receiver on 127.0.0.1."""

import json
import re

import pytest
from standardwebhooks.webhooks import Webhook

from moderation.models import CallbackDelivery, Item
from moderation.tests.factories import SourceFactory, UserFactory
from moderation.tests.test_e2e import login
from testkit.processes import running_app, wait_for
from testkit.receiver import Receiver

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_a_decision_made_in_the_browser_reaches_the_receiver_signed_after_a_retry(
    fake_api_server, tmp_path
):
    receiver = Receiver(answers=[500, 200]).start()
    try:
        source = SourceFactory(callback_url=receiver.url)
        item = Item.objects.create(
            source=source,
            external_id="post-9",
            webhook_id="msg-9",
            content_text="I will find you",
            content_hash="h9",
            status=Item.Status.FLAGGED,
            violation_score=0.97,
            queue_score=0.97,
        )
        reviewer = UserFactory()
        with running_app(
            data_dir=tmp_path,
            api_url=fake_api_server.url,
            # Production settings (DATABASE_URL is set) with a receiver on 127.0.0.1.
            CALLBACK_ALLOW_HTTP="true",
            CALLBACK_ALLOW_PRIVATE="true",
            CALLBACK_SWEEP_INTERVAL="0.5",
            CALLBACK_RETRY_SCHEDULE="1,1",
        ) as (app_url, _):
            session = login(app_url, reviewer.username)
            page = session.get(f"{app_url}/items/{item.pk}/", timeout=10)
            csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
            threat = re.search(r'name="reason_remove" value="(\d+)"', page.text).group(1)
            seen = re.search(r'name="revision" value="(\d+)"', page.text).group(1)
            decided = session.post(
                f"{app_url}/items/{item.pk}/",
                data={
                    "action": "remove",
                    "reason_remove": threat,
                    "revision": seen,
                    "csrfmiddlewaretoken": csrf,
                },
                headers={"Referer": f"{app_url}/items/{item.pk}/"},
                timeout=10,
            )
            assert decided.status_code == 200
            wait_for(
                lambda: CallbackDelivery.objects.filter(state="delivered").exists(),
                timeout=60,
                what="the callback delivered by the worker",
            )
        delivery = CallbackDelivery.objects.get()
        assert delivery.attempts == 2
        first, second = receiver.received
        for request in receiver.received:
            payload = Webhook(source._secret).verify(request.body.decode(), request.headers)
            assert payload["data"]["item_id"] == item.pk
            assert payload["data"]["action"] == "remove"
        assert first.headers["webhook-id"] == second.headers["webhook-id"] == delivery.webhook_id
        assert json.loads(second.body)["data"]["reason"] == delivery.decision.reason != ""
    finally:
        receiver.stop()
