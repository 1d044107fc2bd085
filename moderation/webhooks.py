"""Standard Webhooks verification (standardwebhooks.com), with secret rotation.

Signed content is "{webhook-id}.{webhook-timestamp}.{raw body}", HMAC-SHA256 with the
base64-decoded part of the `whsec_` secret; the header may carry several space-separated
"v1,<base64>" signatures, and any one that matches any valid secret is enough.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import time
from collections.abc import Iterable, Mapping

from moderation.errors import IntakeError

REQUIRED_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")


def _secret_bytes(secret: str) -> bytes:
    return base64.b64decode(secret.removeprefix("whsec_"))


def sign(*, secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    to_sign = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(_secret_bytes(secret), to_sign, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def verify(
    *,
    headers: Mapping[str, str],
    body: bytes,
    secrets: Iterable[str],
    tolerance: int,
    now: float | None = None,
) -> tuple[str, int]:
    """Return (webhook_id, timestamp) or raise IntakeError (400 missing header, 401 refused)."""
    for name in REQUIRED_HEADERS:
        if not headers.get(name):
            raise IntakeError(400, f"missing header {name}", field=name)
    msg_id = headers["webhook-id"]
    if len(msg_id) > 255:
        raise IntakeError(400, "webhook-id is longer than 255 characters", field="webhook-id")
    try:
        raw_timestamp = headers["webhook-timestamp"]
        if len(raw_timestamp) > 20:  # an int beyond float range would overflow below
            raise ValueError
        timestamp = int(raw_timestamp)
    except ValueError:
        raise IntakeError(
            400, "webhook-timestamp must be integer seconds", field="webhook-timestamp"
        ) from None
    now = time.time() if now is None else now
    if abs(now - timestamp) > tolerance:
        raise IntakeError(
            401, "webhook-timestamp is too far from now (replay?)", field="webhook-timestamp"
        )
    to_sign = f"{msg_id}.{timestamp}.".encode() + body
    offered = []
    for part in headers["webhook-signature"].split():
        version, _, signature = part.partition(",")
        if version != "v1":
            continue
        try:
            offered.append(base64.b64decode(signature, validate=True))
        except (binascii.Error, ValueError):
            continue
    for secret in secrets:
        expected = hmac.new(_secret_bytes(secret), to_sign, hashlib.sha256).digest()
        # Check every offered signature in constant time; do not stop at the first mismatch.
        if any([hmac.compare_digest(expected, sig) for sig in offered]):
            return msg_id, timestamp
    raise IntakeError(401, "no valid signature", field="webhook-signature")
