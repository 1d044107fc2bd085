"""Hash banks (issue 28): an item's hashes computed once, matched against the banks before
any label is paid for, and the first bank by precedence (allow > remove > review) decides;
banks filled by "bank this" and CSV import, with new hashes matched against recent items.

Hashing and matching run in the dispatch step (labelers.dispatch.items_route, through the
verdicts door), not in the intake request: intake is one INSERT and stays so (PDQ costs a
few ms of CPU per image: decode, downscale, DCT), the dispatch reads received items in
batches anyway, and it is the last step before labels are created, so a match still
prevents the paid call.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from dataclasses import dataclass, field
from datetime import timedelta

import numpy as np
from django.conf import settings
from django.core.files.storage import default_storage
from django.db import transaction
from django.db.models import Count, F, Max, Sum
from django.utils import timezone

from moderation import hashing
from moderation.models import (
    ACTION_PRECEDENCE,
    FOLLOWS_LABELS,
    Bank,
    BankHash,
    BankMatch,
    Decision,
    HashType,
    Item,
    ItemHash,
)
from moderation.pdq_index import PdqIndex, as_u64, hex_to_words, popcount_distances
from moderation.services.decisions import decision_create, item_decision_apply
from moderation.services.queue import queue_key_sync
from moderation.services.routing import item_route

logger = logging.getLogger(__name__)


def _read(name: str) -> bytes:
    with default_storage.open(name, "rb") as handle:
        return handle.read()


def item_hashes_compute(item: Item) -> list[ItemHash]:
    """The current revision's hashes, stored once (a second call reads them back)."""
    stored = list(ItemHash.objects.filter(item=item, revision=item.revision))
    if stored:
        return stored
    rows = []
    if item.content_text.strip():
        rows.append(
            ItemHash(type=HashType.TEXT_SHA256, hash=hashing.text_sha256(item.content_text))
        )
    if item.content_image:
        raw = _read(item.content_image.name)
        rows.append(ItemHash(type=HashType.MD5, hash=hashing.md5(raw)))
        try:
            value, quality = hashing.pdq(raw)
            rows.append(ItemHash(type=HashType.PDQ, hash=value, quality=quality))
        except ValueError:
            logger.warning("item %s: image not decodable, no PDQ hash", item.pk)
    elif item.content_video:
        rows.append(ItemHash(type=HashType.MD5, hash=hashing.md5(_read(item.content_video.name))))
    for row in rows:
        row.item, row.revision = item, item.revision
    ItemHash.objects.bulk_create(rows, ignore_conflicts=True)
    return rows


@dataclass
class _IndexState:
    """This process's PDQ index: a full build of every bank's PDQ hashes (the multi-index
    tables) and, beside it, the hashes added since (a small array scanned whole), so that a
    hash banked by a reviewer reaches every process without a rebuild of 1 M hashes."""

    version: tuple | None = None
    index: PdqIndex = field(default_factory=lambda: PdqIndex([]))
    # By index position: the bank hash's id and its bank's (arrays, not a tuple per hash).
    # hash_ids ascend (rows are read in id order).
    hash_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    bank_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    # What the full build saw: each bank's pdq_rewrites, the highest hash id, and when.
    rewrites: dict[int, int] = field(default_factory=dict)
    top_id: int = 0
    built_at: float = 0.0
    # Hashes added since the full build: (N, 4) uint64 words, their ids and banks.
    added_u64: np.ndarray = field(default_factory=lambda: np.zeros((0, 4), dtype=np.uint64))
    added_hash_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    added_bank_ids: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    full_builds: int = 0  # how often this process rebuilt everything (the tests read it)
    # Each bank's PDQ distance, read with the version; when the version was last compared.
    max_distance: dict[int, int] = field(default_factory=dict)
    checked_at: float = 0.0

    def lookup(self, query_hex: str) -> list[tuple[int, int, int]]:
        """(bank hash id, bank id, distance) of every hash within 31 bits of the query."""
        found = [
            (int(self.hash_ids[position]), int(self.bank_ids[position]), distance)
            for position, distance in self.index.lookup(query_hex, max_distance=31)
        ]
        if len(self.added_hash_ids):
            distances = popcount_distances(self.added_u64, as_u64(hex_to_words([query_hex]))[0])
            found += [
                (int(self.added_hash_ids[i]), int(self.added_bank_ids[i]), int(distances[i]))
                for i in np.flatnonzero(distances <= 31)
            ]
        return found


_pdq = _IndexState()

# Hashes added since the full build are scanned whole; past this many (or a tenth of the
# build), or once the build is older than PDQ_REBUILD_SECONDS, the next change rebuilds.
PDQ_ADDED_MAX = 20_000
PDQ_REBUILD_SECONDS = 15 * 60
# Ids are taken before a transaction commits, so a hash committed after a build may carry
# an id below the build's highest: additions are read from this many ids below it (those the
# build has are skipped), and the age rebuild catches anything later still.
PDQ_ID_SLACK = 2_000
# Other processes' bank changes are seen within this long (the version is compared at most
# once per interval); this process's own (bank_touch) at once.
PDQ_CHECK_SECONDS = 1.0


def banks_version() -> tuple:
    """What moves whenever any bank's hashes change: every change bumps its bank's version
    and updated_at (bank_touch); a deleted bank changes the count and the sum."""
    totals = Bank.objects.aggregate(
        count=Count("id"), total=Sum("version"), last=Max("updated_at"), top=Max("id")
    )
    return (totals["count"], totals["total"], totals["last"], totals["top"])


def _pdq_rows(**filters) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(hex hashes, their ids, their banks' ids) of the PDQ bank hashes, in id order."""
    rows = BankHash.objects.filter(type=HashType.PDQ, **filters).order_by("id")
    hexes, hash_ids, bank_ids = [], [], []
    for value, hash_id, bank_id in rows.values_list("hash", "id", "bank_id").iterator(
        chunk_size=20_000
    ):
        hexes.append(value)
        hash_ids.append(hash_id)
        bank_ids.append(bank_id)
    return hexes, np.array(hash_ids, dtype=np.int64), np.array(bank_ids, dtype=np.int64)


def _pdq_build(version: tuple, rewrites: dict[int, int]) -> None:
    hexes, _pdq.hash_ids, _pdq.bank_ids = _pdq_rows()
    _pdq.index = PdqIndex(hexes)
    _pdq.rewrites = rewrites
    _pdq.top_id = int(_pdq.hash_ids[-1]) if len(hexes) else 0
    _pdq.built_at = time.monotonic()
    _pdq.added_u64 = np.zeros((0, 4), dtype=np.uint64)
    _pdq.added_hash_ids = np.zeros(0, dtype=np.int64)
    _pdq.added_bank_ids = np.zeros(0, dtype=np.int64)
    _pdq.full_builds += 1
    _pdq.version = version


def _pdq_take_additions(version: tuple, rewrites: dict[int, int]) -> bool:
    """Take in the hashes added since the full build, when that is all that changed (no
    bank gone, no hash changed or deleted) and they are few; False: rebuild instead."""
    if _pdq.version is None or time.monotonic() - _pdq.built_at > PDQ_REBUILD_SECONDS:
        return False
    if any(rewrites.get(bank_id) != n for bank_id, n in _pdq.rewrites.items()):
        return False
    hexes, hash_ids, bank_ids = _pdq_rows(id__gt=max(_pdq.top_id - PDQ_ID_SLACK, 0))
    built = _pdq.hash_ids
    new = ~np.isin(hash_ids, built[np.searchsorted(built, _pdq.top_id - PDQ_ID_SLACK) :])
    if int(new.sum()) > max(PDQ_ADDED_MAX, len(built) // 10):
        return False
    keep = np.flatnonzero(new)
    _pdq.added_u64 = as_u64(hex_to_words([hexes[i] for i in keep]))
    _pdq.added_hash_ids = hash_ids[keep]
    _pdq.added_bank_ids = bank_ids[keep]
    # Banks created since take part in the next comparison as they are now.
    _pdq.rewrites = rewrites
    _pdq.version = version
    return True


def pdq_index() -> _IndexState:
    """This process's index of every bank's PDQ hashes, kept current by one small aggregate
    at most every PDQ_CHECK_SECONDS (the banks table has a row per bank). When a bank
    changed: hashes only added are read in beside the build, anything else rebuilds it.
    Web and worker processes each hold their own; the database is the record."""
    now = time.monotonic()
    if _pdq.version is not None and now - _pdq.checked_at < PDQ_CHECK_SECONDS:
        return _pdq
    version = banks_version()
    if version != _pdq.version:
        settings_rows = Bank.objects.values_list("id", "pdq_rewrites", "pdq_max_distance")
        rewrites = {bank_id: n for bank_id, n, _ in settings_rows}
        if not _pdq_take_additions(version, rewrites):
            _pdq_build(version, rewrites)
        _pdq.max_distance = {bank_id: distance for bank_id, _, distance in settings_rows}
    _pdq.checked_at = now
    return _pdq


def pdq_index_forget() -> None:
    """The next lookup rebuilds this process's index (the tests: ids are reused)."""
    _pdq.version = None
    _pdq.checked_at = 0.0


def bank_touch(bank_id: int, *, rewrite: bool = False) -> None:
    """Every process's index takes in the bank's change; rewrite: a hash of the bank was
    changed or deleted (the indexes rebuild, rather than read in what was added)."""
    changes = {"version": F("version") + 1, "updated_at": timezone.now()}
    if rewrite:
        changes["pdq_rewrites"] = F("pdq_rewrites") + 1
    Bank.objects.filter(pk=bank_id).update(**changes)
    _pdq.checked_at = 0.0  # this process sees its own change at its next lookup


@dataclass(frozen=True)
class Match:
    bank_id: int
    type: str
    bank_hash_id: int
    distance: int


def hashes_match(hashes: list[tuple[str, str]]) -> list[Match]:
    """Every bank match of (type, hash) pairs: exact for md5 and text, by Hamming distance
    within each bank's pdq_max_distance for PDQ. One match per bank and type (the closest)."""
    best: dict[tuple[int, str], Match] = {}

    def keep(match: Match) -> None:
        key = (match.bank_id, match.type)
        if key not in best or match.distance < best[key].distance:
            best[key] = match

    exact = [(kind, value) for kind, value in hashes if kind != HashType.PDQ]
    for kind, value in exact:
        for hash_id, bank_id in BankHash.objects.filter(type=kind, hash=value).values_list(
            "id", "bank_id"
        ):
            keep(Match(bank_id, kind, hash_id, 0))
    pdqs = [value for kind, value in hashes if kind == HashType.PDQ]
    if pdqs:
        state = pdq_index()
        for value in pdqs:
            for hash_id, bank_id, distance in state.lookup(value):
                if distance <= state.max_distance.get(bank_id, -1):
                    keep(Match(bank_id, HashType.PDQ, hash_id, distance))
    return list(best.values())


def _winner(matches: list[Match], banks: dict[int, Bank]) -> Bank | None:
    ranked = sorted(
        {m.bank_id for m in matches},
        key=lambda bank_id: (ACTION_PRECEDENCE.index(banks[bank_id].action), banks[bank_id].name),
    )
    return banks[ranked[0]] if ranked else None


def bank_reason(bank: Bank) -> str:
    return f"Hash bank match: {bank.name}"[:200]


def _act(locked: Item, bank: Bank) -> None:
    """What the winning bank does to the undecided item (locked by the caller)."""
    if bank.action == Bank.Action.REMOVE:
        decision = decision_create(
            item=locked,
            revision=locked.revision,
            reviewer=None,
            action=Decision.Action.REMOVE,
            reason=bank_reason(bank),
            status_before=locked.status,
        )
        item_decision_apply(
            locked,
            status=Item.Status.DECIDED,
            decided_at=decision.created_at,
            decided_action=decision.action,
        )
    elif bank.action == Bank.Action.REVIEW:
        # To the queue with the highest score: a person looks at it without a label call.
        locked.status = Item.Status.FLAGGED
        locked.queue_score = 1.0
        locked.flagged_at = locked.flagged_at or timezone.now()
        queue_key_sync(locked)
        locked.save(update_fields=["status", "queue_score", "queue_key", "flagged_at"])
        item_route(item_id=locked.pk)
    else:
        # Known good: cleared without labels, never flagged.
        locked.status = Item.Status.LABELED
        locked.queue_score = None
        queue_key_sync(locked)
        locked.save(update_fields=["status", "queue_score", "queue_key"])


def _record(item: Item, matches: list[Match], winner: Bank | None, *, retroactive=False) -> None:
    BankMatch.objects.bulk_create(
        [
            BankMatch(
                item=item,
                revision=item.revision,
                bank_id=m.bank_id,
                type=m.type,
                bank_hash_id=m.bank_hash_id,
                distance=m.distance,
                acted=winner is not None and m.bank_id == winner.pk,
                retroactive=retroactive,
            )
            for m in matches
        ],
        ignore_conflicts=True,
    )


def items_bank_match(*, item_ids: list[int], budget_seconds: float | None = None) -> set[int]:
    """Hash received items (locked by the caller, the dispatch) and act on their bank
    matches; returns the ids not to route to labelers now: those a bank settled, and those
    left unhashed once `budget_seconds` of hashing is spent (they stay received and come
    first in the next sweep: a burst of large images never stalls routing for minutes; at
    least one item is hashed per call, so the backlog always moves)."""
    if not item_ids:
        return set()
    budget = settings.BANK_HASH_BUDGET_SECONDS if budget_seconds is None else budget_seconds
    started = time.monotonic()
    held = set()
    # Every item is hashed, banks or not: a hash banked later is matched against it.
    banks = Bank.objects.in_bulk()
    items = Item.objects.filter(pk__in=item_ids, status=Item.Status.RECEIVED).order_by("id")
    for n, item in enumerate(items):
        if n and time.monotonic() - started > budget:
            held.add(item.pk)
            continue
        hashes = item_hashes_compute(item)
        if not banks:
            continue
        matches = hashes_match([(h.type, h.hash) for h in hashes])
        winner = _winner(matches, banks)
        if winner is None:
            continue
        _record(item, matches, winner)
        _act(item, winner)
        held.add(item.pk)
    return held


def bank_item_add(*, bank: Bank, item: Item, revision: int, user=None) -> list[BankHash]:
    """ "Bank this": the item revision's hashes into `bank` (those already there are kept)."""
    with transaction.atomic():
        shown = Item.objects.get(pk=item.pk)
        if shown.revision != revision:
            hashes = list(ItemHash.objects.filter(item=item, revision=revision))
        else:
            hashes = item_hashes_compute(shown)
        rows = [
            BankHash(bank=bank, type=h.type, hash=h.hash, added_by=user, item=item) for h in hashes
        ]
        created = [
            row
            for row in rows
            if not BankHash.objects.filter(bank=bank, type=row.type, hash=row.hash).exists()
        ]
        BankHash.objects.bulk_create(created, ignore_conflicts=True)
        bank_touch(bank.pk)
    return list(BankHash.objects.filter(bank=bank, item=item, type__in=[h.type for h in created]))


class BankFileInvalid(ValueError):  # noqa: N818 (reads as what it says)
    """A malformed file: `errors` lists each bad line as "line N: why"."""

    def __init__(self, errors: list[str]):
        super().__init__("; ".join(errors[:20]))
        self.errors = errors


def bank_csv_parse(text: str) -> list[tuple[str, str, str]]:
    """(type, hash, note) rows of a `type,hash,note` CSV (header optional); raises
    BankFileInvalid naming every malformed line."""
    rows, errors = [], []
    for number, record in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not record or not "".join(record).strip():
            continue
        if number == 1 and [c.strip().lower() for c in record[:2]] == ["type", "hash"]:
            continue
        if len(record) < 2 or len(record) > 3:
            errors.append(f"line {number}: expected type,hash,note")
            continue
        kind, value = record[0].strip(), record[1].strip()
        note = record[2].strip() if len(record) == 3 else ""
        if kind not in HashType.values:
            errors.append(f"line {number}: unknown type {kind!r} (md5, pdq or text_sha256)")
        elif not hashing.hash_valid(kind, value):
            errors.append(
                f"line {number}: {kind} hash must be {hashing.HEX_LENGTHS[kind]} lowercase hex"
            )
        else:
            rows.append((kind, value, note[:500]))
    if errors:
        raise BankFileInvalid(errors)
    return rows


def bank_import(
    *, name: str, text: str, action: str | None = None, user=None
) -> tuple[Bank, list[int]]:
    """Import a CSV into the bank `name` (created with `action` if new): all rows or none.
    Returns the bank and the ids of the hashes that were new (the same file again: none),
    for the retroactive match."""
    rows = bank_csv_parse(text)
    with transaction.atomic():
        bank = Bank.objects.filter(name=name).first()
        if bank is None:
            if action not in Bank.Action.values:
                raise ValueError("a new bank needs --action remove, review or allow")
            bank = Bank.objects.create(name=name, action=action)
        elif action and action != bank.action:
            raise ValueError(f"bank {name} exists with action {bank.action}, not {action}")
        last = bank.hashes.aggregate(last=Max("id"))["last"] or 0
        BankHash.objects.bulk_create(
            [BankHash(bank=bank, type=k, hash=v, note=n, added_by=user) for k, v, n in rows],
            ignore_conflicts=True,
            batch_size=5000,
        )
        added = list(bank.hashes.filter(id__gt=last).values_list("id", flat=True))
        if added:
            bank_touch(bank.pk)
    return bank, added


def bank_export(*, bank: Bank) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["type", "hash", "note"])
    for row in bank.hashes.order_by("id").values_list("type", "hash", "note").iterator():
        writer.writerow(row)
    return out.getvalue()


# Below this many new PDQ hashes, each is scanned against the recent items' hashes (one numpy
# pass each); above it (an imported list), the new hashes are indexed and each recent item
# looked up in that index instead.
_SCAN_AT_MOST = 64


def _pdq_pairs(new: list[BankHash], recent: list[str]):
    """(bank hash, position in `recent`, distance) of every pair within the bank's limit."""
    if not recent:
        return
    if len(new) <= _SCAN_AT_MOST:
        u64 = as_u64(hex_to_words(recent))
        for bank_hash in new:
            distances = popcount_distances(u64, as_u64(hex_to_words([bank_hash.hash]))[0])
            for position in np.flatnonzero(distances <= bank_hash.bank.pdq_max_distance):
                yield bank_hash, int(position), int(distances[position])
        return
    index = PdqIndex([h.hash for h in new], new)
    for position, value in enumerate(recent):
        for bank_hash, distance in index.lookup(value, max_distance=31):
            if distance <= bank_hash.bank.pdq_max_distance:
                yield bank_hash, position, distance


def bank_hashes_match_recent(*, bank_hash_ids: list[int], days: int = 30) -> int:
    """Match new bank hashes against the items hashed in the last `days`: an undecided item
    matched is acted on as at intake (unless a bank of higher precedence already settled
    it); a decided one gets a retroactive match listed on the bank's page for review.
    Idempotent: a match already recorded is not acted on twice. Returns matches recorded."""
    new = list(BankHash.objects.filter(pk__in=bank_hash_ids).select_related("bank"))
    if not new:
        return 0
    since = timezone.now() - timedelta(days=days)
    recent = ItemHash.objects.filter(created_at__gte=since)
    found: dict[tuple[int, int], list[Match]] = {}
    for bank_hash in new:
        if bank_hash.type != HashType.PDQ:
            for item_id, revision in recent.filter(
                type=bank_hash.type, hash=bank_hash.hash
            ).values_list("item_id", "revision"):
                found.setdefault((item_id, revision), []).append(
                    Match(bank_hash.bank_id, bank_hash.type, bank_hash.pk, 0)
                )
    pdqs = [h for h in new if h.type == HashType.PDQ]
    if pdqs:
        rows = list(recent.filter(type=HashType.PDQ).values_list("item_id", "revision", "hash"))
        for bank_hash, position, distance in _pdq_pairs(pdqs, [r[2] for r in rows]):
            item_id, revision, _ = rows[position]
            found.setdefault((item_id, revision), []).append(
                Match(bank_hash.bank_id, HashType.PDQ, bank_hash.pk, distance)
            )
    banks = Bank.objects.in_bulk()
    recorded = 0
    for (item_id, revision), matches in sorted(found.items()):
        with transaction.atomic():
            locked = Item.objects.select_for_update().filter(pk=item_id).first()
            if locked is None or locked.revision != revision:
                continue
            known = set(
                BankMatch.objects.filter(item=locked, revision=revision).values_list(
                    "bank_id", "type"
                )
            )
            fresh = [m for m in matches if (m.bank_id, m.type) not in known]
            if not fresh:
                continue
            acted_before = BankMatch.objects.filter(item=locked, revision=revision, acted=True)
            held = (
                locked.claimed_by_id is not None
                and locked.claim_expires_at is not None
                and locked.claim_expires_at > timezone.now()
            )
            winner = None
            # A reviewer holding the item decides it: the match is listed, not acted on.
            if locked.status in FOLLOWS_LABELS and not held and not acted_before.exists():
                winner = _winner(fresh, banks)
            _record(locked, fresh, winner, retroactive=True)
            if winner is not None:
                _act(locked, winner)
            recorded += len(fresh)
    return recorded
