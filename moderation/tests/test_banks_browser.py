"""Hash banks in a real browser (issue 28): a reviewer removes an image and banks it by key;
the same picture sent again, re-encoded and resized, is removed by the system with no paid
label call, and the product receives that decision. Setup: testkit/browser.py."""

import io
import json
import random
import urllib.request

from PIL import Image, ImageDraw

from labelers.tasks import label_sweep_task
from moderation.models import Bank, BankMatch, Decision, Item
from moderation.tests.factories import SourceFactory, UserFactory
from moderation.tests.media import data_url
from testkit.browser import BROWSER_TEST_MARKS, keys, open_page, shot
from testkit.receiver import Receiver
from testkit.signing import signed_headers

pytestmark = BROWSER_TEST_MARKS


def picture() -> Image.Image:
    rng = random.Random(41)
    image = Image.new("RGB", (480, 360), (70, 70, 70))
    draw = ImageDraw.Draw(image)
    for _ in range(14):
        x, y, r = rng.randrange(480), rng.randrange(360), rng.randrange(20, 140)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rng.randrange(256) for _ in "rgb"))
    return image


def send(live_server, source, external_id: str, text: str, raw: bytes, mime: str) -> int:
    body = json.dumps(
        {"external_id": external_id, "content_text": text, "content_image": data_url(raw, mime)}
    ).encode()
    request = urllib.request.Request(
        f"{live_server.url}/webhooks/{source.slug}/",
        data=body,
        headers={"Content-Type": "application/json", **signed_headers(source._secret, body)},
    )
    with urllib.request.urlopen(request) as response:
        item_id = json.load(response)["id"]
    label_sweep_task()
    return item_id


def test_a_banked_image_sent_again_re_encoded_is_removed_without_a_paid_call(
    browser, live_server, fake_api, settings
):
    settings.CALLBACK_ALLOW_HTTP = True
    settings.CALLBACK_ALLOW_PRIVATE = True
    receiver = Receiver(answers=[200, 200]).start()
    try:
        source = SourceFactory(callback_url=receiver.url)
        bank = Bank.objects.create(name="Known spam images", action="remove")
        png = io.BytesIO()
        picture().save(png, "PNG")
        first = send(live_server, source, "img-1", "I hate this", png.getvalue(), "image/png")
        assert Item.objects.get(pk=first).status == Item.Status.FLAGGED
        page = open_page(browser, live_server, UserFactory())
        keys(page, "n")
        page.wait_for_url(f"**/items/{first}/")
        keys(page, "2", "r")
        page.wait_for_url(f"{live_server.url}/")

        page.goto(f"{live_server.url}/items/{first}/")
        page.wait_for_selector("#bank-this")
        shot(page, "bank-this")
        keys(page, "b")
        page.wait_for_selector(".messages")
        assert set(bank.hashes.values_list("type", flat=True)) == {"md5", "pdq", "text_sha256"}

        calls = len(fake_api.calls)
        jpeg = io.BytesIO()
        picture().resize((300, 225)).save(jpeg, "JPEG", quality=75)
        again = send(live_server, source, "img-2", "look at this", jpeg.getvalue(), "image/jpeg")

        item = Item.objects.get(pk=again)
        assert item.status == Item.Status.DECIDED
        decision = Decision.objects.get(item=item)
        assert decision.automatic and decision.action == "remove"
        assert BankMatch.objects.get(item=item, acted=True).type == "pdq"
        assert len(fake_api.calls) == calls  # no paid call for the repeat
        sent = [json.loads(r.body)["data"] for r in receiver.received]
        assert [(d["external_id"], d["automatic"]) for d in sent] == [
            ("img-1", False),
            ("img-2", True),
        ]
        assert "Known spam images" in sent[1]["reason"]
    finally:
        receiver.stop()
