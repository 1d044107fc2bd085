import time
import uuid

import pytest
from standardwebhooks.webhooks import Webhook

from config.celery import app as celery_app
from labelers.tests.fake_api import FakeLabelAPI

# Unit tests run tasks in-process; the end-to-end tests start real workers instead.
celery_app.conf.task_always_eager = True


@pytest.fixture(autouse=True)
def _forget_process_caches():
    """Per-process caches (key refusals, sources, routing) must not carry one test's state
    into the next: the database is rolled back between tests, and ids are reused."""
    from labelers import services
    from moderation import selectors

    def clear():
        services._refusal_seen.clear()
        services.routing_cache.clear()
        selectors.source_cache.clear()

    clear()
    yield
    clear()


@pytest.fixture(scope="session")
def fake_api_server():
    server = FakeLabelAPI(key="test-key").start()
    yield server
    server.stop()


@pytest.fixture
def fake_api(fake_api_server, settings):
    fake_api_server.reset()
    settings.ZENTROPI_API_URL = fake_api_server.url
    settings.ZENTROPI_API_KEY = "test-key"
    settings.LABEL_READ_TIMEOUT = 2.0
    return fake_api_server


@pytest.fixture
def source(db):
    from moderation.tests.factories import SourceFactory

    return SourceFactory()


def signed_headers(secret: str, body: bytes, *, msg_id: str | None = None, timestamp=None) -> dict:
    """Headers as a product makes them with the standardwebhooks reference package."""
    from datetime import UTC, datetime

    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    when = datetime.fromtimestamp(timestamp if timestamp is not None else time.time(), tz=UTC)
    signature = Webhook(secret).sign(msg_id, when, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signature,
    }


@pytest.fixture
def dispatch(django_capture_on_commit_callbacks):
    """What beat does every second: enqueue due labels (tasks run eagerly in unit tests)."""
    from labelers.services import labels_sweep

    def run():
        with django_capture_on_commit_callbacks(execute=True):
            return labels_sweep()

    return run


@pytest.fixture
def post_webhook(client, dispatch):
    """POST a signed body to a source's webhook, then dispatch its labels as beat would."""

    def post(source, payload, *, raw: bytes | None = None, headers: dict | None = None, **kw):
        import json

        body = raw if raw is not None else json.dumps(payload).encode()
        sent = headers if headers is not None else signed_headers(source._secret, body, **kw)
        response = client.post(
            f"/webhooks/{source.slug}/", data=body, content_type="application/json", headers=sent
        )
        dispatch()
        return response

    return post
