import os
import threading
import time

import pytest
import redis
from django.conf import settings

import labelers.throttle as module
from config.celery import app as celery_app
from labelers.throttle import FileState, RedisState, SlotAbandoned, Throttle


def redis_state():
    try:
        redis.Redis.from_url("redis://127.0.0.1:6379/14").ping()
    except redis.RedisError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    state = RedisState("redis://127.0.0.1:6379/14", prefix=f"test:{time.monotonic_ns()}")
    return state


@pytest.fixture(params=["file", "redis"])
def state(request, tmp_path):
    return FileState(tmp_path / "throttle.json") if request.param == "file" else redis_state()


def test_in_flight_calls_never_exceed_the_cap_across_threads(state):
    # Separate Throttle objects share only the state, as separate worker processes do.
    throttles = [Throttle(max_in_flight=3, per_second=0, state=state) for _ in range(12)]
    in_flight, peak, lock = 0, 0, threading.Lock()

    def call(throttle):
        nonlocal in_flight, peak
        with throttle.slot():
            with lock:
                in_flight += 1
                peak = max(peak, in_flight)
            time.sleep(0.2)  # long enough that the 12 threads surely overlap
            with lock:
                in_flight -= 1

    threads = [threading.Thread(target=call, args=(t,)) for t in throttles]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "a thread never got a slot"
    assert peak == 3


def test_calls_are_spaced_to_the_rate(state):
    throttle = Throttle(max_in_flight=0, per_second=20, state=state)
    stamps = []

    def call():
        with throttle.slot():
            stamps.append(time.monotonic())

    threads = [threading.Thread(target=call) for _ in range(10)]
    started = time.monotonic()  # before any reservation: a late first thread cannot shrink it
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in threads), "a thread never got a slot"
    stamps.sort()
    # 10 calls at 20/s: the last starts at least 9 intervals after the first reservation,
    # however late the first thread was scheduled (stamps[0] may lag it on a busy machine).
    assert stamps[-1] - started >= 9 * 0.05 * 0.99


def test_a_slot_held_by_a_dead_worker_expires(tmp_path, monkeypatch):
    state = FileState(tmp_path / "t.json")
    assert state.try_acquire("dead", 1)
    assert not state.try_acquire("alive", 1)
    monkeypatch.setattr(module, "SLOT_TTL_SECONDS", 0)
    assert state.try_acquire("alive", 1)


def test_a_wait_whose_claim_is_lost_ends_without_the_slot(tmp_path):
    state = FileState(tmp_path / "t.json")
    assert state.try_acquire("busy", 1)
    throttle = Throttle(max_in_flight=1, per_second=0, state=state)
    kept = []

    def keep():
        kept.append(1)
        return len(kept) < 3  # the third renewal finds the row taken by another attempt

    with pytest.raises(SlotAbandoned), throttle.slot(keep=keep, keep_every=0.01):
        raise AssertionError("no call after the claim was lost")
    assert len(kept) == 3
    state.release("busy")
    assert state.try_acquire("next", 1)  # the abandoned wait holds no slot


def test_shared_state_updates_from_many_threads_are_never_lost(state):
    # The breaker counts every call's outcome here, from every worker thread at once.
    def bump(counts):
        counts["n"] = counts.get("n", 0) + 1

    def worker():
        for _ in range(20):
            state.update("counter", bump)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert state.read("counter") == {"n": 160}


on_redis = pytest.mark.skipif(
    not settings.LABEL_THROTTLE_REDIS_URL, reason="a Redis run (CELERY_BROKER_URL=redis://...)"
)


@on_redis
def test_a_redis_run_keeps_the_breaker_and_the_caps_under_keys_of_its_own():
    # conftest gives each run its own prefix: two runs on one machine share its Redis.
    assert f"test-{os.getpid()}-" in settings.REDIS_KEY_PREFIX
    assert module.shared_state().prefix.startswith(settings.REDIS_KEY_PREFIX)


@on_redis
def test_a_redis_run_sends_its_messages_to_queues_of_its_own():
    name = f"probe-{time.monotonic_ns()}"
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    with celery_app.connection_for_write() as connection:
        queue = connection.SimpleQueue(name)
        try:
            queue.put({"probe": 1})
            assert client.exists(f"{settings.REDIS_KEY_PREFIX}{name}")
            assert not client.exists(name)
        finally:
            queue.clear()
            queue.close()
