"""Many items (and their labels) written straight to the database, for tests and benchmarks
that need a backlog without sending thousands of webhooks."""

from __future__ import annotations

import hashlib

from labelers.models import Label, LabelerVersion
from moderation.models import Item, Source


def items_bulk(
    *,
    source: Source,
    count: int,
    prefix: str,
    text: str = "{prefix} item {n}",
    status: str = Item.Status.RECEIVED,
) -> list[Item]:
    """`count` items of `source`, ids and content distinct per prefix and number; `text` is
    formatted with prefix and n (the fake API decides from the text)."""
    return Item.objects.bulk_create(
        Item(
            source=source,
            external_id=f"{prefix}{n}",
            webhook_id=f"{prefix}{n}",
            content_text=text.format(prefix=prefix, n=n),
            content_hash=hashlib.sha256(f"{prefix}:{n}".encode()).hexdigest(),
            status=status,
        )
        for n in range(count)
    )


def labels_bulk(items: list[Item], *, version: LabelerVersion, **fields) -> list[Label]:
    """One label of `version` per item, with the item's content hash and `fields`."""
    return Label.objects.bulk_create(
        Label(item=item, labeler_version=version, content_hash=item.content_hash, **fields)
        for item in items
    )
