"""Scale-out on one machine: 2 gunicorn instances, 2 Celery worker processes (as if on two
hosts) and one beat on the same PostgreSQL + Redis, the fake labeling API over HTTP.

    .venv/bin/python bench/scaleout.py [--items 600] [--concurrency 8] [--latency 0.2]

1. A burst of signed webhooks spread over both web instances: every item labeled exactly
   once (one API call per item), the split of labels between the two workers, the drain
   rate next to the bound 2 x concurrency / latency.
2. A second burst; one worker killed with -9 once 30 % of it is labeled: the other worker
   finishes everything, and the time from the kill to the last label is printed (the
   issue's bar: within a minute; before worker heartbeats the dead worker's running labels
   waited for their 180 s lease, its prefetched ones for the 5-minute stale timeout).

Uses database bench_scaleout and Redis db 12 (flushed before and after).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PG = "postgres://postgres@127.0.0.1:5432"
DB = "bench_scaleout"
REDIS_DB = "12"


def psql(sql: str) -> None:
    subprocess.run(["psql", f"{PG}/postgres", "-q", "-c", sql], check=True, capture_output=True)


def flush_redis() -> None:
    subprocess.run(["redis-cli", "-n", REDIS_DB, "flushdb"], check=True, capture_output=True)


def show(title: str, burst, *, bound: float) -> None:
    print(f"\n{title}")
    print(
        f"  webhooks: {burst.items} in {burst.sent_seconds:.1f} s; answers {dict(burst.statuses)}"
    )
    print(f"  split over the web instances: {dict(burst.by_web)}")
    split = ", ".join(f"pid {w}: {n}" for w, n in sorted(burst.by_worker.items(), key=str))
    print(f"  labels done by worker: {split}")
    print(
        f"  drained in {burst.drained_seconds:.1f} s from the first webhook: "
        f"{burst.drain_rate:.0f} items/s (bound 2 x C / L = {bound:.0f}/s)"
    )
    print(
        f"  API calls {burst.api_calls} for {burst.items} items; items called twice "
        f"{burst.items_called_twice}; labels not done {burst.labels_not_done}"
    )
    if burst.killed_at is not None:
        print(
            f"  worker killed (-9) at {burst.killed_at:.1f} s; all labels done "
            f"{burst.recovered_seconds:.1f} s after the kill"
        )


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--items", type=int, default=600)
    parser.add_argument("--concurrency", type=int, default=8, help="threads per worker")
    parser.add_argument("--latency", type=float, default=0.2, help="fake API latency (s)")
    parser.add_argument("--kill-at", type=float, default=0.3, help="share labeled at the kill")
    parser.add_argument(
        "--without-heartbeats",
        action="store_true",
        help="WORKER_HEARTBEAT_SECONDS=0: how it was before (waits up to --timeout)",
    )
    parser.add_argument("--timeout", type=float, default=180, help="per burst (s)")
    args = parser.parse_args()

    psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    psql(f"CREATE DATABASE {DB}")
    os.environ.update(
        DATABASE_URL=f"{PG}/{DB}",
        CELERY_BROKER_URL=f"redis://127.0.0.1:6379/{REDIS_DB}",
        SECRET_KEY="bench",
        LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    flush_redis()
    import django

    django.setup()
    from django.core.management import call_command

    from testkit.fake_api import FakeLabelAPI
    from testkit.scaleout import ScaleOut

    call_command("migrate", verbosity=0)
    fake = FakeLabelAPI().start()
    fake.configure(latency=args.latency)
    extra = {"WORKER_HEARTBEAT_SECONDS": 0} if args.without_heartbeats else {}
    bound = 2 * args.concurrency / args.latency if args.latency else float("inf")
    try:
        with (
            tempfile.TemporaryDirectory() as tmp,
            ScaleOut(folder=Path(tmp), api=fake, concurrency=args.concurrency, **extra) as cluster,
        ):
            first = cluster.burst(args.items, timeout=args.timeout)
            show("1. burst over 2 web instances, 2 workers, 1 beat", first, bound=bound)
            second = cluster.burst(args.items, kill_when_done=args.kill_at, timeout=args.timeout)
            show("2. the same with one worker killed -9 mid-burst", second, bound=bound)
            ok = (
                first.labels_not_done == 0
                and first.api_calls == first.items
                and len(first.by_worker) == 2
                and second.labels_not_done == 0
                and (second.recovered_seconds or 0) < 60
            )
            print("\nverdict:", "OK" if ok else "NOT OK")
            return 0 if ok else 1
    finally:
        fake.stop()
        from django.db import connections

        connections.close_all()
        psql(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        flush_redis()


if __name__ == "__main__":
    sys.exit(main())
