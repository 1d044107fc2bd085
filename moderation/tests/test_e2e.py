"""From a signed webhook to a reviewer's decision, through real processes:
gunicorn serving the app, a Celery worker (with beat) on the configured broker, and the
fake labeling API over HTTP."""

import json
import re
import uuid

import pytest
import requests
from standardwebhooks.webhooks import Webhook

from labelers.criteria import labeler_default, source_setup
from moderation.models import Item
from moderation.tests.factories import UserFactory
from testkit.processes import running_app, wait_for
from testkit.signing import hand_signed_headers

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def send(app_url, source, secret, payload):
    body = json.dumps(payload)
    # Signed by hand from the spec, not by the package the test then verifies with; the
    # reference package must accept it as a product's signature before the app sees it.
    headers = hand_signed_headers(secret, body.encode())
    assert Webhook(secret).verify(body, headers) == payload
    return requests.post(
        f"{app_url}/webhooks/{source.slug}/", data=body, headers=headers, timeout=10
    )


def login(app_url, username):
    session = requests.Session()
    page = session.get(f"{app_url}/accounts/login/", timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    response = session.post(
        f"{app_url}/accounts/login/",
        data={"username": username, "password": "pw-for-tests", "csrfmiddlewaretoken": token},
        headers={"Referer": f"{app_url}/accounts/login/"},
        timeout=10,
    )
    assert response.url.rstrip("/") == app_url, "login failed"
    return session


def test_a_webhook_ends_in_a_reviewers_decision(fake_api_server, tmp_path):
    fake_api_server.reset()
    source, secret, token = source_setup(name="Forum", slug=f"forum-{uuid.uuid4().hex[:6]}")
    assert source.labelers.get() == labeler_default()
    reviewer = UserFactory()
    api_headers = {"Authorization": f"Bearer {token}"}

    with running_app(data_dir=tmp_path, api_url=fake_api_server.url) as (app_url, _):
        texts = {
            "calm": "what a nice day",
            "mild": "I hate mondays conf=0.71",
            "worst": "I will kill you conf=0.98",
        }
        ids = {}
        for key, text in texts.items():
            response = send(app_url, source, secret, {"external_id": key, "content_text": text})
            assert response.status_code == 202, response.text
            ids[key] = response.json()["id"]
        # A body changed after it was signed is refused, and stores nothing.
        refused = requests.post(
            f"{app_url}/webhooks/{source.slug}/",
            data=json.dumps({"external_id": "forged", "content_text": "I will kill you"}),
            headers=hand_signed_headers(secret, b'{"external_id": "forged"}'),
            timeout=10,
        )
        assert refused.status_code == 401, refused.text

        def state(key):
            return requests.get(
                f"{app_url}/api/items/{ids[key]}/", headers=api_headers, timeout=10
            ).json()

        wait_for(
            lambda: all(state(k)["status"] in ("flagged", "labeled") for k in ids),
            timeout=60,
            what="labels from the worker",
        )
        assert state("calm")["status"] == "labeled"
        assert state("worst")["labels"][0]["confidence"] == 0.98

        session = login(app_url, reviewer.username)
        queue = session.get(f"{app_url}/", timeout=10).text
        worst_at = queue.index(f'data-item="{ids["worst"]}"')
        assert worst_at < queue.index(f'data-item="{ids["mild"]}"')
        assert f'data-item="{ids["calm"]}"' not in queue

        item_page = session.get(f"{app_url}/items/{ids['worst']}/", timeout=10)
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', item_page.text).group(1)
        threat = re.search(r'name="reason_remove" value="(\d+)"', item_page.text).group(1)
        seen = re.search(r'name="revision" value="(\d+)"', item_page.text).group(1)
        decided = session.post(
            f"{app_url}/items/{ids['worst']}/",
            data={
                "action": "remove",
                "reason_remove": threat,
                "revision": seen,
                "csrfmiddlewaretoken": csrf,
            },
            headers={"Referer": f"{app_url}/items/{ids['worst']}/"},
            timeout=10,
        )
        assert decided.status_code == 200
        assert f'data-item="{ids["worst"]}"' not in session.get(f"{app_url}/", timeout=10).text
        final = state("worst")
        assert final["status"] == "decided" and final["decision"]["action"] == "remove"
    assert len(fake_api_server.calls) == 3  # one paid call per item and labeler version
    assert not Item.objects.filter(external_id="forged").exists()
