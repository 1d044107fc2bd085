"""Queue page benchmark: the rendered review queue through the real view, at several sizes.

    .venv/bin/python -m bench.queue [--sizes 2000,20000] [--requests 200] [--strict]
    .venv/bin/python -m bench.queue --sizes 10000,1000000        # the issue's measurement
    .venv/bin/python -m bench.queue --sizes 10000,1000000 --queues 10   # team queues (29)
    .venv/bin/python -m bench.queue --sizes 10000,1000000 --reported 0.1  # reports (26)
    .venv/bin/python -m bench.queue --sizes 10000,1000000 --mine 0.2  # "decided by me"

For each size, from scratch:

1. Drops and recreates the PostgreSQL database `bench_queue_<pid>` (127.0.0.1:5432, user postgres,
   trust auth; no other database is touched) and migrates it.
2. Seeds N items server-side in one INSERT ... SELECT over generate_series (no per-row round
   trips): 4 sources (one with a 4 h review SLA), 90 % flagged with scores 0.500-0.999 in
   steps of 0.001 (so many share a score), 1 % whose labeling failed, the rest labeled and
   not flagged; received over the last 48 h; 5 % with an image; one item in ~1,000 mentions
   "quokkaspam" (the search). With --reported S: a share S of items (every status alike)
   has 1-3 open reports (Report rows, four reasons in turn) and the report score of that
   many new reporters; a cleared one waits as "reported", the others at the higher score.
   The sort key is computed in SQL as models.queue_key does
   (checked against it), then the product's own SLA sweep marks the items past their SLA.
   VACUUM ANALYZE.
3. Logs a reviewer in with Django's test Client (DEBUG off, the product's settings and
   middleware) and times the whole rendered queue page, R requests per kind after 20 warm-up
   requests, for: the first page; a deep page reached by the cursor (from the item 80 % down
   the queue, then following each page's "Next page" link); a filtered page (one source and
   a score range 0.6-0.8); a search. Each page also runs the status counts and the SLA
   header.
4. Beside each, the page's own SQL query (captured from the view) run R times alone, and its
   EXPLAIN (ANALYZE, BUFFERS), to show which index serves it (below 20,000 items with
   enable_seqscan off: the planner may rightly read a small table whole).
   With --queues Q: Q queues (the default one and Q-1 with a team each), item n in queue
   n mod Q, languages en/pt/es/de/fr in turn; and two more kinds for a reviewer of three
   team queues reading pt and de: their first page, and their "next" (served by language
   first, within their queues). With --reported: two more, the "Reported" filter
   (?reported=1) and a report reason (?report_reason=harassment).
   With --mine S: a share S of items is decided (approved or removed) by the benched
   reviewer, one decision each over the past 48 h; two more kinds, their "Decided by me"
   page and a search in it (?status=mine&q=quokkaspam): the page is read from their
   decisions, newest first, so a rare term walks their decisions until it finds a page.
5. Prints a table and checks the targets: p99 < 50 ms for every kind, and with two sizes or
   more, p99 at the largest <= 1.2 x p99 at the smallest for every kind.

Exit status: 0, or 2 with --strict when a target was missed. The database is dropped at the
end unless --keep.
"""

from __future__ import annotations

import sys
from pathlib import Path

# Run as a script, this file's folder comes first on sys.path, and this module would stand
# in for the standard library's `queue` (which Django's imports need).
HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]

import argparse  # noqa: E402
import os  # noqa: E402
import re  # noqa: E402
import statistics  # noqa: E402
import time  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import pgdb  # noqa: E402

# Per process: two sessions running this bench at once must not drop each other's database.
DB_NAME = f"bench_queue_{os.getpid()}"
pgdb.use_database(DB_NAME)

from django.contrib.auth import get_user_model  # noqa: E402
from django.contrib.auth.models import Group  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import CaptureQueriesContext  # noqa: E402

from bench.pgdb import load, percentile, timed  # noqa: E402
from moderation.models import (  # noqa: E402
    Item,
    Queue,
    ReviewerSettings,
    Source,
    hash_token,
    queue_key,
)
from moderation.services.queue import items_sla_refresh  # noqa: E402

WARMUP = 20
TARGET_P99_MS = 50.0
TARGET_RATIO = 1.2
KINDS = ("first", "deep", "filtered", "search")
# With --queues: a reviewer of three team queues and two languages, on their first page and
# their "next" (the item served and claimed, a redirect).
TEAM_KINDS = ("team-first", "team-next")
# With --reported: the queue's two report filters, items with open reports and one reason.
REPORT_KINDS = ("reported", "reason")
# With --mine: the reviewer's own decisions, and a search among them.
MINE_KINDS = ("mine", "mine-search")
SEARCH_TERM = "quokkaspam"
WORDS = "hello spam offer cheap watches click here great deal free account friend"

SEED_SQL = """
INSERT INTO moderation_item (
    legal_hold, legal_hold_reason,
    source_id, external_id, webhook_id, content_text, content_image, content_image_type,
    content_video, content_video_type, content_hash, metadata, received_at, waiting_since,
    revision, status, violation_score, queue_score, queue_key, sla_breached, flagged_at,
    verdict_versions, queue_id, language, report_score
)
SELECT
    false, '',
    src.ids[1 + n %% 4],
    'ext-' || n, 'wh-' || n,
    'item ' || n || ' '
        || split_part(%(words)s::text, ' ', (1 + (n * 7) %% 12)::int) || ' '
        || split_part(%(words)s::text, ' ', (1 + (n * 13) %% 12)::int)
        || CASE WHEN n %% 997 = 0 THEN ' QuokkaSpam link' ELSE '' END,
    CASE WHEN n %% 20 = 0 THEN 'images/bench.png' ELSE '' END,
    CASE WHEN n %% 20 = 0 THEN 'image/png' ELSE '' END,
    '', '', md5(n::text), '{}'::jsonb, t.at, t.at, 1,
    s.status, s.score, s.queue_score,
    CASE WHEN s.queue_score IS NULL THEN NULL
         ELSE -(4.0 * LEAST(floor(round((s.queue_score * 10)::numeric, 9)), 9)::float8
                + s.queue_score) END,
    false,
    CASE WHEN s.status = 'flagged' THEN t.at END,
    '[]'::jsonb,
    -- With --queues Q: item n in team queue n mod Q (0: the default queue, no queue_id).
    CASE WHEN %(queues)s > 0 AND n %% GREATEST(%(queues)s, 1) > 0
         THEN q.ids[n %% GREATEST(%(queues)s, 1)] END,
    (ARRAY['en', 'pt', 'es', 'de', 'fr'])[1 + (n / 7) %% 5],
    s.report_score
FROM generate_series(1::bigint, %(count)s) AS n
CROSS JOIN (SELECT array_agg(id ORDER BY id) AS ids FROM moderation_source) AS src
CROSS JOIN (
    SELECT array_agg(id ORDER BY id) AS ids FROM moderation_queue WHERE NOT is_default
) AS q
CROSS JOIN LATERAL (
    SELECT now() - (((n * 7919) %% 172800) || ' seconds')::interval AS at
) AS t
CROSS JOIN LATERAL (
    SELECT
        CASE WHEN n %% 100 = 0 THEN 'failed' WHEN n %% 10 = 0 THEN 'labeled' ELSE 'flagged' END
            AS labels_status,
        CASE WHEN n %% 100 = 0 THEN NULL
             ELSE (500 + (n * 104729) %% 500)::float8 / 1000 END AS score,
        -- With --reported: this share of items (spread over every status) has 1 to 3 open
        -- reports from new reporters, so a report score of 1 - 0.75^k (the README's formula).
        CASE WHEN (n * 7907) %% 1000 < %(reported_per_mille)s
             THEN 1.0 - power(0.75::float8, (1 + n %% 3)::float8) END AS report_score
) AS r
CROSS JOIN LATERAL (
    SELECT
        -- A cleared item with reports waits as "reported"; a flagged one stays flagged.
        CASE WHEN r.labels_status = 'labeled' AND r.report_score IS NOT NULL THEN 'reported'
             ELSE r.labels_status END AS status,
        r.score,
        r.report_score,
        -- queue_score_for: failed 1.0; otherwise the higher of the two scores (GREATEST
        -- skips a missing report score); a cleared, unreported item is out of the queue.
        CASE WHEN r.labels_status = 'failed' THEN 1.0
             WHEN r.labels_status = 'labeled' AND r.report_score IS NULL THEN NULL
             ELSE GREATEST(r.score, r.report_score) END AS queue_score
) AS s
"""

# Each reported item's open reports (1 to 3, as its report score says), with reasons in turn
# and reporters drawn from 50,000 accounts.
REPORTS_SQL = """
INSERT INTO moderation_report (
    source_id, report_id, webhook_id, item_id, reason, reporter_id, comment, created_at,
    decision_id
)
SELECT i.source_id, 'r-' || i.id || '-' || j, 'rw-' || i.id || '-' || j, i.id,
    (ARRAY['spam', 'harassment', 'violence', 'other'])[1 + (i.id + j) %% 4],
    'u-' || (i.id * 7919 + j * 104729) %% 50000, '', i.received_at, NULL
FROM moderation_item i
CROSS JOIN LATERAL generate_series(
    1, round(ln(1.0 - i.report_score) / ln(0.75))::int
) AS j
WHERE i.report_score IS NOT NULL
"""

# With --mine: a share of items decided by one reviewer (their item's latest decision).
MINE_SQL = """
WITH decided AS (
    UPDATE moderation_item
    SET status = 'decided', decided_at = received_at + interval '5 minutes', queue_key = NULL,
        queue_score = NULL
    WHERE (id * 7901) %% 1000 < %(mine_per_mille)s
    RETURNING id, received_at, status
)
INSERT INTO moderation_decision (
    item_id, revision, reviewer_id, action, reason, note, created_at, status_before,
    labeler_versions, report_ids
)
SELECT id, 1, %(reviewer)s, CASE WHEN id %% 3 = 0 THEN 'remove' ELSE 'approve' END, '', '',
    received_at + interval '5 minutes', 'flagged', '[]'::jsonb, '[]'::jsonb
FROM decided
"""


def seed(count: int, queues: int = 0, reported: float = 0.0, mine: float = 0.0) -> dict:
    started = time.monotonic()
    teams = []
    for n in range(1, queues):
        team = Group.objects.create(name=f"Bench team {n}")
        Queue.objects.create(name=f"Bench queue {n}", team=team)
        teams.append(team)
    sources = [
        Source.objects.create(
            name=f"Bench {n}",
            slug=f"bench-{n}",
            api_token_hash=hash_token(f"bench-{n}"),
            review_sla_minutes=240 if n == 0 else None,
        )
        for n in range(4)
    ]
    with connection.cursor() as cursor:
        cursor.execute(
            SEED_SQL,
            {
                "count": count,
                "words": WORDS,
                "queues": queues,
                "reported_per_mille": round(reported * 1000),
            },
        )
        cursor.execute(REPORTS_SQL, {})
        reports = cursor.rowcount
    user = get_user_model().objects.create_user("bench-reviewer", password="x")
    user.groups.add(Group.objects.get_or_create(name="reviewer")[0])
    with connection.cursor() as cursor:
        cursor.execute(MINE_SQL, {"mine_per_mille": round(mine * 1000), "reviewer": user.pk})
        decisions = cursor.rowcount
    # The SQL key must be the product's.
    for score, key in Item.objects.filter(queue_key__isnull=False).values_list(
        "queue_score", "queue_key"
    )[:2000]:
        assert key == queue_key(score, breached=False), (score, key)
    breached = items_sla_refresh()
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE moderation_item")
        cursor.execute("VACUUM ANALYZE moderation_report")
        cursor.execute("VACUUM ANALYZE moderation_decision")
    # A team reviewer: three team queues (the default one has no team: theirs too, as every
    # reviewer's), reading two languages.
    team_user = get_user_model().objects.create_user("bench-team-reviewer", password="x")
    team_user.groups.add(Group.objects.get(name="reviewer"), *teams[:3])
    ReviewerSettings.objects.create(user=team_user, languages=["pt", "de"])
    return {
        "sources": sources,
        "user": user,
        "team_user": team_user if teams else None,
        "breached": breached,
        "reports": reports,
        "decisions": decisions,
        "seconds": time.monotonic() - started,
    }


def deep_cursor() -> str:
    """The cursor of the item 80 % down the queue, as a "Next page" link would carry it."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM moderation_item WHERE status IN ('flagged', 'failed', 'unrouted',"
            " 'reported')"
        )
        waiting = cursor.fetchone()[0]
        cursor.execute(
            "SELECT queue_key, id FROM moderation_item "
            "WHERE status IN ('flagged', 'failed', 'unrouted', 'reported') "
            "AND queue_key IS NOT NULL "
            "ORDER BY queue_key, id OFFSET %s LIMIT 1",
            [int(waiting * 0.8)],
        )
        key, item_id = cursor.fetchone()
    return f"{key!r}_{item_id}"


NEXT_LINK = re.compile(r'href="([^"]*)" id="next-page"')


def page_urls(kind: str, sources: list[Source]):
    """Endless URLs of one page kind; the deep kind follows the pages' own links."""
    if kind in ("first", "team-first"):
        while True:
            yield "/"
    elif kind == "team-next":
        while True:
            yield "/queue/next/"
    elif kind == "filtered":
        while True:
            yield f"/?source={sources[1].pk}&score_min=0.6&score_max=0.8"
    elif kind == "search":
        while True:
            yield f"/?q={SEARCH_TERM}"
    elif kind == "reported":
        while True:
            yield "/?reported=1"
    elif kind == "reason":
        while True:
            yield "/?report_reason=harassment"
    elif kind == "mine":
        while True:
            yield "/?status=mine"
    elif kind == "mine-search":
        while True:
            yield f"/?status=mine&q={SEARCH_TERM}"
    else:
        start = f"/?after={deep_cursor()}"
        url = start
        while True:
            following = yield url
            url = following or start


def page_queries(sql_log: list[dict]) -> list[str]:
    """The view's page queries: those that read a page of items in queue order (a score
    filter reads up to three key ranges, one after the other), or of the reviewer's
    decisions ("decided by me")."""
    found = [
        query["sql"]
        for query in sql_log
        if (
            'FROM "moderation_item"' in query["sql"] or 'FROM "moderation_decision"' in query["sql"]
        )
        and "ORDER BY" in query["sql"]
        and re.search(r"LIMIT \d+$", query["sql"])
        and not query["sql"].startswith("SELECT (SELECT")
    ]
    if not found:
        raise RuntimeError("no page query captured")
    return found


# Below this many items the planner may rightly read the whole small table rather than an
# index; the index check then asks whether an index can serve the query (enable_seqscan off).
SMALL_TABLE = 20_000


def measure(
    kind: str, client: Client, sources: list[Source], requests: int, *, small: bool = False
) -> dict:
    urls = page_urls(kind, sources)
    url = next(urls)
    timings: list[float] = []
    rows = 0
    for n in range(WARMUP + requests):
        started = time.perf_counter()
        response = client.get(url)
        elapsed = (time.perf_counter() - started) * 1000
        if kind == "team-next":
            assert response.status_code == 302 and "/items/" in response.url, response
            # Let go of it, so each "next" does the whole search again.
            Item.objects.filter(claimed_by__isnull=False).update(
                claimed_by=None, claim_expires_at=None
            )
        else:
            assert response.status_code == 200, (url, response.status_code)
        page = response.content.decode()
        if n >= WARMUP:
            timings.append(elapsed)
            rows += page.count('class="queue-row')
        found = NEXT_LINK.search(page)
        url = urls.send(found[1].replace("&amp;", "&") if found and kind == "deep" else None)
    with CaptureQueriesContext(connection) as captured:
        client.get(url)
    page_sql = page_queries(captured.captured_queries)
    sql_timings = [
        sum(times) for times in zip(*(timed(sql, requests) for sql in page_sql), strict=True)
    ]
    # Beside the page: the status counts and the SLA header, one query each.
    figures = [q["sql"] for q in captured.captured_queries if q["sql"].startswith("SELECT (SELECT")]
    counts_timings = timed(figures[0], requests) if figures else [0.0]
    sla_timings = timed(figures[1], requests) if len(figures) > 1 else [0.0]
    with connection.cursor() as cursor:
        plans = []
        if small:
            cursor.execute("SET enable_seqscan = off")
        for sql in page_sql:
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + sql)
            plans.append("\n".join(row[0] for row in cursor.fetchall()))
        if small:
            cursor.execute("RESET enable_seqscan")
        plan = "\n-- next key range --\n".join(plans)
    return {
        "p50": statistics.median(timings),
        "p99": percentile(timings, 0.99),
        "sql_p50": statistics.median(sql_timings),
        "sql_p99": percentile(sql_timings, 0.99),
        "counts_p50": statistics.median(counts_timings),
        "sla_p50": statistics.median(sla_timings),
        "queries": len(captured.captured_queries),
        "rows": rows / requests,
        "plan": plan,
        "sql": page_sql,
        "indexes": sorted(
            set(
                re.findall(r"(?:Index|Index Only) Scan(?: Backward)? using (\w+)", plan)
                + re.findall(r"Bitmap Index Scan on (\w+)", plan)
            )
        ),
        "seq_scan": "Seq Scan on moderation_item" in plan,
    }


def run_size(
    count: int, requests: int, queues: int = 0, reported: float = 0.0, mine: float = 0.0
) -> dict:
    print(
        f"\n=== {count:,} items, {queues or 1} queue(s), {reported:.0%} reported ({load()}) ===",
        flush=True,
    )
    pgdb.recreate_database(DB_NAME)
    seeded = seed(count, queues, reported, mine)
    print(
        f"seeded in {seeded['seconds']:.1f} s; {seeded['breached']:,} items marked past SLA; "
        f"{seeded['reports']:,} open reports; {seeded['decisions']:,} decided by the reviewer",
        flush=True,
    )
    # As production sees it behind the TLS proxy (SSL redirect and HSTS are on there).
    client = Client(HTTP_X_FORWARDED_PROTO="https")
    client.force_login(seeded["user"])
    team_client = Client(HTTP_X_FORWARDED_PROTO="https")
    if seeded["team_user"] is not None:
        team_client.force_login(seeded["team_user"])
    results = {}
    for kind in kinds_for(queues, reported, mine):
        result = measure(
            kind,
            team_client if kind.startswith("team") else client,
            seeded["sources"],
            requests,
            small=count < SMALL_TABLE,
        )
        result["load"] = os.getloadavg()[0]
        results[kind] = result
        print(
            f"{kind:9} page p50 {result['p50']:6.1f} ms  p99 {result['p99']:6.1f} ms | "
            f"page SQL p50 {result['sql_p50']:5.2f} ms  p99 {result['sql_p99']:5.2f} ms | "
            f"counts SQL p50 {result['counts_p50']:5.2f} ms, "
            f"SLA SQL p50 {result['sla_p50']:5.2f} ms | "
            f"{result['queries']} queries, {result['rows']:.0f} rows | "
            f"indexes: {', '.join(result['indexes']) or 'NONE'} | load {result['load']:.2f}",
            flush=True,
        )
        plan_note = " (enable_seqscan off: a small table)" if count < SMALL_TABLE else ""
        print(
            f"--- EXPLAIN (ANALYZE, BUFFERS){plan_note}, {kind}, {count:,} items:\n"
            f"{result['plan']}\n"
        )
    return results


def kinds_for(queues: int, reported: float = 0.0, mine: float = 0.0) -> tuple[str, ...]:
    return (
        KINDS
        + (TEAM_KINDS if queues > 1 else ())
        + (REPORT_KINDS if reported > 0 else ())
        + (MINE_KINDS if mine > 0 else ())
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="2000,20000", help="comma-separated item counts")
    parser.add_argument("--requests", type=int, default=200, help="timed requests per kind")
    parser.add_argument("--strict", action="store_true", help="exit 2 when a target is missed")
    parser.add_argument("--keep", action="store_true", help="keep the database at the end")
    parser.add_argument(
        "--queues", type=int, default=0, help="team queues (the default one included), e.g. 10"
    )
    parser.add_argument(
        "--reported",
        type=float,
        default=0.0,
        help="share of items with open reports, e.g. 0.1 (issue 26)",
    )
    parser.add_argument(
        "--mine",
        type=float,
        default=0.0,
        help='share of items decided by the benched reviewer, e.g. 0.2 ("decided by me")',
    )
    args = parser.parse_args()
    sizes = [int(size) for size in args.sizes.split(",")]
    by_size = {
        size: run_size(size, args.requests, args.queues, args.reported, args.mine) for size in sizes
    }

    print(
        "\n| kind | " + " | ".join(f"{s:,} p50 / p99 (SQL p50)" for s in sizes) + " | ratio p99 |"
    )
    print("|---|" + "---|" * len(sizes) + "---|")
    missed = []
    for kind in kinds_for(args.queues, args.reported, args.mine):
        cells = [
            f"{by_size[s][kind]['p50']:.1f} / {by_size[s][kind]['p99']:.1f} ms "
            f"({by_size[s][kind]['sql_p50']:.2f} ms)"
            for s in sizes
        ]
        ratio = by_size[sizes[-1]][kind]["p99"] / by_size[sizes[0]][kind]["p99"]
        print(f"| {kind} | " + " | ".join(cells) + f" | {ratio:.2f} |")
        for size in sizes:
            result = by_size[size][kind]
            if result["p99"] >= TARGET_P99_MS:
                missed.append(f"{kind} at {size:,}: p99 {result['p99']:.1f} ms >= 50 ms")
            if result["seq_scan"] or not result["indexes"]:
                missed.append(f"{kind} at {size:,}: page query not served by an index")
        if len(sizes) > 1 and ratio > TARGET_RATIO:
            missed.append(f"{kind}: p99 grows {ratio:.2f}x from {sizes[0]:,} to {sizes[-1]:,}")
    print("\nTargets: " + ("all met" if not missed else "MISSED:\n  " + "\n  ".join(missed)))
    if not args.keep:
        pgdb.drop_database(DB_NAME)
    return 2 if missed and args.strict else 0


if __name__ == "__main__":
    sys.exit(main())
