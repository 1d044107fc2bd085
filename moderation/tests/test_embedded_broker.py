import threading

from kombu import Connection


def test_the_embedded_broker_never_hands_out_a_half_written_message(tmp_path):
    folder = tmp_path / "queue"
    folder.mkdir()
    options = {"data_folder_in": str(folder), "data_folder_out": str(folder), "polling_interval": 0}
    sent, received, errors = 400, [], []

    def produce():
        with Connection("filesystem://", transport_options=options) as conn:
            queue = conn.SimpleQueue("q")
            for n in range(sent):
                queue.put({"n": n, "pad": "x" * 4096})

    def consume():
        with Connection("filesystem://", transport_options=options) as conn:
            queue = conn.SimpleQueue("q")
            while len(received) < sent:
                try:
                    message = queue.get(timeout=10)
                except queue.Empty:
                    errors.append("timed out")
                    return
                except Exception as exc:  # a half-written file surfaces as a decode error
                    errors.append(repr(exc))
                    return
                received.append(message.payload["n"])
                message.ack()

    threads = [threading.Thread(target=produce), threading.Thread(target=consume)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sorted(received) == list(range(sent))
