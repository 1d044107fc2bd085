"""Retention purge benchmark: beat's purge (moderation/services/retention.py) against a bare
batched UPDATE that blanks the same columns (the baseline), in one run, on PostgreSQL.

    .venv/bin/python bench/retention.py [--old 20000] [--kept 200000]

1. Drops and recreates the PostgreSQL database `bench_retention` (127.0.0.1:5432, user
   postgres, trust auth; no other database is touched) and migrates it.
2. Seeds, server-side in INSERT ... SELECT, a source keeping content 30 days with `--old`
   items decided 60 days ago (half with an image) and `--kept` items decided yesterday (all
   with an image: the purge's "is this file still shown?" lookups search among them), and a
   source keeping content forever with 2 x `--old` old items for the baseline. One label per
   item. VACUUM ANALYZE.
3. Times, interleaved: the baseline (one UPDATE of 200 ids per transaction blanking text,
   media names and metadata, and setting purged_at) over half its items; the purge
   (retention_purge, batches of 200, every step: holds, appeals, golden items checked, every
   table touched, files looked up and deleted); the baseline over the other half. Then an
   idle purge run (nothing due) against the index scans it makes.
4. Prints items/s of each and the ratio product / baseline (mean of the two baseline runs).
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

DB_NAME = "bench_retention"
pgdb.use_database(DB_NAME)

from django.db import connection, transaction  # noqa: E402

from labelers.models import Labeler, LabelerVersion  # noqa: E402
from moderation.models import Item, Source, hash_token  # noqa: E402
from moderation.services.retention import retention_purge  # noqa: E402

BATCH = 200

SEED_ITEMS = """
INSERT INTO moderation_item (
    source_id, external_id, webhook_id, content_text, content_image, content_image_type,
    content_video, content_video_type, content_hash, metadata, received_at, waiting_since,
    revision, status, sla_breached, verdict_versions, decided_at, legal_hold, legal_hold_reason
)
SELECT %(source)s, %(prefix)s || n, %(prefix)s || 'wh-' || n, 'post text ' || n,
    CASE WHEN n %% %(image_every)s = 0
         THEN 'images/' || %(prefix)s || '/' || md5(%(prefix)s || n) || '.png' ELSE '' END,
    CASE WHEN n %% %(image_every)s = 0 THEN 'image/png' ELSE '' END,
    '', '', md5(%(prefix)s || n) || md5(n::text), '{"thread": "t"}',
    now() - make_interval(days => %(days)s), now() - make_interval(days => %(days)s),
    1, 'decided', false, '[]', now() - make_interval(days => %(days)s), false, ''
FROM generate_series(1, %(count)s) AS n
"""

SEED_LABELS = """
INSERT INTO labelers_label (
    item_id, revision, labeler_version_id, status, label, confidence, model, attempts,
    cache_hit, error, content_hash, worker, bulk, created_at
)
SELECT id, 1, %(version)s, 'done', '0', 0.9, 'm', 1, false, '', content_hash, '', false, now()
FROM moderation_item
"""

BASELINE_UPDATE = """
UPDATE moderation_item SET content_text = '', content_image = '', content_image_type = '',
    content_video = '', content_video_type = '', metadata = '{}', purged_at = now()
WHERE id = ANY(%s)
"""


def seed(old: int, kept: int) -> tuple[Source, list[int]]:
    version = LabelerVersion.objects.create(
        labeler=Labeler.objects.create(name="bench", slug="bench"), number=1, criteria_text="x"
    )
    purged = Source.objects.create(
        name="Purged", slug="purged", api_token_hash=hash_token("a"), retention_days=30
    )
    forever = Source.objects.create(
        name="Forever", slug="forever", api_token_hash=hash_token("b"), retention_days=None
    )
    with connection.cursor() as cursor:
        for source, prefix, count, days, image_every in (
            (purged, "old-", old, 60, 2),
            (purged, "kept-", kept, 1, 1),
            (forever, "base-", 2 * old, 60, 2),
        ):
            cursor.execute(
                SEED_ITEMS,
                {
                    "source": source.pk,
                    "prefix": prefix,
                    "count": count,
                    "days": days,
                    "image_every": image_every,
                },
            )
        cursor.execute(SEED_LABELS, {"version": version.pk})
        cursor.execute("VACUUM ANALYZE")
    baseline_ids = list(
        Item.objects.filter(source=forever).order_by("pk").values_list("pk", flat=True)
    )
    return purged, baseline_ids


def baseline(ids: list[int]) -> float:
    started = time.perf_counter()
    for start in range(0, len(ids), BATCH):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute(BASELINE_UPDATE, [ids[start : start + BATCH]])
    return len(ids) / (time.perf_counter() - started)


def product(expected: int) -> float:
    started = time.perf_counter()
    result = retention_purge(max_batches=10**9)
    elapsed = time.perf_counter() - started
    assert result.purged == expected and not result.more, result
    return result.purged / elapsed


def idle_runs() -> list[float]:
    """Milliseconds of 20 runs with nothing due. Right after a big purge the partial indexes
    still hold the purged rows' dead entries until (auto)vacuum removes them."""
    timings = []
    for _ in range(20):
        started = time.perf_counter()
        assert retention_purge().purged == 0
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--old", type=int, default=20_000)
    parser.add_argument("--kept", type=int, default=200_000)
    args = parser.parse_args()
    pgdb.recreate_database(DB_NAME)
    try:
        _, baseline_ids = seed(args.old, args.kept)
        half = len(baseline_ids) // 2
        first = baseline(baseline_ids[:half])
        purge = product(args.old)
        second = baseline(baseline_ids[half:])
        idle = idle_runs()
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE moderation_item")
        vacuumed = idle_runs()
        mean_baseline = (first + second) / 2
        print(f"items: {args.old} due, {args.kept} kept (with images) in the same source")
        print(f"baseline (bare UPDATE, 200 per transaction): {first:,.0f} then {second:,.0f}/s")
        print(f"retention_purge (200 per transaction):       {purge:,.0f}/s")
        print(f"ratio purge / baseline:                       {purge / mean_baseline:.2f}")
        print(f"idle run (nothing due), median of 20:         {pgdb.median(idle):.1f} ms")
        print(f"  the same after VACUUM (autovacuum's work):  {pgdb.median(vacuumed):.1f} ms")
    finally:
        pgdb.drop_database(DB_NAME)
    return 0


if __name__ == "__main__":
    sys.exit(main())
