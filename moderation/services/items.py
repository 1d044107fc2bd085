"""Intake: a new item, a repeat of one, or a new revision of an edited one; media stored once."""

from __future__ import annotations

import hashlib
import json
from contextlib import nullcontext

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.db import IntegrityError, connection, transaction
from django.db.models import Q
from django.utils import timezone

from lib.prepared import PreparedStatement
from moderation.errors import StaleRevision
from moderation.intake import IntakePayload
from moderation.models import (
    LIVE,
    Author,
    Item,
    ItemRevision,
    Source,
)
from moderation.services.authors import (
    AUTHOR_LOOKUP,
    author_for_intake,
    author_from_row,
    author_refresh,
)
from moderation.services.figures import item_figures_changed

EXTENSIONS = {
    "image/png": "png",
    "image/jpeg": "jpg",
    "image/gif": "gif",
    "image/webp": "webp",
    "video/mp4": "mp4",
    "video/quicktime": "mov",
    "video/webm": "webm",
}


def _store_media(raw: bytes, mime: str, folder: str) -> str:
    """Content-addressed file: the same bytes are stored once, whoever sends them."""
    digest = hashlib.sha256(raw).hexdigest()
    name = f"{folder}/{digest[:2]}/{digest}.{EXTENSIONS[mime]}"
    if not default_storage.exists(name):
        name = default_storage.save(name, ContentFile(raw))
    return name


def _existing(source: Source, *, external_id: str, webhook_id: str) -> Item | None:
    """The item a request repeats or edits: by webhook-id first (a replay, even of an earlier
    revision), else by external_id."""
    by_webhook = (
        Item.objects.filter(source=source)
        .filter(Q(webhook_id=webhook_id) | Q(revisions__webhook_id=webhook_id))
        .first()
    )
    return by_webhook or Item.objects.filter(LIVE, source=source, external_id=external_id).first()


def _is_repeat(item: Item, *, payload: IntakePayload, webhook_id: str) -> bool:
    return (
        item.webhook_id == webhook_id
        or item.content_hash == payload.content_hash
        or item.external_id != payload.external_id  # a webhook-id reused for another item
        or item.revisions.filter(webhook_id=webhook_id).exists()
    )


def item_ingest(*, source: Source, payload: IntakePayload, webhook_id: str) -> tuple[Item, bool]:
    """Store a new item, a new revision of an edited one, or return the one already stored;
    the flag says whether new content was accepted (a repeat stores nothing).

    Uniqueness is enforced by the database (source+external_id, source+webhook_id): the insert
    is tried first and a conflict answers with the stored item, so two identical requests
    racing each other still make one row. The same external_id with other content under a new
    webhook-id is an edit: a new revision, labeled again.
    """
    existing = None
    if payload.image or payload.video:
        # Media is written before the row; look first so a repeat writes nothing.
        existing = _existing(source, external_id=payload.external_id, webhook_id=webhook_id)
        if existing is not None and _is_repeat(existing, payload=payload, webhook_id=webhook_id):
            return existing, False
    media = _store_payload_media(payload)
    author: Author | None = None
    if existing is None:
        # One INSERT in autocommit: the item row alone is complete ("received"); beat's
        # dispatch routes it to labelers in batches, so intake does the least work it can.
        # Inside a caller's transaction, a savepoint keeps a conflict from breaking it.
        guard = transaction.atomic() if connection.in_atomic_block else nullcontext()
        try:
            with guard:
                item, author = _item_insert_known_author(
                    source=source, payload=payload, webhook_id=webhook_id, media=media
                )
                if item is None:
                    if payload.author is not None:
                        author = author_for_intake(
                            source=source,
                            author=payload.author,
                            missed=_known_author_insert_applies(payload),
                        )
                    item = _item_insert(
                        source=source,
                        payload=payload,
                        webhook_id=webhook_id,
                        media=media,
                        author=author,
                    )
            if author is not None and payload.author is not None:
                author_refresh(author=author, payload=payload.author)
            return item, True
        except IntegrityError:
            existing = _existing(source, external_id=payload.external_id, webhook_id=webhook_id)
            if existing is None:
                raise
    if payload.author is not None:
        author = author_for_intake(source=source, author=payload.author)
    if _is_repeat(existing, payload=payload, webhook_id=webhook_id):
        return existing, False
    revised, accepted = _item_revise(
        existing, payload=payload, webhook_id=webhook_id, media=media, author=author
    )
    if accepted and author is not None and payload.author is not None:
        author_refresh(author=author, payload=payload.author)
    return revised, accepted


# The new item's row as one INSERT written out: intake's hottest statement. The ORM's
# create() spent ~1 ms of CPU compiling and adapting the item's 24 columns per webhook (over
# half of intake's own cost, bench/intake.py); the columns a new item always starts with are
# constants here. tests/test_intake_insert.py checks that this names every column of Item
# and stores what create() would.
_INSERT_COLUMNS = (
    "source_id",
    "external_id",
    "webhook_id",
    "content_text",
    "content_image",
    "content_image_type",
    "content_video",
    "content_video_type",
    "content_hash",
    "metadata",
    "author_id",
    "received_at",
    "waiting_since",
    "language",
)
_INSERT_CONSTANTS = {
    "revision": "1",
    "revised_at": "NULL",
    "status": f"'{Item.Status.RECEIVED.value}'",
    "violation_score": "NULL",
    "queue_score": "NULL",
    "queue_key": "NULL",
    "sla_breached": "false",
    "report_score": "NULL",
    "flagged_at": "NULL",
    "verdict_versions": "'[]'",
    "decided_at": "NULL",
    "decided_action": "''",
    "claimed_by_id": "NULL",
    "claim_expires_at": "NULL",
    "legal_hold": "false",
    "legal_hold_reason": "''",
    "purged_at": "NULL",
    "erased_at": "NULL",
    "queue_id": "NULL",
}
# Built once from the constants above, never from input: every value is a parameter.
_INSERT_SQL = "INSERT INTO {table} ({columns}) VALUES ({values}) RETURNING id".format(  # noqa: S608
    table=Item._meta.db_table,
    columns=", ".join([*_INSERT_COLUMNS, *_INSERT_CONSTANTS]),
    values=", ".join(
        [f"%({name})s" for name in _INSERT_COLUMNS] + list(_INSERT_CONSTANTS.values())
    ),
)
# The parameters' types, for PREPARE (lib/prepared.py): each webhook EXECUTEs a statement
# its database session planned once.
_INSERT_TYPES = {
    "source_id": "bigint",
    "author_id": "bigint",
    "metadata": "jsonb",
    "received_at": "timestamptz",
    "waiting_since": "timestamptz",
}
_INSERT = PreparedStatement(
    "moderation_item_insert",
    _INSERT_SQL,
    [(name, _INSERT_TYPES.get(name, "text")) for name in _INSERT_COLUMNS],
    # The webhook's one statement: it is the request's health check too (lib/prepared.py).
    checks_session=True,
)


# PostgreSQL: a new item of an author seen before in one statement, the author's lookup
# and the insert together (a webhook with an author cost one more round trip than one
# without). No row: the author is new (nothing inserted; the caller creates the author,
# then inserts). SQLite cannot modify rows inside WITH: it looks the author up first.
_KNOWN_AUTHOR_COLUMNS = tuple(name for name in _INSERT_COLUMNS if name != "author_id")
_INSERT_KNOWN_AUTHOR_SQL = (  # noqa: S608 - from the constants above, every value a parameter
    "WITH found AS ({lookup}), "
    "inserted AS ("
    "INSERT INTO {table} ({columns}) "
    "SELECT {values} FROM found RETURNING id) "
    "SELECT inserted.id, found.id, found.name, found.url, found.account_created_at "
    "FROM found CROSS JOIN inserted"
).format(
    lookup=AUTHOR_LOOKUP % ("%(source_id)s", "%(author_external_id)s"),
    table=Item._meta.db_table,
    columns=", ".join([*_INSERT_COLUMNS, *_INSERT_CONSTANTS]),
    values=", ".join(
        ["found.id" if name == "author_id" else f"%({name})s" for name in _INSERT_COLUMNS]
        + list(_INSERT_CONSTANTS.values())
    ),
)
_INSERT_KNOWN_AUTHOR = PreparedStatement(
    "moderation_item_insert_known_author",
    _INSERT_KNOWN_AUTHOR_SQL,
    [
        *[(name, _INSERT_TYPES.get(name, "text")) for name in _KNOWN_AUTHOR_COLUMNS],
        ("author_external_id", "text"),
    ],
    checks_session=True,
)


def _known_author_insert_applies(payload: IntakePayload) -> bool:
    """Whether _item_insert_known_author looks the payload's author up (and so a miss there
    means a new author)."""
    return payload.author is not None and connection.vendor == "postgresql"


def _item_insert_known_author(
    *, source: Source, payload: IntakePayload, webhook_id: str, media: dict[str, str]
) -> tuple[Item | None, Author | None]:
    """On PostgreSQL, the new item of an author stored before, with that author, in one
    statement; (None, None) elsewhere, without an author, or when the author is new."""
    if not _known_author_insert_applies(payload):
        return None, None
    item, params = _new_item(source=source, payload=payload, webhook_id=webhook_id, media=media)
    del params["author_id"]  # the lookup's
    row = _INSERT_KNOWN_AUTHOR.fetchone(params | {"author_external_id": payload.author.id})
    if row is None:
        return None, None
    item.pk = row[0]
    author = author_from_row(source, payload.author.id, row[1:])
    item.author = author
    return item, author


def _new_item(
    *,
    source: Source,
    payload: IntakePayload,
    webhook_id: str,
    media: dict[str, str],
    author: Author | None = None,
) -> tuple[Item, dict]:
    """The new item (no pk yet) and the parameters of its INSERT (_INSERT_COLUMNS)."""
    now = timezone.now()
    at = connection.ops.adapt_datetimefield_value(now)
    params = {
        "source_id": source.pk,
        "external_id": payload.external_id,
        "webhook_id": webhook_id,
        "content_text": payload.content_text,
        **media,
        "content_hash": payload.content_hash,
        "metadata": json.dumps(payload.metadata),
        "author_id": author.pk if author is not None else None,
        "received_at": at,
        "waiting_since": at,
        # Detected by the dispatch (items_lock_received), outside the webhook's request.
        "language": "",
    }
    # Built as a row read back is (positionally, every column given): the ORM's keyword
    # path, with its defaults and relations, cost ~0.1 ms of a webhook's CPU.
    values = {
        "id": None,
        **{name: default() for name, default in _NEW_ITEM_DEFAULTS},
        **params,
        "metadata": payload.metadata,
        "received_at": now,
        "waiting_since": now,
    }
    item = Item.from_db(connection.alias, None, [values[name] for name in _ITEM_ATTNAMES])
    item.source = source
    if author is not None:
        item.author = author
    return item, params


# Every column of Item in the model's order, and the defaults of those intake does not
# write (the constants of _INSERT_CONSTANTS, as Python values).
_ITEM_ATTNAMES = tuple(field.attname for field in Item._meta.concrete_fields)
_NEW_ITEM_DEFAULTS = tuple(
    (field.attname, field.get_default)
    for field in Item._meta.concrete_fields
    if field.attname not in _INSERT_COLUMNS and not field.primary_key
)


def _item_insert(
    *,
    source: Source,
    payload: IntakePayload,
    webhook_id: str,
    media: dict[str, str],
    author: Author | None = None,
) -> Item:
    """INSERT the new item (IntegrityError on a conflict, as create() raises) and return it
    as create() would have."""
    item, params = _new_item(
        source=source, payload=payload, webhook_id=webhook_id, media=media, author=author
    )
    if connection.features.can_return_columns_from_insert:
        (item.pk,) = _INSERT.fetchone(params)
    else:  # SQLite before 3.35
        with connection.cursor() as cursor:
            cursor.execute(_INSERT_SQL.removesuffix(" RETURNING id"), params)
            item.pk = cursor.lastrowid
    return item


def _store_payload_media(payload: IntakePayload) -> dict[str, str]:
    # A failed transaction leaves at most an unreferenced content-addressed file, never a
    # row pointing at nothing.
    media = {
        "content_image": "",
        "content_image_type": payload.image_type,
        "content_video": "",
        "content_video_type": payload.video_type,
    }
    if payload.image:
        media["content_image"] = _store_media(payload.image, payload.image_type, "images")
    if payload.video:
        media["content_video"] = _store_media(payload.video, payload.video_type, "videos")
    return media


_REVISED_FIELDS = (
    "webhook_id",
    "content_text",
    "content_image",
    "content_image_type",
    "content_video",
    "content_video_type",
    "content_hash",
    "metadata",
)


def _item_revise(
    item: Item, *, payload: IntakePayload, webhook_id: str, media: dict[str, str], author=None
) -> tuple[Item, bool]:
    """Keep the current content as a revision and take the edit as the item's content: it
    goes back to the dispatch to be labeled again, undecided, whatever was decided before."""
    guard = transaction.atomic()
    try:
        with guard:
            locked = Item.objects.select_for_update().get(pk=item.pk)
            if _is_repeat(locked, payload=payload, webhook_id=webhook_id):
                return locked, False  # the same edit, raced by its own retry
            ItemRevision.objects.create(
                item=locked,
                number=locked.revision,
                received_at=locked.revised_at or locked.received_at,
                status=locked.status,
                violation_score=locked.violation_score,
                **{name: getattr(locked, name) for name in _REVISED_FIELDS},
            )
            new_content = {
                "webhook_id": webhook_id,
                "content_text": payload.content_text,
                "content_hash": payload.content_hash,
                "metadata": payload.metadata,
                **media,
            }
            for name, value in new_content.items():
                setattr(locked, name, value)
            # The new text's language: the dispatch detects it again.
            locked.language = ""
            # An edit without `author` keeps the item's author.
            if author is not None:
                locked.author = author
            locked.revision += 1
            locked.revised_at = timezone.now()
            locked.waiting_since = locked.revised_at
            decided_at = locked.decided_at if locked.status == Item.Status.DECIDED else None
            unflagged = locked.flagged_at
            locked.status = Item.Status.RECEIVED
            for name in ("violation_score", "queue_score", "flagged_at", "decided_at"):
                setattr(locked, name, None)
            # The edit restarts the SLA clock: it waits as new content.
            locked.queue_key, locked.sla_breached = None, False
            locked.claimed_by = None
            locked.claim_expires_at = None
            # An edit of an item whose old content the retention purge removed brings content
            # again: kept, and purged in its turn, like any other.
            locked.purged_at = None
            locked.save()
            # Its flag is cleared (the labels of the older revision counted it), and it is
            # no longer decided.
            item_figures_changed(item_id=locked.pk, decided_at=decided_at, unflagged=unflagged)
    except IntegrityError:
        # The edit's webhook-id belongs to another item of this source: a repeat of that one.
        other = Item.objects.filter(source_id=item.source_id, webhook_id=webhook_id).first()
        if other is None:
            raise
        return other, False
    return locked, True


def item_revision_check(item: Item, *, revision: int | None) -> None:
    """Refuse (StaleRevision) an act on `item` (read under the caller's lock) whose page showed
    another revision. None: the caller makes no claim about what was seen (internal callers
    and tests; every page sends the revision it rendered)."""
    if revision is not None and item.revision != revision:
        raise StaleRevision(item_id=item.pk, seen=revision, current=item.revision)
