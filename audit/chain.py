"""The hash chain: what a row's hash covers, and the check that every row is still there and
unchanged.

Each row's hash is sha256 over its canonical content (every field but the id and the hash,
as sorted compact JSON, times in UTC to the microsecond) and the previous row's hash. Changing
any field of a row breaks its own hash; removing a row breaks the next row's link (and the
`seq` numbers jump); removing the newest rows leaves the chain head pointing past the end.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from audit.models import AuditChainHead, AuditEntry

GENESIS = "0" * 64
HASHED_FIELDS = (
    "seq",
    "at",
    "actor_id",
    "actor_username",
    "ip",
    "action",
    "object_type",
    "object_id",
    "before",
    "after",
    "prev_hash",
)


def plain_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="microseconds")
    return value


def canonical(values: dict[str, Any]) -> bytes:
    content = {name: plain_value(values[name]) for name in HASHED_FIELDS}
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def entry_hash(values: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(values)).hexdigest()


@dataclass(frozen=True)
class Break:
    seq: int | None
    entry_id: int | None
    problem: str

    def __str__(self) -> str:
        where = f"row seq {self.seq} (id {self.entry_id})" if self.seq is not None else "chain"
        return f"{where}: {self.problem}"


def chain_verify(*, batch: int = 2000) -> tuple[int, Break | None]:
    """Walk the chain oldest first; (rows checked, the first break or None)."""
    expected_prev, expected_seq, checked = GENESIS, 1, 0
    rows = AuditEntry.objects.order_by("seq").values("id", "hash", *HASHED_FIELDS)
    for row in rows.iterator(chunk_size=batch):
        if row["seq"] != expected_seq:
            return checked, Break(
                row["seq"],
                row["id"],
                f"rows seq {expected_seq}..{row['seq'] - 1} before it were removed",
            )
        if row["prev_hash"] != expected_prev:
            return checked, Break(
                row["seq"], row["id"], "its link to the row before does not match (changed)"
            )
        if entry_hash(row) != row["hash"]:
            return checked, Break(row["seq"], row["id"], "its content does not match its hash")
        expected_prev, expected_seq = row["hash"], expected_seq + 1
        checked += 1
    head = AuditChainHead.objects.filter(pk=1).first()
    head_seq, head_hash = (head.seq, head.hash) if head else (0, GENESIS)
    if head_seq != checked or head_hash != expected_prev:
        return checked, Break(
            checked + 1 if head_seq > checked else None,
            None,
            f"the chain head says {head_seq} rows ending in {head_hash[:12]}…, "
            f"found {checked} ending in {expected_prev[:12]}… (newest rows removed or changed)",
        )
    return checked, None
