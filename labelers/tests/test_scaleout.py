"""Scale-out, end to end: two gunicorn instances, two Celery workers and one beat on the same
PostgreSQL and Redis. Every item is labeled exactly once with the work split across both
workers; a worker killed with -9 mid-burst leaves nothing behind for longer than a minute
(before worker heartbeats, its running labels waited for their lease and its prefetched
messages for the stale timeout)."""

import os

import pytest
from django.db import connection

from testkit.processes import PrivateRedis
from testkit.scaleout import ScaleOut

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(
        not os.environ.get("CELERY_BROKER_URL", "").startswith("redis://"),
        reason="the production path: PostgreSQL + Redis (run with CELERY_BROKER_URL=redis://...)",
    ),
]


@pytest.fixture
def private_redis(tmp_path):
    redis = PrivateRedis(data_dir=tmp_path).start()
    yield redis
    redis.stop()


def test_two_webs_two_workers_label_each_item_once_and_survive_a_kill_9(
    fake_api_server, private_redis, tmp_path
):
    assert connection.vendor == "postgresql", "several processes need a real database"
    fake_api_server.reset()
    fake_api_server.configure(latency=0.1)
    with ScaleOut(
        folder=tmp_path, api=fake_api_server, concurrency=4, CELERY_BROKER_URL=private_redis.url
    ) as cluster:
        first = cluster.burst(200, timeout=120)
        assert first.statuses == {202: 200}
        assert first.by_web[0] == first.by_web[1] == 100
        assert first.labels_not_done == 0
        assert (first.api_calls, first.items_called_twice) == (200, 0), "each item once"
        assert len(first.by_worker) == 2 and min(first.by_worker.values()) >= 40, first.by_worker

        second = cluster.burst(200, kill_when_done=0.3, timeout=120)
        assert second.labels_not_done == 0
        assert second.recovered_seconds < 60, second
        # Only the calls in flight in the killed worker are made a second time.
        assert second.items_called_twice <= 2 * 4, second
