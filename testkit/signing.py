"""Sign webhooks as an integrating product does."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from standardwebhooks.webhooks import Webhook


def signed_headers(secret: str, body: bytes, *, msg_id: str | None = None, timestamp=None) -> dict:
    """Headers as a product makes them with the standardwebhooks reference package."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    when = datetime.fromtimestamp(timestamp if timestamp is not None else time.time(), tz=UTC)
    signature = Webhook(secret).sign(msg_id, when, body.decode())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(when.timestamp())),
        "webhook-signature": signature,
    }
