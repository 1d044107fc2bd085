"""Property-based: whatever is thrown at the webhook, it answers a JSON error or stores an item,
never a 5xx, and stores an item only for a validly signed request with a valid body.

The answer a body must get is known from how the body was made, never asked of the parser
under test: a valid payload is accepted; a valid payload with one field broken in a known
way gets that field's status and name; random bytes and JSON are checked for the invariants
(and for the 400/422 that malformed JSON and a non-object must get).

The 500s fuzzing found (deep nesting, NaN, lone surrogates, NUL, huge timestamps) are fixed;
their inputs are in the strategies and pinned as regression tests at the end.
"""

import base64
import json
import math
import string
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime

import pytest
from django.conf import settings as django_settings
from hypothesis import HealthCheck, event, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from moderation.models import AccountAction, Appeal, Author, Item, ItemRevision, Report
from moderation.services.decisions import decision_record
from moderation.tests.factories import UserFactory, reason_id
from moderation.tests.media import data_url, mp4_bytes, png_bytes
from testkit.signing import sign_by_hand, signed_headers

pytestmark = pytest.mark.django_db

FUZZ = hypothesis_settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# --- strategies ---------------------------------------------------------------------------------

# Any code point, lone surrogates and NUL included (hypothesis' default text excludes surrogates).
any_text = st.text(st.characters(exclude_categories=[]), max_size=20)
json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | any_text
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=12,
)

MEDIA = [
    data_url(png_bytes(), "image/png"),
    data_url(png_bytes(), "image/jpeg"),  # says JPEG, holds PNG
    data_url(b"BM\x00\x00", "image/bmp"),
    data_url(mp4_bytes(5), "video/mp4"),
    data_url(mp4_bytes(90), "video/mp4"),  # too long
    data_url(b"\x1a\x45\xdf\xa3webm", "video/webm"),
    data_url(b"not a video", "video/quicktime"),
    "data:image/png;base64,!!!not base64!!!",
    "data:image/png;base64,",
    "https://example.com/cat.png",
]

external_ids = (
    any_text | st.text(alphabet=string.ascii_letters, min_size=250, max_size=260) | json_values
)
webhook_like = st.fixed_dictionaries(
    {},
    optional={
        "external_id": external_ids,
        "content_text": any_text | json_values,
        "content_image": st.sampled_from(MEDIA) | json_values,
        "content_video": st.sampled_from(MEDIA) | json_values,
        "metadata": st.dictionaries(any_text, json_values, max_size=4) | json_values,
        "author": st.dictionaries(
            st.sampled_from(["id", "name", "url", "created_at"]) | any_text, json_values
        )
        | json_values,
        "extra": json_values,
    },
)
# Mostly right, so that the accepting path is exercised as hard as the refusing ones.
plausible = st.fixed_dictionaries(
    {
        "external_id": st.text(
            alphabet=st.characters(exclude_characters="\x00"), min_size=1, max_size=12
        ),
        "content_text": st.text(min_size=1, max_size=40),
    },
    optional={
        "content_image": st.sampled_from(MEDIA[:3]) | st.none(),
        "content_video": st.sampled_from(MEDIA[3:6]) | st.none(),
        "metadata": st.dictionaries(st.text(max_size=8), json_values, max_size=4) | st.none(),
        "author": st.fixed_dictionaries(
            {"id": st.text(min_size=1, max_size=12) | json_values},
            optional={"name": any_text | json_values, "created_at": any_text | json_values},
        )
        | st.none(),
        "extra": json_values,
    },
)
random_bodies = st.one_of(
    plausible.map(lambda value: json.dumps(value).encode()),
    # Raw UTF-8 on the wire; a lone surrogate cannot be UTF-8, so it becomes invalid bytes.
    plausible.map(
        lambda value: json.dumps(value, ensure_ascii=False, indent=1).encode(
            "utf-8", "surrogatepass"
        )
    ),
    webhook_like.map(lambda value: json.dumps(value).encode()),
    json_values.map(lambda value: json.dumps(value).encode()),
    st.binary(max_size=64),
    st.text(max_size=64).map(str.encode),
)

# --- bodies whose answer is known from how they were made -----------------------------------


@dataclass(frozen=True)
class Case:
    kind: str  # what was done to the body, for hypothesis' statistics
    body: bytes
    expected: tuple[int, str] | None | str  # ACCEPTED, (status, field), or UNKNOWN


ACCEPTED = None
UNKNOWN = "unknown"  # random input: only the invariants (and malformed JSON's 400) are known
FIELDS = {
    "body",
    "external_id",
    "content_text",
    "content_image",
    "content_video",
    "metadata",
    "author",
    "author.id",
    "author.name",
    "author.url",
    "author.created_at",
}


def _encode(payload: dict, raw_utf8: bool = False) -> bytes:
    if raw_utf8:  # a lone surrogate goes out as the bytes a sloppy encoder would write
        return json.dumps(payload, ensure_ascii=False).encode("utf-8", "surrogatepass")
    return json.dumps(payload).encode()


# Text any database stores: no NUL, no lone surrogate (the utf-8 codec leaves them out).
clean_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20)
clean_json = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | clean_text,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(clean_text, children, max_size=4)
    ),
    max_leaves=12,
)
GOOD_IMAGE = data_url(png_bytes(), "image/png")
GOOD_VIDEOS = [data_url(mp4_bytes(5), "video/mp4"), data_url(b"\x1a\x45\xdf\xa3webm", "video/webm")]
good_text = clean_text.filter(bool)
# At least one kind of content; a text may be empty or null beside media.
good_content = st.one_of(
    st.fixed_dictionaries(
        {"content_text": good_text},
        optional={
            "content_image": st.just(GOOD_IMAGE),
            "content_video": st.sampled_from(GOOD_VIDEOS),
        },
    ),
    st.fixed_dictionaries(
        {"content_image": st.just(GOOD_IMAGE)},
        optional={
            "content_text": st.sampled_from(["", None]),
            "content_video": st.sampled_from(GOOD_VIDEOS) | st.none(),
        },
    ),
    st.fixed_dictionaries(
        {"content_video": st.sampled_from(GOOD_VIDEOS)},
        optional={"content_text": st.sampled_from(["", None]), "content_image": st.none()},
    ),
)
good_authors = st.fixed_dictionaries(
    {"id": clean_text.filter(bool)},
    optional={
        "name": st.none() | clean_text,
        "url": st.none()
        | st.just("")
        | st.text(alphabet=string.ascii_letters + string.digits + "-._~/?=&%", max_size=20).map(
            lambda t: "https://x.example/" + t
        ),
        "created_at": st.none()
        | st.datetimes(
            min_value=datetime(1971, 1, 1), max_value=datetime(9000, 1, 1), timezones=st.none()
        ).map(datetime.isoformat)
        | st.datetimes(
            min_value=datetime(1971, 1, 1),
            max_value=datetime(9000, 1, 1),
            timezones=st.just(UTC),
        ).map(datetime.isoformat),
    },
)
good_payloads = st.tuples(
    st.fixed_dictionaries(
        {"external_id": clean_text.filter(str.strip)},
        optional={
            "author": st.none() | good_authors,
            "metadata": st.none() | st.dictionaries(clean_text, clean_json, max_size=4),
            "extra": clean_json,  # unknown top-level fields are ignored
        },
    ),
    good_content,
).map(lambda parts: {**parts[0], **parts[1]})


def _with(field: str, values, status: int, kind: str, *, either_encoding: bool = False):
    """A valid payload whose `field` is replaced by one of `values`: (status, field)."""
    raw_utf8 = st.booleans() if either_encoding else st.just(False)
    return st.tuples(good_payloads, values, raw_utf8).map(
        lambda t: Case(f"{field}: {kind}", _encode({**t[0], field: t[1]}, t[2]), (status, field))
    )


def _with_author(name: str, values, status: int, kind: str):
    """A valid payload whose author's `name` field is one of `values`: (status, author.name)."""
    return st.tuples(good_payloads, good_authors, values).map(
        lambda t: Case(
            f"author.{name}: {kind}",
            _encode({**t[0], "author": {**t[1], name: t[2]}}),
            (status, f"author.{name}"),
        )
    )


def _without(fields: tuple[str, ...], status: int, field: str, kind: str):
    return good_payloads.map(
        lambda payload: Case(
            kind, _encode({k: v for k, v in payload.items() if k not in fields}), (status, field)
        )
    )


with_nul = st.tuples(clean_text, clean_text).map(lambda t: f"{t[0]}\x00{t[1]}")
with_surrogate = st.tuples(clean_text, st.characters(categories=["Cs"]), clean_text).map("".join)
non_string = clean_json.filter(lambda v: not isinstance(v, str))  # null included
present_non_string = non_string.filter(lambda v: v is not None)
blank = st.text(alphabet=" \t\n\r\u00a0\u2003\u3000", max_size=5)
long_id = st.text(alphabet=string.ascii_letters, min_size=256, max_size=300)
# Media that must be refused, and with what: (value, status) for each field.
BAD_IMAGES = [
    (data_url(png_bytes(), "image/jpeg"), 422),  # says JPEG, holds PNG
    (data_url(png_bytes()[:40], "image/png"), 422),  # truncated
    (data_url(b"BM\x00\x00", "image/bmp"), 415),
    (data_url(mp4_bytes(5), "video/mp4"), 415),  # a video where an image goes
    ("data:image/png;base64,!!!not base64!!!", 422),
    ("data:image/png;base64,", 422),
    ("https://example.com/cat.png", 422),
]
BAD_VIDEOS = [
    (data_url(mp4_bytes(90), "video/mp4"), 422),  # over 60 s
    (data_url(b"not a video", "video/quicktime"), 422),
    (data_url(b"not a webm", "video/webm"), 422),
    (data_url(png_bytes(), "image/png"), 415),  # an image where a video goes
    ("data:video/mp4;base64,!!!", 422),
    ("data:video/mp4;base64,", 422),
    ("https://example.com/cat.mp4", 422),
]


def _bad_media(field: str, table):
    return st.one_of(
        st.sampled_from(table).flatmap(lambda bad: _with(field, st.just(bad[0]), bad[1], "bad")),
        _with(field, present_non_string, 422, "not a string"),
    )


def _too_big_metadata():
    limit = django_settings.INTAKE_MAX_METADATA_BYTES
    return st.integers(1, 64).map(lambda n: {"k": "x" * (limit + n)})


def _big_number(payload: dict) -> Case:
    # 1e400 is valid JSON that parses to infinity, which no database stores as JSON.
    body = _encode({**payload, "metadata": {"n": "BIG"}}).replace(b'"BIG"', b"1e400")
    return Case("metadata: number out of range", body, (422, "metadata"))


def _truncated(payload: dict, cut: int) -> Case:
    body = _encode(payload)
    return Case("body: cut short", body[: cut % len(body)], (400, "body"))


def _coarse(body: bytes) -> tuple[int, str] | str:
    """Random input: malformed JSON (NaN and Infinity are not JSON) must be a 400, JSON that
    is not an object a 422; for an object, the invariants are all that is known."""

    def not_json(constant):
        raise ValueError(constant)

    try:
        value = json.loads(body, parse_constant=not_json)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return 400, "body"
    return UNKNOWN if isinstance(value, dict) else (422, "body")


valid_cases = st.tuples(good_payloads, st.booleans()).map(
    lambda t: Case("valid, raw UTF-8" if t[1] else "valid", _encode(*t), ACCEPTED)
)
broken_cases = st.one_of(
    # external_id
    _without(("external_id",), 422, "external_id", "external_id: missing"),
    _with("external_id", non_string, 422, "not a string"),
    _with("external_id", blank, 422, "blank"),
    _with("external_id", long_id, 422, "over 255 characters"),
    _with("external_id", with_nul, 422, "NUL"),
    _with("external_id", with_surrogate, 422, "lone surrogate", either_encoding=True),
    # content
    _without(("content_text", "content_image", "content_video"), 422, "content_text", "no content"),
    _with("content_text", present_non_string, 422, "not a string"),
    _with("content_text", with_nul, 422, "NUL"),
    _with("content_text", with_surrogate, 422, "lone surrogate", either_encoding=True),
    _with(
        "content_text",
        st.builds(lambda: "x" * (django_settings.INTAKE_MAX_TEXT_CHARS + 1)),
        413,
        "too long",
    ),
    _bad_media("content_image", BAD_IMAGES),
    _bad_media("content_video", BAD_VIDEOS),
    # metadata
    _with(
        "metadata",
        clean_json.filter(lambda v: v is not None and not isinstance(v, dict)),
        422,
        "not an object",
    ),
    _with("metadata", with_nul.map(lambda v: {"k": v}), 422, "NUL in a value"),
    _with("metadata", with_nul.map(lambda k: {k: 1}), 422, "NUL in a key"),
    _with(
        "metadata",
        with_surrogate.map(lambda v: {"k": v}),
        422,
        "lone surrogate",
        either_encoding=True,
    ),
    _with("metadata", st.deferred(_too_big_metadata), 413, "too large"),
    good_payloads.map(_big_number),
    # author
    _with(
        "author", present_non_string.filter(lambda v: not isinstance(v, dict)), 422, "not an object"
    ),
    _with("author", st.sampled_from(["u-1", ""]), 422, "a string, not an object"),
    _with_author("id", non_string, 422, "not a string (a number is not converted)"),
    _with_author("id", st.just(""), 422, "empty"),
    _with_author("id", long_id, 422, "over 255 characters"),
    _with_author("id", with_nul, 422, "NUL"),
    _with_author("name", present_non_string, 422, "not a string"),
    _with_author("name", st.just("n" * 256), 422, "over 255 characters"),
    _with_author(
        "url", st.sampled_from(["javascript:alert(1)", "data:text/html,x", "x"]), 422, "not http(s)"
    ),
    _with_author("url", present_non_string, 422, "not a string"),
    _with_author(
        "created_at", st.sampled_from(["yesterday", "2024-13-01", "0001-01-01"]), 422, "not a date"
    ),
    _with_author("created_at", present_non_string, 422, "not a string"),
    # the body as a whole
    st.tuples(good_payloads, st.integers(min_value=0)).map(lambda t: _truncated(*t)),
    good_payloads.map(lambda p: Case("body: not UTF-8", b"\xff" + _encode(p), (400, "body"))),
    _with("extra", st.sampled_from([math.nan, math.inf, -math.inf]), 400, "NaN or Infinity").map(
        lambda case: Case(case.kind, case.body, (400, "body"))
    ),
    clean_json.filter(lambda v: not isinstance(v, dict)).map(
        lambda v: Case("body: not an object", json.dumps(v).encode(), (422, "body"))
    ),
)
random_cases = random_bodies.map(lambda body: Case("random", body, _coarse(body)))
# A quarter valid, half broken, a quarter random (one_of would flatten the broken bodies'
# branches into its own, and valid bodies would be one draw in thirty).
cases = st.sampled_from([valid_cases, broken_cases, broken_cases, random_cases]).flatmap(
    lambda strategy: strategy
)

# What a real server can hand the app as a header value: latin-1 text without CR/LF.
header_text = st.text(
    alphabet=st.characters(min_codepoint=0x20, max_codepoint=0xFF) | st.just("\t"), max_size=40
)
timestamps = st.one_of(
    st.integers(min_value=-(10**300), max_value=10**300).map(str),
    st.integers(min_value=-1000, max_value=1000).map(lambda d: str(int(time.time()) + d)),
    header_text,
)
signatures = st.one_of(
    header_text,
    st.binary(min_size=32, max_size=32).map(lambda b: "v1," + base64.b64encode(b).decode()),
    st.lists(st.sampled_from(["v1,", "v2,abc", "v1,!!", "v1,AAAA", " "]), max_size=4).map(" ".join),
)
arbitrary_headers = st.fixed_dictionaries(
    {},
    optional={
        "webhook-id": header_text | st.text(alphabet="ab", min_size=250, max_size=300),
        "webhook-timestamp": timestamps,
        "webhook-signature": signatures,
    },
)
SIGNING = ["valid", "valid", "valid", "wrong_secret", "tampered", "stale", "arbitrary"]


def _sign(secret: str, body: bytes, **kw) -> dict:
    """The reference package signs text; bodies that are not UTF-8 are signed by hand (not
    with the app's own signing code, which the app's verifier would agree with anyway)."""
    try:
        body.decode()
    except UnicodeDecodeError:
        msg_id, now = f"msg_{uuid.uuid4().hex}", int(kw.get("timestamp") or time.time())
        return {
            "webhook-id": msg_id,
            "webhook-timestamp": str(now),
            "webhook-signature": sign_by_hand(secret, msg_id, now, body),
        }
    return signed_headers(secret, body, **kw)


OTHER_SECRET = "whsec_" + base64.b64encode(b"another source's secret, 32 b!!").decode()


def _headers(mode: str, source, body: bytes, arbitrary: dict) -> dict:
    if mode == "valid":
        return _sign(source._secret, body)
    if mode == "wrong_secret":
        return _sign(OTHER_SECRET, body)
    if mode == "tampered":
        return _sign(source._secret, body + b" ")
    if mode == "stale":
        return _sign(source._secret, body, timestamp=time.time() - 3600)
    return arbitrary


def _assert_json_error(response):
    assert response["Content-Type"] == "application/json", response.content[:200]
    body = response.json()
    assert set(body) == {"error", "field"}, body
    assert isinstance(body["error"], str) and body["error"]
    assert body["field"] is None or isinstance(body["field"], str)


# --- the property ---------------------------------------------------------------------------


def stored_rows() -> int:
    return Item.objects.count() + ItemRevision.objects.count()


@FUZZ
@given(
    case=cases,
    mode=st.sampled_from(SIGNING),
    arbitrary=arbitrary_headers,
    active=st.sampled_from([True, True, True, False]),
    known_slug=st.sampled_from([True, True, True, False]),
)
def test_the_webhook_never_fails_and_stores_only_valid_signed_items(
    client, source, settings, case, mode, arbitrary, active, known_slug
):
    body = case.body
    settings.ZENTROPI_API_KEY = ""  # belt and braces: on-commit labeling never runs here anyway
    if source.active != active:
        source.active = active
        source.save(update_fields=["active"])
    slug = source.slug if known_slug else "no-such-source"
    headers = _headers(mode, source, body, arbitrary)
    before = stored_rows()

    response = client.post(
        f"/webhooks/{slug}/", data=body, content_type="application/json", headers=headers
    )

    status = response.status_code
    stored = stored_rows() - before  # a new item, or a new revision of an edited one
    event(f"{mode} -> {status}")
    assert status < 500
    assert status in {200, 202, 400, 401, 403, 404, 413, 415, 422}, status
    assert stored == (1 if status == 202 else 0)
    if status >= 400:
        _assert_json_error(response)
    else:
        answer = response.json()
        assert set(answer) == {"id", "revision", "status"}
        assert Item.objects.filter(pk=answer["id"], revision=answer["revision"]).exists()

    if not known_slug:
        assert status == 404
        return
    if mode != "valid":
        # Nothing about the body leaks before the signature is checked.
        assert status in {400, 401}, (status, response.content)
        return
    if not active:
        assert status == 403
        return
    event(f"intake: {case.kind}")
    if case.expected is ACCEPTED or (case.expected == UNKNOWN and status < 400):
        assert status in {200, 202}, (case, response.content)
        item = Item.objects.get(pk=response.json()["id"])
        assert item.source_id == source.pk
    elif case.expected == UNKNOWN:
        assert response.json()["field"] in FIELDS, (case, response.content)
    else:
        assert (status, response.json()["field"]) == case.expected, (case, response.content)


@FUZZ
@given(case=cases)
def test_every_acceptable_body_once_signed_is_stored_exactly_once(client, source, case):
    body = case.body
    event(f"intake: {case.kind}")
    first = client.post(
        f"/webhooks/{source.slug}/",
        data=body,
        content_type="application/json",
        headers=_sign(source._secret, body),
    )
    if case.expected == UNKNOWN and first.status_code >= 400:
        _assert_json_error(first)
        assert first.json()["field"] in FIELDS
        return
    if case.expected not in (ACCEPTED, UNKNOWN):
        assert (first.status_code, first.json()["field"]) == case.expected, (case, first.content)
        _assert_json_error(first)
        return
    assert first.status_code in {200, 202}, (case, first.content)
    external_id = json.loads(body)["external_id"]
    assert Item.objects.filter(source=source, external_id=external_id).count() == 1
    again = client.post(
        f"/webhooks/{source.slug}/",
        data=body,
        content_type="application/json",
        headers=_sign(source._secret, body),
    )
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]


# --- 500s found by fuzzing, fixed and pinned ------------------------------------------------------


def _post_signed(client, source, body: bytes):
    client.raise_request_exception = False
    return client.post(
        f"/webhooks/{source.slug}/",
        data=body,
        content_type="application/json",
        headers=_sign(source._secret, body),
    )


def _post_headers(client, source, headers: dict):
    client.raise_request_exception = False
    return client.post(
        f"/webhooks/{source.slug}/", data=b"{}", content_type="application/json", headers=headers
    )


KNOWN_BAD_BODIES = {
    # Each of these was a 500 before it was fixed:
    # RecursionError from json.loads in intake.parse_body.
    "deeply nested JSON": b"[" * 100_000 + b"]" * 100_000,
    # IntegrityError (SQLite JSON_VALID check) / DataError (PostgreSQL jsonb) on insert.
    "NaN in metadata": b'{"external_id": "n", "content_text": "x", "metadata": {"v": NaN}}',
    # UnicodeEncodeError in the item lookup (services._existing).
    "lone surrogate in external_id": b'{"external_id": "\\ud800", "content_text": "x"}',
    # UnicodeEncodeError in IntakePayload.content_hash.
    "lone surrogate in content_text": b'{"external_id": "s", "content_text": "\\ud800"}',
    # Accepted on SQLite, DataError (500) on PostgreSQL: text fields cannot hold NUL.
    "NUL in external_id": b'{"external_id": "a\\u0000b", "content_text": "x"}',
    # Accepted on SQLite, DataError (500) on PostgreSQL: jsonb refuses a lone surrogate.
    "lone surrogate in metadata": b'{"external_id": "m", "content_text": "x", '
    b'"metadata": {"k": "\\udfff"}}',
}


@pytest.mark.parametrize("name", sorted(KNOWN_BAD_BODIES))
def test_known_bad_bodies_are_refused_with_a_json_4xx(client, source, name):
    response = _post_signed(client, source, KNOWN_BAD_BODIES[name])
    assert 400 <= response.status_code < 500
    _assert_json_error(response)
    assert Item.objects.count() == 0


@pytest.mark.parametrize("timestamp", ["9" * 400, str(-(10**309))])
def test_a_timestamp_beyond_float_range_is_a_400_or_401(client, source, timestamp):
    response = _post_headers(
        client,
        source,
        {"webhook-id": "msg_1", "webhook-timestamp": timestamp, "webhook-signature": "v1,AAAA"},
    )
    assert response.status_code in {400, 401}
    _assert_json_error(response)


# --- the appeals intake ---------------------------------------------------------------------

appeal_like = st.fixed_dictionaries(
    {},
    optional={
        "appeal_id": st.sampled_from(["a-1", "a-2"]) | external_ids,
        "external_id": st.sampled_from(["removed-1", "unknown"]) | external_ids,
        "account_action_id": st.sampled_from(["ACTION", 10**30, -1, 0, True]) | json_values,
        "statement": any_text | json_values,
    },
)


def _appealable(source) -> int:
    """An item of the source whose current decision is a removal, and an account action of
    the source (the action's id): made once per test, kept across its examples."""
    action = AccountAction.objects.filter(source=source).first()
    if action is not None:
        return action.pk
    item = Item.objects.create(
        source=source,
        external_id="removed-1",
        webhook_id="msg-removed-1",
        content_text="x",
        content_hash="h",
        status=Item.Status.FLAGGED,
        queue_score=0.9,
    )
    decision_record(
        item=item, reviewer=UserFactory(), action="remove", reason_id=reason_id("remove")
    )
    author = Author.objects.create(source=source, external_id="u-1")
    action = AccountAction.objects.create(
        source=source, author=author, action="warn", active_strikes=3, decision_ids=[]
    )
    return action.pk


@FUZZ
@given(
    payload=appeal_like,
    raw=st.binary(max_size=64) | st.just(b"[" * 5000),
    use_raw=st.sampled_from([False, False, False, True]),
    mode=st.sampled_from(SIGNING),
    arbitrary=arbitrary_headers,
)
def test_the_appeals_webhook_never_fails_and_stores_only_valid_signed_appeals(
    client, source, payload, raw, use_raw, mode, arbitrary
):
    action_id = _appealable(source)
    if payload.get("account_action_id") == "ACTION":
        payload = {**payload, "account_action_id": action_id}
    body = raw if use_raw else _encode(payload)
    headers = _headers(mode, source, body, arbitrary)
    before = Appeal.objects.count()
    client.raise_request_exception = False
    response = client.post(
        f"/webhooks/{source.slug}/appeals/",
        data=body,
        content_type="application/json",
        headers=headers,
    )
    status = response.status_code
    event(f"appeal {mode} -> {status}")
    assert status in {200, 202, 400, 401, 404, 409, 413, 422}, (status, response.content)
    assert Appeal.objects.count() - before == (1 if status == 202 else 0)
    if status >= 400:
        _assert_json_error(response)
    else:
        answer = response.json()
        assert set(answer) == {"id", "status"}
        assert Appeal.objects.filter(pk=answer["id"], source=source).exists()
    if mode != "valid":
        assert status in {400, 401}, (status, response.content)


@pytest.mark.parametrize("name", sorted(KNOWN_BAD_BODIES))
def test_known_bad_bodies_are_refused_by_the_appeals_webhook_too(client, source, name):
    client.raise_request_exception = False
    body = KNOWN_BAD_BODIES[name]
    response = client.post(
        f"/webhooks/{source.slug}/appeals/",
        data=body,
        content_type="application/json",
        headers=_sign(source._secret, body),
    )
    assert 400 <= response.status_code < 500
    _assert_json_error(response)
    assert not Appeal.objects.exists()


# --- the report webhook (POST /webhooks/<slug>/reports/) ---------------------------------------

REPORT_FIELDS = FIELDS | {"report_id", "reason", "reporter", "reporter.id", "comment"}
KNOWN_ITEM = "known-item"
good_reports = st.fixed_dictionaries(
    {
        "report_id": clean_text.filter(str.strip),
        "external_id": st.just(KNOWN_ITEM),
        "reason": st.text(
            st.characters(codec="utf-8", exclude_characters="\x00"), max_size=100
        ).filter(str.strip),
    },
    optional={
        "reporter": st.none() | st.fixed_dictionaries({"id": clean_text.filter(bool)}),
        "comment": st.none() | clean_text,
        "extra": clean_json,
    },
)
# A report of an unknown item that carries the item: the item is created with it.
good_reports_with_items = st.tuples(good_reports, good_payloads).map(
    lambda t: {**t[1], **t[0], "external_id": t[1]["external_id"]}
)


def _report_with(field: str, values, status: int, kind: str):
    return st.tuples(good_reports, values).map(
        lambda t: Case(f"{field}: {kind}", _encode({**t[0], field: t[1]}), (status, field))
    )


report_cases = st.one_of(
    good_reports.map(lambda r: Case("report: valid", _encode(r), ACCEPTED)),
    good_reports_with_items.map(lambda r: Case("report: valid with item", _encode(r), ACCEPTED)),
    good_reports.map(
        lambda r: Case(
            "report: unknown item, no content",
            _encode({**r, "external_id": "unknown-item"}),
            (404, "external_id"),
        )
    ),
    _report_with("report_id", non_string, 422, "not a string"),
    _report_with("report_id", blank, 422, "blank"),
    _report_with("report_id", long_id, 422, "over 255 characters"),
    _report_with("report_id", with_nul, 422, "NUL"),
    _report_with("reason", non_string, 422, "not a string"),
    _report_with("reason", st.text(alphabet="ab", min_size=101, max_size=120), 422, "too long"),
    _report_with("reason", with_surrogate, 422, "lone surrogate"),
    _report_with("external_id", non_string, 422, "not a string"),
    _report_with(
        "reporter",
        present_non_string.filter(lambda v: not isinstance(v, dict)),
        422,
        "not an object",
    ),
    _report_with("comment", present_non_string, 422, "not a string"),
    _report_with("comment", with_nul, 422, "NUL"),
    st.tuples(good_reports, non_string).map(
        lambda t: Case(
            "reporter.id: not a string",
            _encode({**t[0], "reporter": {"id": t[1]}}),
            (422, "reporter.id"),
        )
    ),
    st.tuples(good_reports_with_items, present_non_string).map(
        lambda t: Case(
            "report: item's content_text not a string",
            _encode({**t[0], "content_text": t[1]}),
            (422, "content_text"),
        )
    ),
    st.tuples(good_reports, random_bodies).map(lambda t: Case("random", t[1], _coarse(t[1]))),
    st.tuples(good_reports, st.dictionaries(any_text, json_values, max_size=6)).map(
        lambda t: Case("random object", _encode({**t[0], **t[1]}, True), UNKNOWN)
    ),
)


def report_rows() -> tuple[int, int]:
    return Report.objects.count(), Item.objects.count()


@FUZZ
@given(case=report_cases, mode=st.sampled_from(SIGNING), arbitrary=arbitrary_headers)
def test_the_report_webhook_never_fails_and_stores_only_valid_signed_reports(
    client, source, case, mode, arbitrary
):
    Item.objects.get_or_create(
        source=source,
        external_id=KNOWN_ITEM,
        defaults={"webhook_id": "msg_known", "content_text": "x", "content_hash": "k" * 64},
    )
    # Each example on its own: a report_id stored by an earlier one would answer 200.
    Report.objects.all().delete()
    body = case.body
    headers = _headers(mode, source, body, arbitrary)
    before = report_rows()
    response = client.post(
        f"/webhooks/{source.slug}/reports/",
        data=body,
        content_type="application/json",
        headers=headers,
    )
    status = response.status_code
    reports, items = (a - b for a, b in zip(report_rows(), before, strict=True))
    event(f"report {mode} -> {status}")
    assert status < 500
    assert status in {200, 202, 400, 401, 404, 409, 413, 415, 422}, status
    assert reports == (1 if status == 202 else 0)
    assert items in ((0, 1) if status == 202 else (0,))
    if status >= 400:
        _assert_json_error(response)
        assert response.json()["field"] in REPORT_FIELDS | {
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
        }
    else:
        answer = response.json()
        assert set(answer) == {"id", "item", "status"}
        assert Report.objects.filter(pk=answer["id"], item_id=answer["item"]).exists()
    if mode != "valid":
        assert status in {400, 401}, (status, response.content)
        return
    event(f"report: {case.kind}")
    if case.expected is ACCEPTED:
        assert status in {200, 202}, (case, response.content)
    elif case.expected != UNKNOWN:
        assert (status, response.json()["field"]) == case.expected, (case, response.content)
