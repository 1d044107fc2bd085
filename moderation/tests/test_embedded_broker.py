import multiprocessing
import uuid

import pytest
from kombu import Connection

import lib.broker  # noqa: F401 - registers the atomic transport, as in every process

SENT = 400


def _options(tmp_path):
    return {
        "data_folder_in": str(tmp_path / "queue"),
        "data_folder_out": str(tmp_path / "queue"),
        "control_folder": str(tmp_path / "control"),
        "polling_interval": 0,
    }


def _produce(options, name):
    with Connection("filesystem://", transport_options=options) as conn:
        queue = conn.SimpleQueue(name)
        for n in range(SENT):
            queue.put({"n": n, "pad": "x" * 4096})


@pytest.mark.parametrize("attempt", range(3))
def test_the_embedded_broker_never_hands_out_a_half_written_file(tmp_path, attempt):
    # A producer process and this consumer each bind the queue as they start (racing on the
    # exchange table), then race on every message file, as web, beat and workers do.
    (tmp_path / "queue").mkdir()
    options = _options(tmp_path)
    received = []
    # Kombu keeps declared bindings in process-wide state: a fresh name per run keeps one
    # run's bindings from standing in for the next one's.
    name = f"q{uuid.uuid4().hex}"
    with Connection("filesystem://", transport_options=options) as conn:
        queue = conn.SimpleQueue(name)
        producer = multiprocessing.get_context("spawn").Process(
            target=_produce, args=(options, name)
        )
        producer.start()
        try:
            while len(received) < SENT:
                message = queue.get(timeout=20)  # a half-written file would raise a decode error
                received.append(message.payload["n"])
                message.ack()
            producer.join(timeout=20)
        finally:
            if producer.is_alive():  # the test failed (or timed out): do not leave it behind
                producer.kill()
                producer.join(timeout=10)
    assert producer.exitcode == 0
    assert sorted(received) == list(range(SENT))
