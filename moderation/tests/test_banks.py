"""Hash banks (issue 28): items matched at the dispatch before any paid label call; the first
bank by precedence (allow > remove > review) decides; CSV import/export; retroactive matches."""

import io
import json
import random

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.urls import reverse
from PIL import Image, ImageDraw

from labelers.dispatch import reevaluation_create, reevaluation_run
from moderation import hashing
from moderation.callbacks.deliveries import callback_body
from moderation.models import (
    Bank,
    BankHash,
    BankMatch,
    CallbackDelivery,
    Decision,
    Item,
    ItemHash,
    MediaReveal,
)
from moderation.pdq_index import PdqIndex, as_u64, brute_force, hex_to_words
from moderation.services import banks
from moderation.services.claims import item_claim
from moderation.services.decisions import decision_record
from moderation.tests.factories import SourceFactory, UserFactory, reason_id
from moderation.tests.media import data_url
from testkit.signing import signed_headers

pytestmark = pytest.mark.django_db


def picture(seed: int, size=(400, 300)) -> Image.Image:
    """A synthetic photo-like picture: coloured discs on a plain ground, one layout per seed."""
    rng = random.Random(seed)
    image = Image.new("RGB", size, (rng.randrange(256),) * 3)
    draw = ImageDraw.Draw(image)
    for _ in range(12):
        x, y, r = rng.randrange(size[0]), rng.randrange(size[1]), rng.randrange(20, 120)
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(rng.randrange(256) for _ in "rgb"))
    return image


def encoded(image: Image.Image, fmt="PNG", **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def bank(name, action, *hashes, **fields) -> Bank:
    made = Bank.objects.create(name=name, action=action, **fields)
    BankHash.objects.bulk_create([BankHash(bank=made, type=t, hash=h) for t, h in hashes])
    banks.bank_touch(made.pk)
    return made


def send(post_webhook, source, external_id, **content):
    response = post_webhook(source, {"external_id": external_id, **content})
    assert response.status_code in (200, 201, 202), response.content
    return Item.objects.get(source=source, external_id=external_id)


def test_text_normalisation_ignores_case_spacing_and_compatibility_forms():
    same = hashing.text_sha256("Buy  CHEAP\tpills\n now ")
    assert same == hashing.text_sha256("buy cheap pills now")
    assert same == hashing.text_sha256("ｂｕｙ cheap pills now")  # fullwidth, NFKC
    assert same != hashing.text_sha256("buy cheap pills later")


def test_an_exact_md5_match_removes_the_item_without_a_label_call(fake_api, post_webhook):
    source = SourceFactory(callback_url="https://product.example/callback")
    raw = encoded(picture(1))
    spam = bank("Known spam images", "remove", ("md5", hashing.md5(raw)))

    item = send(post_webhook, source, "p1", content_image=data_url(raw, "image/png"))

    assert item.status == Item.Status.DECIDED
    decision = Decision.objects.get(item=item)
    assert decision.automatic and decision.action == "remove"
    assert "Known spam images" in decision.reason
    assert fake_api.calls == []  # no paid call, and no label row either
    assert not item.labels.exists()
    match = BankMatch.objects.get(item=item)
    assert (match.bank, match.type, match.distance, match.acted) == (spam, "md5", 0, True)
    # Sent back to the product like any other decision.
    delivery = CallbackDelivery.objects.get(decision=decision)
    sent = json.loads(callback_body(decision, delivery.source))["data"]
    assert sent["automatic"] is True and sent["action"] == "remove"
    assert "Known spam images" in sent["reason"]
    statement = sent["statement_of_reasons"]
    assert statement["automated_decision"] and statement["automated_detection"]
    assert statement["facts"][0]["bank_matches"] == [
        {"bank": "Known spam images", "hash_type": "md5", "distance": 0}
    ]


def test_the_same_picture_re_encoded_as_jpeg_and_resized_matches_by_pdq(
    fake_api, post_webhook, client
):
    source = SourceFactory()
    original = picture(7)
    pdq, _ = hashing.pdq(encoded(original))
    review = bank("Reported memes", "review", ("pdq", pdq))
    resized = encoded(original.resize((200, 150)), "JPEG", quality=70)
    assert hashing.md5(resized) != hashing.md5(encoded(original))

    item = send(post_webhook, source, "p2", content_image=data_url(resized, "image/jpeg"))

    match = BankMatch.objects.get(item=item)
    assert match.bank == review and match.type == "pdq"
    assert 0 < match.distance <= 31
    # To the queue at the top, marked with the bank, without a label call.
    assert item.status == Item.Status.FLAGGED and item.queue_score == 1.0
    assert fake_api.calls == []
    client.force_login(UserFactory(reviewer=True))
    assert "bank: Reported memes" in client.get(reverse("queue")).content.decode()


def test_a_different_picture_does_not_match_and_is_labeled_as_usual(fake_api, post_webhook):
    source = SourceFactory()
    pdq, _ = hashing.pdq(encoded(picture(7)))
    bank("Reported memes", "remove", ("pdq", pdq))

    item = send(
        post_webhook, source, "p3", content_image=data_url(encoded(picture(8)), "image/png")
    )

    assert not BankMatch.objects.filter(item=item).exists()
    assert item.status != Item.Status.DECIDED
    assert len(fake_api.calls) == 1
    assert item.hashes.filter(type="pdq").exists() and item.hashes.filter(type="md5").exists()


def test_precedence_allow_over_remove_over_review(fake_api, post_webhook):
    source = SourceFactory()
    text = "Free crypto, click here"
    digest = hashing.text_sha256(text)
    review = bank("B review", "review", ("text_sha256", digest))
    remove = bank("C remove", "remove", ("text_sha256", digest))

    removed = send(post_webhook, source, "t1", content_text=text)
    assert removed.status == Item.Status.DECIDED
    assert set(
        BankMatch.objects.filter(item=removed, acted=True).values_list("bank", flat=True)
    ) == {remove.pk}
    assert BankMatch.objects.filter(item=removed, bank=review, acted=False).exists()

    allow = bank("A allow", "allow", ("text_sha256", digest))
    allowed = send(post_webhook, source, "t2", content_text=text.upper())
    assert allowed.status == Item.Status.LABELED
    assert not allowed.decisions.exists()
    acted = BankMatch.objects.get(item=allowed, acted=True)
    assert acted.bank == allow
    assert BankMatch.objects.filter(item=allowed).count() == 3
    assert fake_api.calls == []


def test_an_allow_match_is_never_flagged_even_when_a_labeler_would_flag_it(fake_api, post_webhook):
    source = SourceFactory()
    text = "I will kill this bug today"  # the fake API flags "kill"
    flagged = send(post_webhook, source, "k0", content_text=text + " again")
    assert flagged.status == Item.Status.FLAGGED
    bank("Known good", "allow", ("text_sha256", hashing.text_sha256(text)))
    calls = len(fake_api.calls)

    item = send(post_webhook, source, "k1", content_text=text)

    assert item.status == Item.Status.LABELED and item.flagged_at is None
    assert len(fake_api.calls) == calls


def test_hashes_are_computed_once_per_revision(fake_api, post_webhook):
    source = SourceFactory()
    item = send(post_webhook, source, "e2", content_text="other words")  # no bank yet
    assert list(item.hashes.values_list("revision", "type")) == [(1, "text_sha256")]
    post_webhook(source, {"external_id": "e2", "content_text": "edited words"})
    item.refresh_from_db()
    assert sorted(item.hashes.values_list("revision", flat=True)) == [1, 2]


def test_csv_import_is_idempotent_and_round_trips(tmp_path, capsys):
    rows = [
        "type,hash,note",
        f"md5,{'a' * 32},first",
        f"pdq,{'0f' * 32},",
        f"text_sha256,{hashing.text_sha256('spam')},pasted spam",
    ]
    path = tmp_path / "bank.csv"
    path.write_text("\n".join(rows) + "\n")

    call_command("bank_import", "Imported", str(path), "--action", "remove")
    call_command("bank_import", "Imported", str(path), "--action", "remove")

    imported = Bank.objects.get(name="Imported")
    assert imported.action == "remove" and imported.hashes.count() == 3
    capsys.readouterr()
    call_command("bank_export", "Imported")
    assert capsys.readouterr().out.splitlines() == rows


def test_a_malformed_csv_names_each_bad_line_and_stores_nothing(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_text(
        "\n".join(
            [
                f"md5,{'a' * 32},fine",
                f"sha1,{'a' * 40},unknown type",
                f"md5,{'A' * 32},upper case",
                "pdq,abc",
                f"text_sha256,{'b' * 64},fine",
            ]
        )
    )
    with pytest.raises(CommandError) as raised:
        call_command("bank_import", "Bad", str(path), "--action", "review")
    message = str(raised.value)
    assert "line 2" in message and "line 3" in message and "line 4" in message
    assert "line 1" not in message and "line 5" not in message
    assert not Bank.objects.filter(name="Bad").exists()
    assert not BankHash.objects.exists()


def test_banking_an_item_matches_recent_items_retroactively(
    fake_api, post_webhook, django_capture_on_commit_callbacks
):
    source = SourceFactory()
    first = send(post_webhook, source, "r1", content_text="the same scam text")
    again = send(post_webhook, source, "r2", content_text="The same  scam text")
    decided = send(post_webhook, source, "r3", content_text="the same scam text!")
    assert first.status != Item.Status.DECIDED
    scam = Bank.objects.create(name="Scams", action="remove")

    added = banks.bank_item_add(bank=scam, item=first, revision=first.revision)
    assert [h.type for h in added] == ["text_sha256"]
    recorded = banks.bank_hashes_match_recent(bank_hash_ids=[h.pk for h in added])

    assert recorded == 2  # first and again; "…text!" is other text
    for item in (first, again):
        item.refresh_from_db()
        assert item.status == Item.Status.DECIDED
        assert BankMatch.objects.get(item=item, bank=scam).retroactive
    decided.refresh_from_db()
    assert decided.status != Item.Status.DECIDED
    # Idempotent: a second run records and decides nothing more.
    assert banks.bank_hashes_match_recent(bank_hash_ids=[h.pk for h in added]) == 0
    assert Decision.objects.filter(item=first).count() == 1


def test_the_pdq_index_finds_exactly_what_a_brute_force_scan_finds():
    rng = np.random.default_rng(3)
    stored = rng.integers(0, 256, size=(5000, 32), dtype=np.uint8)
    queries = []
    for row in rng.choice(len(stored), 40, replace=False):
        near = stored[row].copy()
        bits = np.unpackbits(near)
        flip = rng.choice(256, int(rng.integers(0, 40)), replace=False)
        bits[flip] ^= 1
        queries.append(np.packbits(bits).tobytes().hex())
    queries += [rng.integers(0, 256, 32, dtype=np.uint8).tobytes().hex() for _ in range(10)]
    hexes = [row.tobytes().hex() for row in stored]
    index = PdqIndex(hexes)
    u64 = as_u64(hex_to_words(hexes))
    found = 0
    for query in queries:
        for limit in (31, 20):
            expected = set(brute_force(u64, query, max_distance=limit).tolist())
            got = {position for position, _ in index.lookup(query, max_distance=limit)}
            assert got == expected
            found += len(expected)
    assert found > 0


def test_the_item_page_shows_each_match_and_a_restricted_banks_media_never_reaches_a_reviewer(
    fake_api, post_webhook, client
):
    source = SourceFactory()
    raw = encoded(picture(11))
    bank("Known abuse", "review", ("md5", hashing.md5(raw)), restricted=True)
    item = send(post_webhook, source, "x1", content_image=data_url(raw, "image/png"))
    assert item.status == Item.Status.FLAGGED
    client.force_login(UserFactory(reviewer=True))

    html = client.get(f"/items/{item.pk}/").content.decode()

    assert 'id="bank-matches"' in html and "Known abuse" in html
    assert 'id="media-restricted"' in html
    assert f"/items/{item.pk}/image/" not in html
    assert client.get(f"/items/{item.pk}/image/").status_code == 404
    assert not MediaReveal.objects.filter(item=item).exists()


def test_bank_this_on_a_removed_item_adds_its_hashes_and_matches_the_repeat(
    fake_api, post_webhook, client, django_capture_on_commit_callbacks
):
    source = SourceFactory()
    original = picture(21)
    first = send(post_webhook, source, "b1", content_image=data_url(encoded(original), "image/png"))
    reviewer = UserFactory(reviewer=True)
    decision_record(
        item=first, reviewer=reviewer, action="remove", reason_id=reason_id("remove"), revision=1
    )
    first.refresh_from_db()
    assert first.status == Item.Status.DECIDED
    spam = Bank.objects.create(name="Spam images", action="remove")
    client.force_login(reviewer)
    page = client.get(f"/items/{first.pk}/").content.decode()
    assert 'id="bank-this"' in page and "Spam images" in page

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/items/{first.pk}/bank/", {"bank": spam.pk, "revision": 1})

    assert response.status_code == 302
    assert set(spam.hashes.values_list("type", flat=True)) == {"md5", "pdq"}
    calls = len(fake_api.calls)
    again = encoded(original.resize((300, 225)), "JPEG", quality=80)
    repeat = send(post_webhook, source, "b2", content_image=data_url(again, "image/jpeg"))
    assert repeat.status == Item.Status.DECIDED
    assert repeat.decisions.get().automatic
    assert len(fake_api.calls) == calls


def test_an_imported_list_is_matched_against_recent_items_in_the_background(
    fake_api, post_webhook, tmp_path, django_capture_on_commit_callbacks
):
    """A list of more than _SCAN_AT_MOST PDQ hashes takes the indexed path of the retroactive
    match; the import command sends the task once the hashes are committed."""
    source = SourceFactory()
    original = picture(31)
    item = send(post_webhook, source, "i1", content_image=data_url(encoded(original), "image/png"))
    other = send(
        post_webhook, source, "i2", content_image=data_url(encoded(picture(32)), "image/png")
    )
    assert item.status != Item.Status.DECIDED
    pdq, _ = hashing.pdq(encoded(original.resize((320, 240)), "JPEG", quality=75))
    rng = np.random.default_rng(5)
    rows = [f"pdq,{rng.integers(0, 256, 32, dtype=np.uint8).tobytes().hex()}," for _ in range(80)]
    rows.append(f"pdq,{pdq},the one")
    path = tmp_path / "list.csv"
    path.write_text("\n".join(rows) + "\n")
    assert len(rows) > banks._SCAN_AT_MOST

    with django_capture_on_commit_callbacks(execute=True):
        call_command("bank_import", "Shared list", str(path), "--action", "remove")

    item.refresh_from_db()
    other.refresh_from_db()
    assert item.status == Item.Status.DECIDED and item.decisions.get().automatic
    match = BankMatch.objects.get(item=item)
    assert match.retroactive and match.acted and match.type == "pdq"
    assert other.status != Item.Status.DECIDED


def test_the_admin_imports_a_csv_reports_bad_lines_and_exports_it(client):
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    good = f"type,hash,note\nmd5,{'c' * 32},from the admin\n"
    bad = f"md5,{'c' * 32},\nmd5,not-hex,\n"

    page = client.post(
        "/admin/moderation/bank/import/",
        {"name": "Admin bank", "action": "review", "file": _upload("bad.csv", bad)},
    )
    assert page.status_code == 200
    assert "line 2" in page.content.decode() and not Bank.objects.exists()

    done = client.post(
        "/admin/moderation/bank/import/",
        {"name": "Admin bank", "action": "review", "file": _upload("good.csv", good)},
    )
    made = Bank.objects.get(name="Admin bank")
    assert done.status_code == 302 and made.hashes.count() == 1
    listing = client.get("/admin/moderation/bank/").content.decode()
    assert "Admin bank" in listing and "Import CSV" in listing
    exported = client.get(f"/admin/moderation/bank/{made.pk}/export/")
    assert exported.content.decode() == good


def _upload(name: str, text: str):
    return SimpleUploadedFile(name, text.encode(), content_type="text/csv")


def test_items_past_the_hashing_budget_wait_received_for_the_next_sweep(
    fake_api, client, dispatch, settings
):
    """With no budget each sweep hashes one item and leaves the rest received, unrouted;
    later sweeps take them in order, and every item is hashed and labeled once."""
    settings.BANK_HASH_BUDGET_SECONDS = 0
    source = SourceFactory()
    for n in range(3):
        body = json.dumps({"external_id": f"q{n}", "content_text": f"words {n}"}).encode()
        client.post(
            f"/webhooks/{source.slug}/",
            data=body,
            content_type="application/json",
            headers=signed_headers(source._secret, body),
        )
    dispatch()
    statuses = dict(Item.objects.values_list("external_id", "status"))
    assert statuses["q0"] != Item.Status.RECEIVED
    assert statuses["q1"] == statuses["q2"] == Item.Status.RECEIVED
    for _ in range(3):
        dispatch()
    assert not Item.objects.filter(status=Item.Status.RECEIVED).exists()
    assert ItemHash.objects.count() == 3
    assert len(fake_api.calls) == 3


def test_a_retroactive_match_leaves_an_item_a_reviewer_holds_to_them(fake_api, post_webhook):
    source = SourceFactory()
    item = send(post_webhook, source, "h1", content_text="I will kill the lights")  # flagged
    assert item.status == Item.Status.FLAGGED
    reviewer = UserFactory(reviewer=True)
    item_claim(item=item, reviewer=reviewer)
    scam = bank("Lights", "remove", ("text_sha256", hashing.text_sha256(item.content_text)))

    banks.bank_hashes_match_recent(bank_hash_ids=list(scam.hashes.values_list("id", flat=True)))

    item.refresh_from_db()
    assert item.status == Item.Status.FLAGGED and not item.decisions.exists()
    match = BankMatch.objects.get(item=item)
    assert match.retroactive and not match.acted


def test_the_dashboard_shows_matches_per_bank_and_the_label_calls_they_avoided(
    fake_api, post_webhook, client
):
    source = SourceFactory()  # routed to one labeler
    text = "Known copypasta"
    bank("Copypasta", "remove", ("text_sha256", hashing.text_sha256(text)))
    for n in range(3):
        send(post_webhook, source, f"c{n}", content_text=f"{text}  " + " " * n)
    assert fake_api.calls == []
    client.force_login(UserFactory(is_staff=True, is_superuser=True))

    html = client.get(reverse("manage_dashboard")).content.decode()

    row = html[html.index('id="banks"') :]
    assert '<th scope="row">Copypasta</th><td>remove</td><td>3</td><td>3</td>' in row


def test_a_review_match_stays_in_the_queue_when_its_sources_items_are_reevaluated(
    fake_api, post_webhook
):
    """A review bank's item has no labels: recomputing verdicts from labels (a threshold
    or routing change re-evaluates the source's undecided items) must leave it queued."""
    source = SourceFactory()
    text = "Known scam text"
    bank("Review", "review", ("text_sha256", hashing.text_sha256(text)))
    item = send(post_webhook, source, "r1", content_text=text)
    assert item.status == Item.Status.FLAGGED
    reevaluation = reevaluation_create(reason="threshold changed", source=source)
    assert reevaluation_run(reevaluation_id=reevaluation.pk) == 1  # the item was recomputed
    item.refresh_from_db()
    assert (item.status, item.queue_score) == (Item.Status.FLAGGED, 1.0)
    assert fake_api.calls == []


def _random_pdq(rng: np.random.Generator) -> str:
    return rng.integers(0, 256, 32, dtype=np.uint8).tobytes().hex()


def _flipped(value: str, bits: int) -> str:
    number = int(value, 16)
    for bit in range(bits):
        number ^= 1 << (bit * 7)
    return f"{number:064x}"


@pytest.fixture
def fresh_index(monkeypatch):
    """A process index of its own for the test (the module's one, emptied)."""
    monkeypatch.setattr(banks, "_pdq", banks._IndexState())
    return lambda: banks._pdq


def test_a_hash_added_to_a_bank_is_matched_without_rebuilding_the_index(fresh_index):
    rng = np.random.default_rng(5)
    stored = [_random_pdq(rng) for _ in range(50)]
    known = bank("Known", "review", *[("pdq", h) for h in stored])
    assert banks.hashes_match([("pdq", _flipped(stored[3], 10))])[0].bank_id == known.pk
    assert fresh_index().full_builds == 1

    # "Bank this" in another process: a new hash, and a new bank with one.
    added = _random_pdq(rng)
    BankHash.objects.create(bank=known, type="pdq", hash=added)
    banks.bank_touch(known.pk)
    other = bank("Other", "remove", ("pdq", _flipped(added, 3)))

    found = {(m.bank_id, m.distance) for m in banks.hashes_match([("pdq", _flipped(added, 2))])}
    assert found == {(known.pk, 2), (other.pk, 1)}
    assert fresh_index().full_builds == 1  # read in beside the build, not rebuilt
    assert len(fresh_index().added_hash_ids) == 2
    # The build's own hashes still match, once each.
    assert [m.distance for m in banks.hashes_match([("pdq", stored[7])])] == [0]


def test_a_hash_committed_below_the_builds_highest_id_is_still_read_in(fresh_index):
    """Ids are taken before commit: a hash whose transaction took longer can arrive after
    the build with an id under the build's highest. The additions read a slack below it."""
    rng = np.random.default_rng(6)
    known = bank("Known", "review", *[("pdq", _random_pdq(rng)) for _ in range(3)])
    top = BankHash.objects.order_by("-id").first().pk
    BankHash.objects.create(bank=known, type="pdq", hash=_random_pdq(rng), id=top + 50)
    banks.bank_touch(known.pk)
    late = _random_pdq(rng)
    assert banks.hashes_match([("pdq", late)]) == []
    assert fresh_index().top_id == top + 50

    BankHash.objects.create(bank=known, type="pdq", hash=late, id=top + 10)
    banks.bank_touch(known.pk)
    assert [m.distance for m in banks.hashes_match([("pdq", late)])] == [0]
    assert fresh_index().full_builds == 1


def test_a_deleted_or_changed_hash_rebuilds_the_index(fresh_index, admin_client):
    rng = np.random.default_rng(7)
    gone, kept = _random_pdq(rng), _random_pdq(rng)
    known = bank("Known", "review", ("pdq", gone), ("pdq", kept))
    assert len(banks.hashes_match([("pdq", gone)])) == 1
    builds = fresh_index().full_builds

    row = BankHash.objects.get(hash=gone)
    response = admin_client.post(
        reverse("admin:moderation_bankhash_delete", args=[row.pk]), {"post": "yes"}
    )
    assert response.status_code == 302
    assert banks.hashes_match([("pdq", gone)]) == []
    assert fresh_index().full_builds == builds + 1
    assert Bank.objects.get(pk=known.pk).pdq_rewrites == 1
    assert len(banks.hashes_match([("pdq", kept)])) == 1


def test_many_additions_rebuild_the_index(fresh_index, monkeypatch):
    monkeypatch.setattr(banks, "PDQ_ADDED_MAX", 5)
    rng = np.random.default_rng(8)
    known = bank("Known", "review", ("pdq", _random_pdq(rng)))
    banks.hashes_match([("pdq", _random_pdq(rng))])
    BankHash.objects.bulk_create(
        [BankHash(bank=known, type="pdq", hash=_random_pdq(rng)) for _ in range(6)]
    )
    banks.bank_touch(known.pk)
    banks.hashes_match([("pdq", _random_pdq(rng))])
    state = fresh_index()
    assert state.full_builds == 2 and len(state.added_hash_ids) == 0 and len(state.hash_ids) == 7
