import base64
import io
import json
import threading
import time
from datetime import timedelta

import pytest
import requests
from django.db import connection
from PIL import Image

from labelers.models import Label
from moderation.models import Item
from moderation.services.sources import source_rotate_secret
from moderation.tests.factories import SourceFactory
from moderation.tests.media import data_url, mp4_bytes, png_bytes, png_data_url
from testkit.processes import run_in_threads
from testkit.signing import signed_headers

pytestmark = pytest.mark.django_db


def counts():
    return Item.objects.count(), Label.objects.count()


def test_a_signed_webhook_is_accepted_with_202(fake_api, post_webhook, source):
    response = post_webhook(source, {"external_id": "p1", "content_text": "hello"})
    assert response.status_code == 202
    body = response.json()
    item = Item.objects.get(pk=body["id"])
    assert item.external_id == "p1" and item.source == source
    assert body["status"] == "received"


def test_the_same_webhook_id_returns_the_existing_item(fake_api, post_webhook, source):
    payload = {"external_id": "p1", "content_text": "hello"}
    first = post_webhook(source, payload, msg_id="msg_1")
    again = post_webhook(source, payload, msg_id="msg_1")
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert counts() == (1, 1)


def test_the_same_external_id_returns_the_existing_item(fake_api, post_webhook, source):
    first = post_webhook(source, {"external_id": "p1", "content_text": "hello"})
    again = post_webhook(source, {"external_id": "p1", "content_text": "changed"})
    assert again.json()["id"] == first.json()["id"]
    assert Item.objects.count() == 1


def test_the_same_external_id_in_another_source_is_another_item(fake_api, post_webhook, db):
    a, b = SourceFactory(), SourceFactory()
    first = post_webhook(a, {"external_id": "p1", "content_text": "hello"})
    second = post_webhook(b, {"external_id": "p1", "content_text": "hello"})
    assert first.json()["id"] != second.json()["id"]


def test_it_rejects_a_bad_signature(post_webhook, source):
    body = json.dumps({"external_id": "p1", "content_text": "x"}).encode()
    headers = signed_headers(source._secret, body)
    headers["webhook-signature"] = "v1," + base64.b64encode(b"x" * 32).decode()
    response = post_webhook(source, None, raw=body, headers=headers)
    assert response.status_code == 401
    assert response.json()["field"] == "webhook-signature"
    assert counts() == (0, 0)


def test_it_rejects_a_body_changed_after_signing(post_webhook, source):
    body = json.dumps({"external_id": "p1", "content_text": "x"}).encode()
    headers = signed_headers(source._secret, body)
    response = post_webhook(source, None, raw=body.replace(b"x", b"y"), headers=headers)
    assert response.status_code == 401


def test_any_one_of_several_signatures_may_match(fake_api, post_webhook, source):
    body = json.dumps({"external_id": "p1", "content_text": "x"}).encode()
    headers = signed_headers(source._secret, body)
    headers["webhook-signature"] = "v1,bm9wZQ== v2,zzz " + headers["webhook-signature"]
    assert post_webhook(source, None, raw=body, headers=headers).status_code == 202


# Timestamps are whole seconds: keep 2 s clear of the 300 s edge so flooring cannot flip them.
@pytest.mark.parametrize("offset", [-298, 298])
def test_it_accepts_a_timestamp_within_five_minutes(fake_api, post_webhook, source, offset):
    response = post_webhook(
        source, {"external_id": "p1", "content_text": "x"}, timestamp=time.time() + offset
    )
    assert response.status_code == 202


@pytest.mark.parametrize("offset", [-302, 302])
def test_it_rejects_a_timestamp_over_five_minutes_away(post_webhook, source, offset):
    response = post_webhook(
        source, {"external_id": "p1", "content_text": "x"}, timestamp=time.time() + offset
    )
    assert response.status_code == 401
    assert response.json()["field"] == "webhook-timestamp"


@pytest.mark.parametrize("header", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_is_a_400_naming_it(post_webhook, source, header):
    body = json.dumps({"external_id": "p1", "content_text": "x"}).encode()
    headers = signed_headers(source._secret, body)
    del headers[header]
    response = post_webhook(source, None, raw=body, headers=headers)
    assert response.status_code == 400
    assert response.json()["field"] == header


def test_an_unknown_source_is_404(client, db):
    response = client.post("/webhooks/nope/", data=b"{}", content_type="application/json")
    assert response.status_code == 404
    assert response.json() == {"error": "unknown source", "field": "slug"}


def test_a_deactivated_source_is_refused_and_stores_nothing(post_webhook, source):
    source.active = False
    source.save()
    response = post_webhook(source, {"external_id": "p1", "content_text": "x"})
    assert response.status_code == 403
    assert counts() == (0, 0)


def test_a_rotated_secret_keeps_working_during_the_grace_period(fake_api, post_webhook, source):
    old = source._secret
    new = source_rotate_secret(source=source, grace=timedelta(hours=1))
    assert (
        post_webhook(
            source,
            None,
            raw=b'{"external_id":"a","content_text":"x"}',
            headers=signed_headers(old, b'{"external_id":"a","content_text":"x"}'),
        ).status_code
        == 202
    )
    assert (
        post_webhook(
            source,
            None,
            raw=b'{"external_id":"b","content_text":"x"}',
            headers=signed_headers(new, b'{"external_id":"b","content_text":"x"}'),
        ).status_code
        == 202
    )
    source.previous_secret_expires_at = source.previous_secret_expires_at - timedelta(hours=2)
    source.save()
    assert (
        post_webhook(
            source,
            None,
            raw=b'{"external_id":"c","content_text":"x"}',
            headers=signed_headers(old, b'{"external_id":"c","content_text":"x"}'),
        ).status_code
        == 401
    )


@pytest.mark.parametrize(
    "payload, status, field",
    [
        ({"content_text": "x"}, 422, "external_id"),
        ({"external_id": 5, "content_text": "x"}, 422, "external_id"),
        ({"external_id": "x" * 256, "content_text": "x"}, 422, "external_id"),
        ({"external_id": "a"}, 422, "content_text"),
        ({"external_id": "a", "content_text": ""}, 422, "content_text"),
        ({"external_id": "a", "content_text": ["x"]}, 422, "content_text"),
        ({"external_id": "a", "content_text": "x", "metadata": [1]}, 422, "metadata"),
        (
            {"external_id": "a", "content_text": "x", "metadata": {"k": "v" * 20000}},
            413,
            "metadata",
        ),
        ({"external_id": "a", "content_image": 12}, 422, "content_image"),
        ({"external_id": "a", "content_image": "https://example.com/x.png"}, 422, "content_image"),
        ({"external_id": "a", "content_image": "data:image/png;base64,@@@"}, 422, "content_image"),
        (
            {"external_id": "a", "content_image": "data:image/svg+xml;base64,PHN2Zz4="},
            415,
            "content_image",
        ),
        ({"external_id": "a", "content_video": "data:video/mp4;base64,AAAA"}, 422, "content_video"),
        ({"external_id": "a", "content_video": "data:video/avi;base64,AAAA"}, 415, "content_video"),
        ([1, 2], 422, "body"),
        ("a string", 422, "body"),
    ],
)
def test_a_broken_field_is_refused_naming_it_and_nothing_is_stored(
    post_webhook, source, payload, status, field
):
    response = post_webhook(source, payload)
    assert response.status_code == status, response.content
    assert response.json()["field"] == field
    assert counts() == (0, 0)


def test_a_number_out_of_range_in_metadata_is_refused(post_webhook, source):
    raw = b'{"external_id": "a", "content_text": "x", "metadata": {"x": 1e400}}'
    response = post_webhook(source, None, raw=raw)
    assert response.status_code == 422 and response.json()["field"] == "metadata"
    assert counts() == (0, 0)


def test_malformed_json_is_a_400(post_webhook, source):
    response = post_webhook(source, None, raw=b'{"external_id": ')
    assert response.status_code == 400
    assert response.json()["field"] == "body"


def test_unknown_fields_are_ignored(fake_api, post_webhook, source):
    response = post_webhook(source, {"external_id": "a", "content_text": "x", "extra": {"y": 1}})
    assert response.status_code == 202


def test_an_oversize_body_is_413_before_it_is_read(post_webhook, source, settings):
    settings.INTAKE_MAX_BODY_BYTES = 1000
    response = post_webhook(source, {"external_id": "a", "content_text": "x" * 2000})
    assert response.status_code == 413
    assert counts() == (0, 0)


def test_an_image_over_5mb_is_413(post_webhook, source):
    huge = "data:image/png;base64," + "A" * (7 * 1024 * 1024)
    response = post_webhook(source, {"external_id": "a", "content_image": huge})
    assert response.status_code == 413
    assert response.json()["field"] == "content_image"


def test_a_decompression_bomb_is_refused(post_webhook, source):
    buffer = io.BytesIO()
    Image.new("1", (12000, 12000)).save(buffer, "PNG")  # tiny file, 144 megapixels
    response = post_webhook(
        source, {"external_id": "a", "content_image": data_url(buffer.getvalue(), "image/png")}
    )
    assert response.status_code == 422
    assert "pixels" in response.json()["error"]
    assert counts() == (0, 0)


def test_an_image_whose_bytes_do_not_match_its_type_is_refused(post_webhook, source):
    response = post_webhook(
        source, {"external_id": "a", "content_image": data_url(png_bytes(), "image/jpeg")}
    )
    assert response.status_code == 422
    assert response.json()["field"] == "content_image"


def test_a_truncated_image_is_refused(post_webhook, source):
    raw = png_bytes(size=(200, 200))
    response = post_webhook(
        source, {"external_id": "a", "content_image": data_url(raw[: len(raw) // 2], "image/png")}
    )
    assert response.status_code == 422


def test_an_image_is_stored_as_a_file_with_its_hash(fake_api, post_webhook, source):
    response = post_webhook(source, {"external_id": "a", "content_image": png_data_url()})
    assert response.status_code == 202
    item = Item.objects.get()
    assert item.content_image.name.startswith("images/") and item.content_image_type == "image/png"
    with item.content_image.open("rb") as handle:
        assert handle.read() == png_bytes()
    assert len(item.content_hash) == 64


def test_a_short_mp4_is_accepted_and_a_long_one_refused(fake_api, post_webhook, source):
    ok = post_webhook(
        source, {"external_id": "a", "content_video": data_url(mp4_bytes(10), "video/mp4")}
    )
    assert ok.status_code == 202
    long = post_webhook(
        source, {"external_id": "b", "content_video": data_url(mp4_bytes(61), "video/mp4")}
    )
    assert long.status_code == 422 and "60" in long.json()["error"]


@pytest.mark.django_db(transaction=True)
def test_two_racing_identical_requests_make_one_item(fake_api, source, live_server):
    if connection.vendor == "sqlite":
        pass  # SQLite serialises writers; the unique constraints still decide the race.
    body = json.dumps({"external_id": "race", "content_text": "hello"}).encode()
    headers = signed_headers(source._secret, body, msg_id="msg_race")
    start = threading.Barrier(8)

    def send(_):
        start.wait(timeout=30)  # all eight leave together
        r = requests.post(
            f"{live_server.url}/webhooks/{source.slug}/", data=body, headers=headers, timeout=30
        )
        is_json = r.headers.get("Content-Type") == "application/json"
        return r.status_code, (r.json().get("id") if is_json else r.text[:200])

    # Every answer counts, not only the successful ones: one creates, seven find it.
    answers = run_in_threads(send, range(8), threads=8, timeout=90)
    assert sorted(status for status, _ in answers) == [200] * 7 + [202], answers
    item = Item.objects.get()
    assert {item_id for _, item_id in answers} == {item.pk}
