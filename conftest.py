"""Fixtures shared by every test. Helpers live in testkit/ (and the apps' tests folders)."""

import json

import pytest

from config.celery import app as celery_app
from labelers import fetch, services, tasks
from labelers.tasks import label_sweep
from moderation import selectors
from moderation.tests.factories import SourceFactory
from testkit.fake_api import FakeLabelAPI
from testkit.signing import signed_headers

# Unit tests run tasks in-process; the end-to-end tests start real workers instead.
celery_app.conf.task_always_eager = True


@pytest.fixture(autouse=True)
def _forget_process_caches():
    """Per-process caches (key refusals, sources, routing) must not carry one test's state
    into the next: the database is rolled back between tests, and ids are reused."""

    def clear():
        fetch._refusal_seen.clear()
        services.routing_cache.clear()
        selectors.source_cache.clear()

    clear()
    yield
    clear()


@pytest.fixture(autouse=True)
def _empty_broker_queue(request, monkeypatch):
    """Unit tests run tasks eagerly, so the broker's labels queue is empty by construction;
    asking a shared broker (where end-to-end tests leave messages) would make them flaky."""
    if request.node.get_closest_marker("e2e") is None:
        monkeypatch.setattr(tasks, "labels_queued", lambda: 0)


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
    return SourceFactory()


@pytest.fixture
def dispatch(django_capture_on_commit_callbacks):
    """What beat does every second: enqueue due labels (tasks run eagerly in unit tests)."""

    def run():
        with django_capture_on_commit_callbacks(execute=True):
            return label_sweep()

    return run


@pytest.fixture
def post_webhook(client, dispatch):
    """POST a signed body to a source's webhook, then dispatch its labels as beat would."""

    def post(source, payload, *, raw: bytes | None = None, headers: dict | None = None, **kw):
        body = raw if raw is not None else json.dumps(payload).encode()
        sent = headers if headers is not None else signed_headers(source._secret, body, **kw)
        response = client.post(
            f"/webhooks/{source.slug}/", data=body, content_type="application/json", headers=sent
        )
        dispatch()
        return response

    return post
