"""config/celery.py: the worker's wedge watchdog reads the broker's queue depth."""

from __future__ import annotations

import uuid

from django.conf import settings
from kombu import Exchange, Queue

from config import celery as celery_config


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
