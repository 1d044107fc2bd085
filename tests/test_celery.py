"""config/celery.py: the worker's wedge watchdog reads the broker's queue depth, and sees a
busy worker as busy under every pool (a real worker)."""

from __future__ import annotations

import time
import uuid

import pytest
from django.conf import settings
from kombu import Exchange, Queue

from config import celery as celery_config
from labelers.criteria import source_setup
from labelers.models import Label
from moderation.intake import IntakePayload
from moderation.services.items import item_ingest
from testkit.processes import app_env, start_worker, stop, wait_for


def test_the_wedge_watchdog_counts_the_messages_waiting_with_a_redis_key_prefix():
    """The watchdog and the dispatch sweep read the depth through one function: with
    REDIS_KEY_PREFIX set (every Redis test run sets one), Kombu's passive declare finds no
    queue and the watchdog, reading it that way, counted 0 and never fired."""
    if settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        assert settings.REDIS_KEY_PREFIX
    queue = f"wedge-{uuid.uuid4().hex[:8]}"
    target = Queue(queue, Exchange(queue), routing_key=queue)
    with celery_config.app.connection_for_write() as connection:
        producer = connection.Producer()
        for n in range(3):
            producer.publish(
                {"n": n}, exchange=target.exchange, routing_key=queue, declare=[target]
            )
        try:
            assert celery_config._messages_waiting([queue]) == 3
            assert celery_config._messages_waiting([queue, f"{queue}-empty"]) == 3
        finally:
            target.bind(connection.default_channel).delete()


WEDGED_SECONDS = 3


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
@pytest.mark.timeout(180)
def test_a_busy_prefork_worker_is_not_taken_for_wedged(fake_api_server, tmp_path):
    """Started the plain way (Celery's default prefork pool), a worker finishing a task every
    second while messages wait is busy, not wedged: task_prerun/postrun fire in its child
    processes, so the watchdog in the main process must see the work some other way."""
    fake = fake_api_server
    fake.reset()
    fake.configure(latency=1.0)
    source, _, _ = source_setup(name="Busy", slug="busy")
    for n in range(40):
        item_ingest(
            source=source,
            payload=IntakePayload(external_id=f"busy{n}", content_text=f"busy item {n}"),
            webhook_id=f"busy{n}",
        )
    env = app_env(data_dir=tmp_path, api_url=fake.url, WORKER_WEDGED_SECONDS=WEDGED_SECONDS)
    log = tmp_path / "worker.log"
    worker = start_worker(env, concurrency=2, pool="prefork", log=log)
    try:
        wait_for(lambda: Label.objects.filter(status="done").exists(), timeout=60, what="work")
        busy_from = time.monotonic()
        # Several times the threshold, the queue never empty (40 one-second calls, 2 at once).
        while time.monotonic() - busy_from < 4 * WEDGED_SECONDS:
            assert worker.poll() is None, log.read_text()
            time.sleep(0.5)
        assert Label.objects.exclude(status="done").exists()  # messages still waited
    finally:
        stop(worker)
    assert "stopped fetching" not in log.read_text()
