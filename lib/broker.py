"""The broker: how many messages wait in a queue (`queue_depth`), and Kombu's filesystem
transport with atomic writes, the embedded default's broker.

Kombu's own `_put` creates the message file and then writes it, while `_get` in another
process may move and read that file in between and find it empty (JSONDecodeError, and the
worker's consumer dies). Here a message is written beside its final name and renamed into
place, which is atomic on one filesystem: a reader sees a whole message or none. The exchange
table has the same race between `_queue_bind` and `get_table`; readers retry there.
"""

import os
import time
import uuid
from time import monotonic

from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

PARTIAL_FOLDER = ".partial"


def queue_depth(connection, queue: str) -> int:
    """How many messages wait in the broker's `queue` (not those a worker has taken): the
    one read of a queue's depth, for the dispatch sweep (labelers.tasks.labels_queued) and
    the worker's wedge watchdog (config/celery.py). Raises when the broker is unreachable."""
    try:
        with connection.channel() as channel:
            if connection.transport.driver_type == "redis":
                # Kombu 5.7's passive declare looks for the queue without the
                # REDIS_KEY_PREFIX (global_keyprefix) and answers "no queue"; the channel's
                # own size (LLEN over the priority lists) applies the prefix, and is 0 for a
                # queue Redis forgot.
                return channel._size(queue)
            return channel.queue_declare(queue=queue, passive=True).message_count
    except connection.channel_errors:
        return 0  # Redis forgets a queue once it is empty: nothing waits there


def _write_atomic(final: str, data: bytes) -> None:
    # Partials live in a hidden folder beside the messages (same filesystem, so the rename is
    # atomic) under a name with neither the queue nor ".msg" in it: no kombu version, whether
    # it matches message files by suffix or by substring, can pick one up half-written.
    folder = os.path.join(os.path.dirname(final), PARTIAL_FOLDER)
    os.makedirs(folder, exist_ok=True)
    partial = os.path.join(folder, f"{uuid.uuid4().hex}.tmp")
    with open(partial, "wb") as handle:
        handle.write(data)
    os.replace(partial, final)


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        try:
            _write_atomic(final, str_to_bytes(dumps(payload)))
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot add file {final!r} to directory") from exc

    def get_table(self, exchange):
        # Kombu's _queue_bind creates the table file and only then locks and writes it, so a
        # reader can find it empty or partial for a moment: read again rather than fail.
        for _ in range(50):
            try:
                return super().get_table(exchange)
            except ValueError:
                time.sleep(0.01)
        return super().get_table(exchange)


class Transport(filesystem.Transport):
    Channel = Channel


# "filesystem://" in CELERY_BROKER_URL means this transport in every process of the project.
TRANSPORT_ALIASES["filesystem"] = "lib.broker:Transport"
