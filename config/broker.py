"""Kombu's filesystem transport with atomic writes: the embedded default's broker.

Kombu's own `_put` creates the message file and then writes it, while `_get` in another
process may move and read that file in between and find it empty (JSONDecodeError, and the
worker's consumer dies). Here a message is written beside its final name and renamed into
place, which is atomic on one filesystem: a reader sees a whole message or none.
"""

import os
import uuid
from time import monotonic

from kombu.transport import TRANSPORT_ALIASES, filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps


class Channel(filesystem.Channel):
    def _put(self, queue, payload, **kwargs):
        name = f"{int(round(monotonic() * 1000))}_{uuid.uuid4()}.{queue}.msg"
        final = os.path.join(self.data_folder_out, name)
        # "<name>.part" does not end in ".<queue>.msg", so readers skip it until the rename.
        partial = final + ".part"
        try:
            with open(partial, "wb") as handle:
                handle.write(str_to_bytes(dumps(payload)))
            os.replace(partial, final)
        except OSError as exc:
            raise filesystem.ChannelError(f"Cannot add file {final!r} to directory") from exc


class Transport(filesystem.Transport):
    Channel = Channel


# "filesystem://" in CELERY_BROKER_URL means this transport in every process of the project.
TRANSPORT_ALIASES["filesystem"] = "config.broker:Transport"
