"""Parsing and checking a webhook body before anything is stored.

Everything a product can get wrong raises IntakeError naming the field; nothing here writes.
Unknown top-level fields are ignored, so products can send extra context without breaking.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import re
import struct
import warnings
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from PIL import Image

from moderation.errors import IntakeError
from moderation.models import REPORT_COMMENT_MAX, REPORT_REASON_MAX

IMAGE_TYPES = {"image/png": "PNG", "image/jpeg": "JPEG", "image/gif": "GIF", "image/webp": "WEBP"}
VIDEO_TYPES = ("video/mp4", "video/quicktime", "video/webm")
MAX_VIDEO_SECONDS = 60
_DATA_URL = re.compile(r"^data:(?P<mime>[a-z0-9.+-]+/[a-z0-9.+-]+)(?:;[^,;]*)*;base64,", re.I)


@dataclass(frozen=True)
class AuthorPayload:
    """The body's optional `author`: the account that posted the item."""

    id: str
    name: str = ""
    url: str = ""
    created_at: datetime | None = None


@dataclass
class IntakePayload:
    external_id: str
    content_text: str = ""
    image: bytes = b""
    image_type: str = ""
    video: bytes = b""
    video_type: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    author: AuthorPayload | None = None

    @property
    def content_hash(self) -> str:
        digest = hashlib.sha256()
        for part in (self.content_text.encode(), self.image, self.video):
            digest.update(hashlib.sha256(part).digest())
        return digest.hexdigest()


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


def _check_storable(value: str, field_name: str) -> None:
    """Text the databases can store: UTF-8 encodable (no lone surrogates) and without NUL."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise IntakeError(
            422, f"{field_name} contains an unpaired surrogate (\\uD800-\\uDFFF)", field=field_name
        ) from None
    if "\x00" in value:
        raise IntakeError(422, f"{field_name} contains a NUL character", field=field_name)


# The same check for the other intakes (appeals) that store a product's text.
check_storable = _check_storable


def load_object(body: bytes) -> dict[str, Any]:
    """A webhook's body as a JSON object (IntakeError naming `body` otherwise)."""
    try:
        data = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise IntakeError(400, f"body is not valid JSON: {exc}", field="body") from None
    except RecursionError:
        raise IntakeError(400, "body is nested too deeply", field="body") from None
    if not isinstance(data, dict):
        raise IntakeError(422, "body must be a JSON object", field="body")
    return data


def id_string(value: Any, field: str) -> str:
    """A product's id of something (external_id, appeal_id): a non-blank string of at most
    255 characters the databases can store."""
    if not isinstance(value, str) or not value.strip():
        raise IntakeError(422, f"{field} is required and must be a string", field=field)
    if len(value) > 255:
        raise IntakeError(422, f"{field} is longer than 255 characters", field=field)
    _check_storable(value, field)
    return value


def _external_id(data: dict[str, Any]) -> str:
    return id_string(data.get("external_id"), "external_id")


def parse_body(body: bytes) -> IntakePayload:
    return _parse_item(load_object(body))


def _parse_item(data: dict[str, Any]) -> IntakePayload:
    payload = IntakePayload(external_id=_external_id(data))

    text = data.get("content_text")
    if text is not None:
        if not isinstance(text, str):
            raise IntakeError(422, "content_text must be a string", field="content_text")
        if len(text) > settings.INTAKE_MAX_TEXT_CHARS:
            raise IntakeError(
                413,
                f"content_text is longer than {settings.INTAKE_MAX_TEXT_CHARS} characters",
                field="content_text",
            )
        _check_storable(text, "content_text")
        payload.content_text = text

    if (image := data.get("content_image")) is not None:
        payload.image, payload.image_type = _parse_image(image)
    if (video := data.get("content_video")) is not None:
        payload.video, payload.video_type = _parse_video(video)

    if not (payload.content_text or payload.image or payload.video):
        raise IntakeError(
            422,
            "at least one of content_text, content_image, content_video is required",
            field="content_text",
        )

    metadata = data.get("metadata", {})
    if metadata is None:
        metadata = {}
    if not isinstance(metadata, dict):
        raise IntakeError(422, "metadata must be a JSON object", field="metadata")
    try:
        # allow_nan=False: 1e400 parses to inf, which no database stores as JSON.
        encoded = json.dumps(metadata, ensure_ascii=False, allow_nan=False)
    except ValueError:
        raise IntakeError(422, "metadata holds a number out of range", field="metadata") from None
    _check_storable(encoded, "metadata")
    if len(encoded.encode()) > settings.INTAKE_MAX_METADATA_BYTES:
        raise IntakeError(
            413,
            f"metadata is larger than {settings.INTAKE_MAX_METADATA_BYTES} bytes",
            field="metadata",
        )
    if "\\u0000" in encoded:  # json.dumps escapes NUL even with ensure_ascii=False
        raise IntakeError(422, "metadata contains a NUL character", field="metadata")
    payload.metadata = metadata
    if (author := data.get("author")) is not None:
        payload.author = parse_author(author)
    return payload


CONTENT_FIELDS = ("content_text", "content_image", "content_video")


@dataclass(frozen=True)
class ReportPayload:
    """A user's report (POST /webhooks/<slug>/reports/); `item`: the item's content, when the
    report carries it (to create an item not yet received)."""

    report_id: str
    external_id: str
    reason: str
    reporter_id: str = ""  # "": anonymous
    comment: str = ""
    item: IntakePayload | None = None


def _report_string(data: dict[str, Any], name: str, *, max_chars: int, required: bool) -> str:
    value = data.get(name)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        qualifier = "is required and " if required else ""
        raise IntakeError(422, f"{name} {qualifier}must be a string", field=name)
    if required and not value.strip():
        raise IntakeError(422, f"{name} must not be empty", field=name)
    if len(value) > max_chars:
        # A long comment is content a product sent in bulk (413, as content_text); the
        # identifiers and the reason are malformed (422).
        status = 413 if name == "comment" else 422
        raise IntakeError(status, f"{name} is longer than {max_chars} characters", field=name)
    _check_storable(value, name)
    return value


def parse_report_body(body: bytes) -> ReportPayload:
    """`{"report_id", "external_id", "reason", "reporter": {"id"}, "comment"}` and, for an item
    not yet received, its content fields and `author` as the item webhook takes them."""
    data = load_object(body)
    report_id = _report_string(data, "report_id", max_chars=255, required=True)
    external_id = _external_id(data)
    reason = _report_string(data, "reason", max_chars=REPORT_REASON_MAX, required=True)
    reporter_id = ""
    if (reporter := data.get("reporter")) is not None:
        if not isinstance(reporter, dict):
            raise IntakeError(422, "reporter must be a JSON object", field="reporter")
        if reporter.get("id") is None:
            raise IntakeError(
                422, "reporter.id is required when reporter is present", field="reporter.id"
            )
        # A number is refused, not converted, as author.id.
        reporter_id = _report_string(
            {"reporter.id": reporter["id"]}, "reporter.id", max_chars=255, required=True
        )
    comment = _report_string(data, "comment", max_chars=REPORT_COMMENT_MAX, required=False)
    item = None
    if any(data.get(name) is not None for name in CONTENT_FIELDS):
        item = _parse_item(data)
    elif data.get("author") is not None:
        parse_author(data["author"])  # a broken author is refused even without content
    return ReportPayload(
        report_id=report_id,
        external_id=external_id,
        reason=reason,
        reporter_id=reporter_id,
        comment=comment,
        item=item,
    )


AUTHOR_MAX_NAME = 255
AUTHOR_MAX_URL = 2000


def _author_string(value: Any, name: str, *, max_chars: int, required: bool = False) -> str:
    field_name = f"author.{name}"
    if value is None and not required:
        return ""
    # A number is refused, not converted: 12 and "12" would be two authors in some products.
    if not isinstance(value, str):
        raise IntakeError(422, f"{field_name} must be a string", field=field_name)
    if required and not value:
        raise IntakeError(422, f"{field_name} must not be empty", field=field_name)
    if len(value) > max_chars:
        raise IntakeError(
            422, f"{field_name} is longer than {max_chars} characters", field=field_name
        )
    _check_storable(value, field_name)
    return value


def parse_author(value: Any) -> AuthorPayload:
    """`{"id": "...", "name": "...", "url": "...", "created_at": "ISO 8601"}`: `id` (1-255
    characters) required, the rest optional; a broken field is a 422 naming it."""
    if not isinstance(value, dict):
        raise IntakeError(422, "author must be a JSON object", field="author")
    if "id" not in value or value["id"] is None:
        raise IntakeError(422, "author.id is required when author is present", field="author.id")
    author_id = _author_string(value["id"], "id", max_chars=255, required=True)
    name = _author_string(value.get("name"), "name", max_chars=AUTHOR_MAX_NAME)
    url = _author_string(value.get("url"), "url", max_chars=AUTHOR_MAX_URL)
    # Pages link to it: only a web address, never javascript: or data:.
    if url and not re.match(r"^https?://[^\s]+$", url, re.I):
        raise IntakeError(422, "author.url must be an http(s) URL", field="author.url")
    created_at = None
    if (raw := value.get("created_at")) is not None:
        if not isinstance(raw, str) or len(raw) > 64:
            raise IntakeError(
                422, "author.created_at must be an ISO 8601 string", field="author.created_at"
            )
        try:
            created_at = datetime.fromisoformat(raw)
        except ValueError:
            raise IntakeError(
                422, "author.created_at is not an ISO 8601 date-time", field="author.created_at"
            ) from None
        # A date-time without an offset is taken as UTC.
        if created_at.tzinfo is None:
            created_at = created_at.replace(tzinfo=UTC)
        if not 1970 <= created_at.year <= 9998:
            raise IntakeError(422, "author.created_at is out of range", field="author.created_at")
    return AuthorPayload(id=author_id, name=name, url=url, created_at=created_at)


def _decode_data_url(value: Any, *, field_name: str, max_bytes: int) -> tuple[bytes, str]:
    if not isinstance(value, str):
        raise IntakeError(422, f"{field_name} must be a base64 data URL string", field=field_name)
    match = _DATA_URL.match(value)
    if not match:
        raise IntakeError(
            422, f"{field_name} must look like data:<type>;base64,<data>", field=field_name
        )
    encoded = value[match.end() :]
    # base64 inflates by 4/3: refuse before decoding anything too large.
    if len(encoded) * 3 // 4 > max_bytes + 3:
        raise IntakeError(413, f"{field_name} is larger than {max_bytes} bytes", field=field_name)
    try:
        raw = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise IntakeError(422, f"{field_name} is not valid base64", field=field_name) from None
    if len(raw) > max_bytes:
        raise IntakeError(413, f"{field_name} is larger than {max_bytes} bytes", field=field_name)
    if not raw:
        raise IntakeError(422, f"{field_name} is empty", field=field_name)
    return raw, match.group("mime").lower()


def _parse_image(value: Any) -> tuple[bytes, str]:
    name = "content_image"
    raw, mime = _decode_data_url(value, field_name=name, max_bytes=settings.INTAKE_MAX_IMAGE_BYTES)
    if mime not in IMAGE_TYPES:
        raise IntakeError(
            415, f"{name} type {mime} is not one of {', '.join(IMAGE_TYPES)}", field=name
        )
    limit = settings.INTAKE_MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(raw), formats=list(IMAGE_TYPES.values())) as img:
                if img.format != IMAGE_TYPES[mime]:
                    raise IntakeError(
                        422, f"{name} says {mime} but holds {img.format} data", field=name
                    )
                width, height = img.size
                if width * height > limit:
                    raise IntakeError(
                        422, f"{name} is {width}x{height}, over {limit} pixels", field=name
                    )
                frames = getattr(img, "n_frames", 1)
                if width * height * frames > limit * 4:
                    raise IntakeError(422, f"{name} has too many frames", field=name)
                img.verify()
            # verify() leaves the image unusable; decoding once more catches truncated data.
            with Image.open(io.BytesIO(raw)) as img:
                img.load()
    except IntakeError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise IntakeError(
            422, f"{name} is a decompression bomb (over {limit} pixels)", field=name
        ) from None
    except Exception:  # noqa: BLE001 - Pillow raises many types for broken data
        raise IntakeError(422, f"{name} is not a readable image", field=name) from None
    return raw, mime


def _parse_video(value: Any) -> tuple[bytes, str]:
    name = "content_video"
    raw, mime = _decode_data_url(value, field_name=name, max_bytes=settings.INTAKE_MAX_VIDEO_BYTES)
    if mime not in VIDEO_TYPES:
        raise IntakeError(
            415, f"{name} type {mime} is not one of {', '.join(VIDEO_TYPES)}", field=name
        )
    if mime == "video/webm":
        if not raw.startswith(b"\x1a\x45\xdf\xa3"):
            raise IntakeError(
                422, f"{name} says {mime} but is not a WebM/Matroska file", field=name
            )
        return raw, mime
    if raw[4:8] != b"ftyp":
        raise IntakeError(422, f"{name} says {mime} but is not an MP4/QuickTime file", field=name)
    duration = mp4_duration_seconds(raw)
    if duration is not None and duration > MAX_VIDEO_SECONDS:
        raise IntakeError(
            422, f"{name} is {duration:.1f}s long, over {MAX_VIDEO_SECONDS}s", field=name
        )
    return raw, mime


def mp4_duration_seconds(data: bytes) -> float | None:
    """Duration from the moov/mvhd box of an MP4/QuickTime file, or None if not found."""

    def boxes(start: int, end: int):
        pos = start
        while pos + 8 <= end:
            size, kind = struct.unpack(">I4s", data[pos : pos + 8])
            header = 8
            if size == 1 and pos + 16 <= end:
                size = struct.unpack(">Q", data[pos + 8 : pos + 16])[0]
                header = 16
            elif size == 0:
                size = end - pos
            if size < header:
                return
            yield kind, pos + header, min(pos + size, end)
            pos += size

    for kind, body, end in boxes(0, len(data)):
        if kind != b"moov":
            continue
        for inner, ibody, iend in boxes(body, end):
            if inner != b"mvhd" or iend - ibody < 20:
                continue
            version = data[ibody]
            if version == 1 and iend - ibody >= 32:
                timescale, duration = struct.unpack(">IQ", data[ibody + 20 : ibody + 32])
            else:
                timescale, duration = struct.unpack(">II", data[ibody + 12 : ibody + 20])
            return duration / timescale if timescale else None
    return None
