"""Where a piece of content still lives: every column of every table (found by the
database's own introspection, not a hand-kept list, so a table added later is scanned too),
and every file under the media folder. The retention and erasure tests put a unique marker
into every place a product's content reaches, and expect none of it afterwards."""

from __future__ import annotations

import io
import json
import struct
from pathlib import Path

from django.conf import settings
from django.db import connection
from django.utils import timezone
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from labelers.models import Label, ShadowLabel, ShadowRun
from moderation.models import Appeal, CallbackAttempt, CallbackDelivery, Item
from moderation.services.decisions import decision_record
from moderation.tests.factories import UserFactory, reason_id
from moderation.tests.media import data_url, mp4_bytes
from testkit.signing import signed_headers


def tables_holding(marker: str) -> list[str]:
    """ "table.column" for each column, of any type, whose text holds the marker."""
    found = []
    quote = connection.ops.quote_name
    with connection.cursor() as cursor:
        for table in connection.introspection.table_names(cursor):
            for column in connection.introspection.get_table_description(cursor, table):
                # Every column cast to text: text, varchar, json(b), and anything else.
                cursor.execute(
                    f"SELECT 1 FROM {quote(table)} "  # noqa: S608 (names from introspection)
                    f"WHERE CAST({quote(column.name)} AS TEXT) LIKE %s LIMIT 1",
                    [f"%{marker}%"],
                )
                if cursor.fetchone():
                    found.append(f"{table}.{column.name}")
    return sorted(found)


def media_holding(marker: str) -> list[str]:
    """Files under MEDIA_ROOT whose bytes hold the marker."""
    root = Path(settings.MEDIA_ROOT)
    if not root.exists():
        return []
    needle = marker.encode()
    return sorted(
        str(path.relative_to(root))
        for path in root.rglob("*")
        if path.is_file() and needle in path.read_bytes()
    )


def png_with(marker: str) -> str:
    """A PNG data URL that carries the marker in a text chunk (intake stores the bytes as
    sent, so the file on disk holds it)."""
    info = PngInfo()
    info.add_text("Comment", marker)
    buffer = io.BytesIO()
    Image.new("RGB", (4, 4), (len(marker) % 255, 10, 200)).save(buffer, "PNG", pnginfo=info)
    return data_url(buffer.getvalue(), "image/png")


def mp4_with(marker: str) -> str:
    """An MP4 data URL with the marker in a trailing `free` box."""
    payload = marker.encode()
    free = struct.pack(">I4s", 8 + len(payload), b"free") + payload
    return data_url(mp4_bytes(2.0) + free, "video/mp4")


# Where the seeded content must be found before a purge (proves the scan can see it).
SEEDED_COLUMNS = {
    "moderation_item.content_text",
    "moderation_item.metadata",
    "moderation_itemrevision.content_text",
    "moderation_itemrevision.metadata",
    "moderation_report.comment",
    "moderation_appeal.statement",
    "moderation_decision.note",
    "moderation_callbackattempt.response_body",
    "labelers_label.error",
    "labelers_shadowlabel.error",
}


def signed_post(client, path: str, source, payload: dict):
    body = json.dumps(payload).encode()
    return client.post(
        path,
        data=body,
        content_type="application/json",
        headers=signed_headers(source._secret, body),
    )


def seed_content(client, post_webhook, source, *, marker: str, external_id: str, author=None):
    """An item carrying `marker` everywhere a product's content reaches: text, image and
    metadata; an edit (a revision) with a video; a report's comment; a removal with a
    note; an appeal's statement; an API error and a shadow answer's error quoting it; a
    receiver's answer logged with its callback. Returns the item."""
    body = {
        "external_id": external_id,
        "content_text": f"first {marker}-r1",
        "content_image": png_with(f"{marker}-img1"),
        "metadata": {"thread": f"{marker}-meta"},
    }
    if author:
        body["author"] = author
    assert post_webhook(source, body).status_code == 202
    edit = {
        "external_id": external_id,
        "content_text": f"second {marker}-r2",
        "content_video": mp4_with(f"{marker}-vid2"),
        "metadata": {"thread": f"{marker}-meta2"},
        **({"author": author} if author else {}),
    }
    assert post_webhook(source, edit).status_code == 202
    item = Item.objects.get(source=source, external_id=external_id, erased_at__isnull=True)
    assert item.revision == 2
    report = {
        "report_id": f"rep-{external_id}",
        "external_id": external_id,
        "reason": "harassment",
        "reporter": {"id": "reporter-1"},
        "comment": f"they wrote {marker}-comment",
    }
    response = signed_post(client, f"/webhooks/{source.slug}/reports/", source, report)
    assert response.status_code == 202, response.content
    reviewer = UserFactory(senior=True)
    item.refresh_from_db()
    decision = decision_record(
        item=item,
        reviewer=reviewer,
        action="remove",
        reason_id=reason_id("remove"),
        note=f"quoting {marker}-note",
    )
    appeal = {
        "appeal_id": f"ap-{external_id}",
        "external_id": external_id,
        "statement": f"I only said {marker}-appeal",
    }
    response = signed_post(client, f"/webhooks/{source.slug}/appeals/", source, appeal)
    assert response.status_code == 202, response.content
    # An appeal decided (upheld): the content is no longer needed for it.
    Appeal.objects.filter(item=item).update(status="upheld", decided_at=timezone.now())
    label = Label.objects.filter(item=item).first()
    assert label is not None
    Label.objects.filter(pk=label.pk).update(error=f"422: the API quoted {marker}-apierr")
    run = ShadowRun.objects.create(version=label.labeler_version, source=source)
    ShadowLabel.objects.create(
        run=run,
        item=item,
        revision=2,
        status="failed",
        content_hash=item.content_hash,
        policy_hash="p" * 64,
        error=f"refused: {marker}-shadow",
    )
    delivery = CallbackDelivery.objects.get(decision=decision)
    CallbackAttempt.objects.create(
        delivery=delivery,
        started_at=timezone.now(),
        url=source.callback_url,
        status_code=500,
        response_body=f"echo {marker}-callback",
    )
    item.refresh_from_db()
    return item
