"""Team page benchmark: /team/ (leads' figures per reviewer) at a team's full size, against
the plain SQL doing the same counting.

    .venv/bin/python bench/team.py [--reviewers 50] [--golden 2000] [--decisions 500000]
                                   [--appeal-share 0.1] [--requests 30]

The page's figures that read raw rows rather than daily counts are golden agreement (every
answer of every reviewer, all time, and per week) and appeals overturned (every decided
appeal). Both are bounded by the data's own shape: a reviewer answers a golden item at most
once (so answers <= reviewers x golden items), and appeals only follow removals.

1. Drops and recreates the PostgreSQL database `bench_team$BENCH_DB_SUFFIX` and migrates it.
2. Seeds, server-side: `--decisions` decided items (removed by the reviewers in turn over the
   last two years), the first `--golden` of them golden; every reviewer's answer to every
   golden item (the most the constraint allows; 90 % correct, 2 % skipped, answered over the
   last two years); an appeal, upheld or (1 in 4) overturned, of a share of the removals.
   VACUUM ANALYZE; the daily figures counted, as beat's task does.
3. Times, R times each after 3 warm-up runs: the whole page through the test Client (staff
   user, production settings and middleware); golden_agreement(); overturns_by_reviewer();
   and the baseline: one plain statement per figure (GROUP BY reviewer), their times added.
4. Prints p50 / p99 of each and the page's ratio against the baseline.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
ROOT = HERE.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import pgdb  # noqa: E402

DB_NAME = pgdb.database_name("bench_team")
pgdb.use_database(DB_NAME)

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402

from bench.pgdb import load, median, percentile  # noqa: E402
from labelers.criteria import source_setup  # noqa: E402
from labelers.dashboard_rollups import dashboard_rollups_refresh  # noqa: E402
from moderation.selectors.appeals import overturns_by_reviewer  # noqa: E402
from moderation.selectors.golden import golden_agreement  # noqa: E402

SEED = [
    """
    INSERT INTO moderation_item (
        source_id, external_id, webhook_id, content_text, content_image, content_image_type,
        content_video, content_video_type, content_hash, metadata, received_at,
        waiting_since, revision, status, sla_breached, verdict_versions, decided_at,
        decided_action, legal_hold, legal_hold_reason, language
    )
    SELECT %(source)s, 'team-' || n, 'team-wh-' || n, 'post text ' || n, '', '', '', '',
        md5(n::text), '{}', now() - make_interval(days => n %% 730),
        now() - make_interval(days => n %% 730), 1, 'decided', false, '[]',
        now() - make_interval(days => n %% 730), 'remove', false, '', 'en'
    FROM generate_series(1, %(decisions)s) AS n
    """,
    """
    INSERT INTO moderation_decision (
        item_id, reviewer_id, action, reason, note, created_at, revision, status_before,
        labeler_versions, report_ids
    )
    SELECT i.id, (%(reviewers)s)[1 + i.id %% cardinality(%(reviewers)s)], 'remove', 'spam', '',
        i.decided_at, 1, 'flagged', '[]', '[]'
    FROM moderation_item i
    """,
    """
    INSERT INTO moderation_goldenitem (item_id, revision, expected_action, note, active,
        created_at)
    SELECT id, 1, 'remove', '', true, now() - interval '800 days'
    FROM moderation_item ORDER BY id LIMIT %(golden)s
    """,
    """
    INSERT INTO moderation_goldenanswer (golden_id, reviewer_id, served_at, answered_at, action,
        reason, note, correct)
    SELECT g.id, r.id, now() - make_interval(hours => ((g.id * 7 + r.id * 13) %% 17520)::int),
        CASE WHEN (g.id + r.id) %% 50 = 0 THEN NULL
             ELSE now() - make_interval(hours => ((g.id * 7 + r.id * 13) %% 17520)::int) END,
        CASE WHEN (g.id + r.id) %% 50 = 0 THEN 'skip'
             WHEN (g.id * 3 + r.id) %% 10 = 0 THEN 'approve' ELSE 'remove' END,
        '', '',
        CASE WHEN (g.id + r.id) %% 50 = 0 THEN NULL ELSE (g.id * 3 + r.id) %% 10 <> 0 END
    FROM moderation_goldenitem g CROSS JOIN auth_user r
    WHERE r.id = ANY(%(reviewers)s)
    """,
    """
    INSERT INTO moderation_appeal (appeal_id, webhook_id, statement, status, received_at,
        decided_at, note, source_id, item_id, decision_id, decision_reviewer_id)
    SELECT 'appeal-' || d.id, 'appeal-wh-' || d.id, 'please', CASE WHEN d.id %% 4 = 0
        THEN 'overturned' ELSE 'upheld' END, d.created_at, d.created_at, '', %(source)s,
        d.item_id, d.id, d.reviewer_id
    FROM moderation_decision d
    WHERE d.id %% %(appeal_every)s = 0
    """,
]

# The best plain SQL for the same figures: one GROUP BY per figure.
BASELINE = [
    """
    SELECT a.reviewer_id, COUNT(*) FILTER (WHERE a.answered_at IS NOT NULL),
        COUNT(*) FILTER (WHERE a.correct), COUNT(*) FILTER (WHERE a.answered_at IS NULL)
    FROM moderation_goldenanswer a JOIN moderation_goldenitem g ON g.id = a.golden_id
    WHERE g.active GROUP BY a.reviewer_id
    """,
    """
    SELECT a.reviewer_id, date_trunc('week', a.answered_at), COUNT(*),
        COUNT(*) FILTER (WHERE a.correct)
    FROM moderation_goldenanswer a JOIN moderation_goldenitem g ON g.id = a.golden_id
    WHERE g.active AND a.answered_at >= now() - interval '8 weeks' GROUP BY 1, 2
    """,
    """
    SELECT a.decision_reviewer_id, COUNT(*), COUNT(*) FILTER (WHERE a.status = 'overturned')
    FROM moderation_appeal a
    WHERE a.status IN ('upheld', 'overturned') AND a.decision_reviewer_id IS NOT NULL
    GROUP BY a.decision_reviewer_id
    """,
]


def seed(*, reviewers: int, golden: int, decisions: int, appeal_share: float):
    source, _, _ = source_setup(name="Team", slug="team")
    users = get_user_model().objects.bulk_create(
        get_user_model()(username=f"reviewer{n:03d}") for n in range(reviewers)
    )
    params = {
        "source": source.pk,
        "reviewers": [user.pk for user in users],
        "golden": golden,
        "decisions": decisions,
        "appeal_every": max(1, round(1 / appeal_share)) if appeal_share else 10**12,
    }
    with connection.cursor() as cursor:
        for sql in SEED:
            cursor.execute(sql, params)
    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE")
    dashboard_rollups_refresh()  # beat's: the decisions per reviewer are read from days
    return get_user_model().objects.create_user(
        username="lead", password="x", is_staff=True, is_superuser=True
    )


def timed(run, repeat: int) -> list[float]:
    for _ in range(3):
        run()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return times


def baseline() -> None:
    with connection.cursor() as cursor:
        for sql in BASELINE:
            cursor.execute(sql)
            cursor.fetchall()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--reviewers", type=int, default=50)
    parser.add_argument("--golden", type=int, default=2000)
    parser.add_argument("--decisions", type=int, default=500_000)
    parser.add_argument("--appeal-share", type=float, default=0.1)
    parser.add_argument("--requests", type=int, default=30)
    parser.add_argument("--keep", action="store_true", help="keep the database at the end")
    args = parser.parse_args()
    print(f"bench/team.py ({load()})", flush=True)
    pgdb.recreate_database(DB_NAME)
    try:
        started = time.monotonic()
        lead = seed(
            reviewers=args.reviewers,
            golden=args.golden,
            decisions=args.decisions,
            appeal_share=args.appeal_share,
        )
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT (SELECT COUNT(*) FROM moderation_goldenanswer),"
                " (SELECT COUNT(*) FROM moderation_appeal)"
            )
            answers, appeals = cursor.fetchone()
        print(
            f"seeded in {time.monotonic() - started:.0f} s: {args.reviewers} reviewers, "
            f"{args.golden} golden items, {answers} golden answers, {args.decisions} "
            f"decisions, {appeals} decided appeals"
        )
        client = Client(HTTP_X_FORWARDED_PROTO="https")
        client.force_login(lead)

        def page():
            response = client.get("/team/")
            assert response.status_code == 200, response.status_code

        runs = {
            "page /team/ (whole request)": timed(page, args.requests),
            "golden_agreement()": timed(golden_agreement, args.requests),
            "overturns_by_reviewer()": timed(overturns_by_reviewer, args.requests),
            "baseline: plain GROUP BYs": timed(baseline, args.requests),
        }
        base = median(runs["baseline: plain GROUP BYs"])
        print(f"\n{'':<32}{'p50 ms':>10}{'p99 ms':>10}{'p50 / baseline':>16}")
        for name, times in runs.items():
            print(
                f"{name:<32}{median(times):10.1f}{percentile(times, 0.99):10.1f}"
                f"{median(times) / base:16.2f}"
            )
    finally:
        if not args.keep:
            pgdb.drop_database(DB_NAME)
    return 0


if __name__ == "__main__":
    sys.exit(main())
