"""Authors benchmark: the author's page and the item page's author panel at 10, 10,000 and
100,000 items of one author, and intake with `author` against without, all in one run.

    .venv/bin/python bench/authors.py [--requests 50] [--intake 400]

1. Drops and recreates the PostgreSQL database `bench_authors` (127.0.0.1:5432, user
   postgres, trust auth; no other database is touched) and migrates it.
2. Seeds, server-side in INSERT ... SELECT, one author per size with that many items (90 %
   flagged, one in ten removed by a decision with a strike), and one item of no author.
   VACUUM ANALYZE.
3. With Django's test Client (DEBUG off, the product's settings and middleware, a logged-in
   senior), times R requests after 5 warm-up ones of: the author's first page, a deep page
   (the cursor of the entry 80 % down the author's items), and the item page of one of the
   author's items, each request interleaved with one of the item page of an item without
   author (the baseline, under the same machine load). The item page's ratio is the median of
   the R pairwise ratios (each request against the baseline request beside it), so that a
   drift in machine load between pairs does not move it; the time the panel's query takes
   inside each request (`author_panel`, timed in place) is printed beside it.
4. Intake: R rounds (default 12) of a pair of N signed webhooks through the real view, one
   without and one with an `author` (20 authors, known after a warm-up), in-process (no HTTP
   server), which of the pair goes first alternating: each pair's ratio, the median of them,
   and this process's CPU per webhook. --intake-only skips the pages (and their big seeds).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import pgdb  # noqa: E402

DB_NAME = pgdb.database_name("bench_authors")
pgdb.use_database(DB_NAME)

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import Group  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

from bench.pgdb import load, percentile  # noqa: E402
from moderation.models import Author, Item, Source, hash_token  # noqa: E402
from moderation.views import item as item_view  # noqa: E402
from testkit.signing import signed_headers  # noqa: E402

SIZES = (10, 10_000, 100_000)
WARMUP = 5

SEED_ITEMS = """
INSERT INTO moderation_item (
    legal_hold, legal_hold_reason, language,
    source_id, author_id, external_id, webhook_id, content_text, content_image,
    content_image_type, content_video, content_video_type, content_hash, metadata,
    received_at, waiting_since, revision, status, violation_score, queue_score, queue_key,
    sla_breached, flagged_at, verdict_versions, decided_action
)
SELECT false, '', '',
       %(source)s, %(author)s, %(prefix)s || n, %(prefix)s || 'wh-' || n, 'post ' || n,
    '', '', '', '', md5(%(prefix)s || n), '{}'::jsonb,
    now() - (n || ' seconds')::interval, now(), 1,
    CASE WHEN n %% 10 = 0 THEN 'decided' WHEN n %% 10 = 1 THEN 'labeled' ELSE 'flagged' END,
    0.9, CASE WHEN n %% 10 IN (0, 1) THEN NULL ELSE 0.9 END,
    CASE WHEN n %% 10 IN (0, 1) THEN NULL ELSE -36.9 END, false,
    CASE WHEN n %% 10 = 1 THEN NULL ELSE now() - (n || ' seconds')::interval END, '[]'::jsonb,
    CASE WHEN n %% 10 = 0 THEN 'remove' ELSE '' END
FROM generate_series(1, %(count)s) AS n
"""
SEED_DECISIONS = """
INSERT INTO moderation_decision (item_id, revision, reviewer_id, action, reason, note,
    created_at, status_before, labeler_versions, report_ids)
SELECT id, 1, %(reviewer)s, 'remove', 'Spam', '', received_at + interval '1 second',
    'flagged', '[]'::jsonb, '[]'::jsonb
FROM moderation_item WHERE author_id = %(author)s AND status = 'decided'
"""
SEED_STRIKES = """
INSERT INTO moderation_strike (author_id, item_id, decision_id, weight, created_at)
SELECT i.author_id, i.id, d.id, 1, d.created_at
FROM moderation_decision d JOIN moderation_item i ON i.id = d.item_id
WHERE i.author_id = %(author)s
"""


def seed(sizes: tuple[int, ...] = SIZES) -> dict:
    source = Source.objects.create(name="Bench", slug="bench", api_token_hash=hash_token("b"))
    senior = get_user_model().objects.create_user("bench-senior", password="x")
    senior.groups.add(Group.objects.get_or_create(name="senior")[0])
    senior.groups.add(Group.objects.get_or_create(name="reviewer")[0])
    authors = {}
    with connection.cursor() as cursor:
        for size in sizes:
            author = Author.objects.create(source=source, external_id=f"a-{size}")
            params = {"source": source.pk, "author": author.pk, "count": size}
            cursor.execute(SEED_ITEMS, {**params, "prefix": f"a{size}-"})
            cursor.execute(SEED_DECISIONS, {"author": author.pk, "reviewer": senior.pk})
            cursor.execute(SEED_STRIKES, {"author": author.pk})
            authors[size] = author
        cursor.execute(
            SEED_ITEMS, {"source": source.pk, "author": None, "count": 10, "prefix": "x"}
        )
        cursor.execute("VACUUM ANALYZE")
    return {"source": source, "senior": senior, "authors": authors}


def deep_cursor(author: Author) -> str:
    count = Item.objects.filter(author=author).count()
    row = (
        Item.objects.filter(author=author)
        .order_by("-received_at", "-id")
        .values_list("received_at", "id")[int(count * 0.8)]
    )
    return f"{row[0].isoformat()}~0~{row[1]}"


PANEL_MS: list[float] = []


def _timed_panel(panel):
    def timed_panel(item):
        if item.author_id is None:
            return panel(item)
        started = time.perf_counter()
        try:
            return panel(item)
        finally:
            PANEL_MS.append((time.perf_counter() - started) * 1000)

    return timed_panel


def timed(client: Client, url: str, requests: int) -> list[float]:
    timings = []
    for n in range(WARMUP + requests):
        started = time.perf_counter()
        response = client.get(url)
        elapsed = (time.perf_counter() - started) * 1000
        assert response.status_code == 200, (url, response.status_code)
        if n >= WARMUP:
            timings.append(elapsed)
    return timings


def intake_bodies(secret: str, count: int, with_author: bool) -> list[tuple[bytes, dict]]:
    bodies = []
    for n in range(count):
        payload = {"external_id": f"in-{uuid.uuid4().hex}", "content_text": f"hello {n}"}
        if with_author:
            payload["author"] = {"id": f"in-author-{n % 20}", "name": f"Author {n % 20}"}
        body = json.dumps(payload).encode()
        bodies.append((body, signed_headers(secret, body)))
    return bodies


def intake_rate(
    client: Client, source: Source, secret: str, count: int, with_author: bool
) -> tuple[float, float]:
    """(req/s, this process's CPU ms per webhook) of `count` signed webhooks."""
    bodies = intake_bodies(secret, count, with_author)
    started, cpu = time.perf_counter(), time.process_time()
    for body, headers in bodies:
        response = client.post(
            f"/webhooks/{source.slug}/", data=body, content_type="application/json", headers=headers
        )
        assert response.status_code == 202, response.content
    elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    return count / elapsed, cpu * 1000 / count


def intake_compare(client: Client, source: Source, count: int, rounds: int) -> None:
    """Rounds of a pair, without and with `author` (which goes first alternates): each pair's
    ratio under the same machine load, and the median of those."""
    secret = source.webhook_secret
    for with_author in (False, True):  # warm-up; the 20 authors exist after it
        intake_rate(client, source, secret, max(count // 4, 20), with_author)
    ratios, cpu_ratios = [], []
    rates: dict[bool, list[float]] = {False: [], True: []}
    cpus: dict[bool, list[float]] = {False: [], True: []}
    for n in range(rounds):
        pair = {}
        for with_author in (False, True) if n % 2 == 0 else (True, False):
            pair[with_author] = intake_rate(client, source, secret, count, with_author)
            rates[with_author].append(pair[with_author][0])
            cpus[with_author].append(pair[with_author][1])
        ratios.append(pair[True][0] / pair[False][0])
        cpu_ratios.append(pair[False][1] / pair[True][1])
    without, with_ = statistics.median(rates[False]), statistics.median(rates[True])
    print(
        f"intake: {without:.0f} req/s without author, {with_:.0f} req/s with (medians of "
        f"{rounds} rounds of {count}); with/without per round "
        f"{', '.join(f'{r:.2f}' for r in ratios)}: median {statistics.median(ratios):.2f} x "
        f"(target >= 0.9 x)"
    )
    print(
        f"intake CPU of this process per webhook: {statistics.median(cpus[False]):.3f} ms "
        f"without, {statistics.median(cpus[True]):.3f} ms with author; without/with per round: "
        f"median {statistics.median(cpu_ratios):.2f} x; load {load()}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=50)
    parser.add_argument("--intake", type=int, default=200, help="webhooks per intake round")
    parser.add_argument(
        "--rounds", type=int, default=12, help="intake rounds (each a pair: without, with)"
    )
    parser.add_argument(
        "--intake-only", action="store_true", help="only the intake comparison (no big seeds)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    args = parser.parse_args()
    print(f"load {load()}", flush=True)
    pgdb.recreate_database(DB_NAME)
    seeded = seed(sizes=() if args.intake_only else SIZES)
    client = Client(HTTP_X_FORWARDED_PROTO="https")
    client.force_login(seeded["senior"])
    if args.intake_only:
        intake_compare(client, seeded["source"], args.intake, args.rounds)
        if not args.keep:
            pgdb.drop_database(DB_NAME)
        return 0
    # A flagged item like the author's: claimed and shown with its decision form.
    baseline_item = Item.objects.filter(author__isnull=True, status="flagged").first()
    rows = []
    item_view.author_panel = _timed_panel(item_view.author_panel)
    for size, author in seeded["authors"].items():
        first = timed(client, f"/authors/{author.pk}/", args.requests)
        deep = timed(client, f"/authors/{author.pk}/?after={deep_cursor(author)}", args.requests)
        item = Item.objects.filter(author=author, status="flagged").first()
        # Interleaved with the no-author item page, so that both see the same machine load.
        panel, base = [], []
        timed(client, f"/items/{item.pk}/", 0)  # the warm-up requests
        timed(client, f"/items/{baseline_item.pk}/", 0)
        PANEL_MS.clear()
        for n in range(args.requests):
            # Alternating which goes first, so that neither always follows the other.
            pair = [(panel, item.pk), (base, baseline_item.pk)][:: 1 if n % 2 else -1]
            for timings, pk in pair:
                started = time.perf_counter()
                response = client.get(f"/items/{pk}/")
                timings.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, (pk, response.status_code)
        ratio = statistics.median(p / b for p, b in zip(panel, base, strict=True))
        panel_ms = statistics.median(PANEL_MS)
        rows.append((size, first, deep, panel, base, ratio, panel_ms))
        print(
            f"{size:>7,} items: author page p50 {statistics.median(first):6.1f} ms "
            f"(p99 {percentile(first, 0.99):6.1f}), deep page p50 {statistics.median(deep):6.1f} "
            f"ms, item page p50 {statistics.median(panel):6.1f} ms "
            f"({ratio:.2f} x the no-author item page interleaved with it, median of the pairs' "
            f"ratios; its p50 {statistics.median(base):.1f} ms); the panel's query "
            f"{panel_ms:.2f} ms of each request",
            flush=True,
        )
    intake_compare(client, seeded["source"], args.intake, args.rounds)
    print(
        "\n| author items | author page p50 | deep page p50 | item page p50 (x no author) "
        "| panel query |"
    )
    print("|---|---|---|---|---|")
    for size, first, deep, panel, _base, ratio, panel_ms in rows:
        print(
            f"| {size:,} | {statistics.median(first):.1f} ms | {statistics.median(deep):.1f} ms "
            f"| {statistics.median(panel):.1f} ms ({ratio:.2f} x) | {panel_ms:.2f} ms |"
        )
    if not args.keep:
        pgdb.drop_database(DB_NAME)
    return 0


if __name__ == "__main__":
    sys.exit(main())
