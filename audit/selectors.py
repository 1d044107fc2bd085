"""Reads of the audit log: the JSON Lines export."""

from __future__ import annotations

import json
from collections.abc import Iterator

from django.db.models import QuerySet

from audit.chain import HASHED_FIELDS, plain_value
from audit.models import AuditEntry

EXPORT_FIELDS = ("id", *HASHED_FIELDS, "hash")


def entries_jsonl(entries: QuerySet[AuditEntry], *, batch: int = 1000) -> Iterator[str]:
    """One JSON object per line, oldest first, read a batch at a time (streamed: the whole
    log never sits in memory). Each line carries prev_hash and hash, so an export can be
    checked against the chain offline."""
    for row in entries.order_by("seq").values(*EXPORT_FIELDS).iterator(chunk_size=batch):
        yield json.dumps({k: plain_value(v) for k, v in row.items()}, ensure_ascii=False) + "\n"
