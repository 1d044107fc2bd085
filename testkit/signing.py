"""Sign webhooks as an integrating product does."""

from __future__ import annotations

import base64
import hashlib
import hmac
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


def sign_by_hand(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """A Standard Webhooks signature from the spec alone, with no webhook library: so that a
    test of verification does not check a signature against the code that made it.

    v1,base64(HMAC-SHA256(key=base64decode(secret minus "whsec_"), "{id}.{timestamp}.{body}"))
    """
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed_content = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed_content, hashlib.sha256).digest()).decode()


def hand_signed_headers(secret: str, body: bytes, *, msg_id: str | None = None) -> dict:
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    timestamp = int(time.time())
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign_by_hand(secret, msg_id, timestamp, body),
    }
