"""Where a webhook's CPU goes, in one process: the WSGI application called directly.

    .venv/bin/python bench/profile_intake.py [--requests 2000] [--rounds 3] [--reports]
                                             [--profile] [--keep]

PostgreSQL (database bench_profile_intake$BENCH_DB_SUFFIX, recreated) + Redis db 12 (the
broker; nothing is sent to it by intake). The production settings (DEBUG off, CONN_MAX_AGE 60)
with the bench's URLs (bench/settings.py): the same middleware stack gunicorn runs, without
gunicorn, the socket and the load generator, so the figures are CPU per request of this
thread and of its one PostgreSQL backend, little moved by other work on the machine.

Each round runs, interleaved, N baseline requests (JSON parse + one INSERT, bench/
baseline_urls.py), N signed item webhooks and, with --reports, N signed reports (each a
new reporter's report of one of the seeded items, as bench/intake.py does). It prints app and
PostgreSQL CPU per request and the statements per request; --profile prints a cProfile of
the webhooks (and reports) of the last round, by cumulative time.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]  # bench/queue.py
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from bench import cpu, pgdb  # noqa: E402
from bench.intake import SEED_ITEMS, build_requests  # noqa: E402

DB = pgdb.database_name("bench_profile_intake")
PG = "postgres://postgres@127.0.0.1:5432"


def psql(db: str, sql: str) -> None:
    subprocess.run(["psql", f"{PG}/{db}", "-q", "-c", sql], check=True, capture_output=True)


def setup_env() -> None:
    data = Path(tempfile.mkdtemp(prefix="profile-intake-"))
    os.environ.update(
        {
            "DATABASE_URL": f"{PG}/{DB}",
            "SECRET_KEY": "bench",
            "DEBUG": "false",
            "SECURE_SSL_REDIRECT": "false",
            "CELERY_BROKER_URL": "redis://127.0.0.1:6379/12",
            "CONN_MAX_AGE": "3600",  # one backend for the whole run
            "DATA_DIR": str(data),
            "DJANGO_SETTINGS_MODULE": "bench.settings",
            "LOG_LEVEL": "WARNING",
        }
    )


def environ(path: str, body: bytes, headers: dict[str, str]) -> dict:
    env = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1",
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.version": (1, 0),
    }
    for name, value in headers.items():
        env["HTTP_" + name.upper().replace("-", "_")] = value
    return env


def build(kind: str, n: int, secret: str) -> list[dict]:
    """n signed requests of one kind as WSGI environs: bench/intake.py's own requests."""
    conf = {"secret": secret, "label": "profile", "target": kind}
    return [
        environ(path, body, {k: v for k, v in headers.items() if k != "Content-Type"})
        for path, body, headers in build_requests(conf, n, "p")
    ]


def run(app, requests: list[dict], backend_pid: int, profiler=None) -> dict:
    statuses: dict[int, int] = {}

    def start_response(status, headers, exc_info=None):
        code = int(status.split()[0])
        statuses[code] = statuses.get(code, 0) + 1

    pg0 = cpu.process_cpu(backend_pid, children=False)
    t0 = time.thread_time()
    w0 = time.perf_counter()
    if profiler:
        profiler.enable()
    for env in requests:
        response = app(env, start_response)
        b"".join(response)
        response.close()
    if profiler:
        profiler.disable()
    wall = time.perf_counter() - w0
    app_cpu = time.thread_time() - t0
    pg = cpu.process_cpu(backend_pid, children=False) - pg0
    n = len(requests)
    return {
        "app_ms": app_cpu * 1000 / n,
        "pg_ms": pg * 1000 / n,
        "wall_ms": wall * 1000 / n,
        "codes": statuses,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--reports", action="store_true")
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the database afterwards")
    parser.add_argument(
        "--sql", action="append", default=[], help="SQL run after migrate (experiments)"
    )
    args = parser.parse_args()

    psql("postgres", f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    psql("postgres", f"CREATE DATABASE {DB}")
    setup_env()
    import django

    django.setup()
    from django.core.management import call_command
    from django.core.wsgi import get_wsgi_application
    from django.db import connection

    call_command("migrate", verbosity=0)
    with connection.cursor() as c:
        c.execute(
            "CREATE TABLE bench_baseline (id bigserial PRIMARY KEY, external_id text, body jsonb)"
        )
        for statement in args.sql:
            c.execute(statement)
    from labelers.criteria import source_setup
    from moderation.models import Item, Source

    source, secret, _ = source_setup(name="Bench", slug="bench")
    if args.reports:
        Item.objects.bulk_create(
            Item(
                source=Source.objects.get(pk=source.pk),
                external_id=f"seed-{i}",
                webhook_id=f"seed-{i}",
                content_text=f"seeded item {i}",
                content_hash=f"{i:064x}",
                status=Item.Status.LABELED,
                violation_score=0.05,
            )
            for i in range(SEED_ITEMS)
        )
    app = get_wsgi_application()
    connection.close()
    # Warm: imports, the connection, prepared statements, caches.
    kinds = ["baseline", "product", *(["reports"] if args.reports else [])]
    for kind in kinds:
        run(app, build(kind, 200, secret), 0)
    results: dict[str, list[dict]] = {k: [] for k in kinds}
    profiler = cProfile.Profile(time.thread_time) if args.profile else None  # CPU, not waits
    load = os.getloadavg()[0]
    for r in range(args.rounds):
        for kind in kinds:
            reqs = build(kind, args.requests, secret)
            last = r == args.rounds - 1 and kind != "baseline"
            with connection.cursor() as c:
                c.execute("SELECT pg_backend_pid()")
                (backend,) = c.fetchone()
            results[kind].append(run(app, reqs, backend, profiler if last else None))
    print(f"load average at start {load:.2f}, at end {os.getloadavg()[0]:.2f}")
    print(f"{'kind':<10} {'app ms':>8} {'pg ms':>8} {'wall ms':>8}  codes (per request; rounds)")
    for kind in kinds:
        for res in results[kind]:
            print(
                f"{kind:<10} {res['app_ms']:>8.3f} {res['pg_ms']:>8.3f} {res['wall_ms']:>8.3f}"
                f"  {res['codes']}"
            )
    base_app = sorted(r["app_ms"] for r in results["baseline"])[args.rounds // 2]
    for kind in kinds[1:]:
        app_ms = sorted(r["app_ms"] for r in results[kind])[args.rounds // 2]
        print(f"{kind}: median app CPU {app_ms:.3f} ms = {app_ms / base_app:.2f} x baseline")
    if profiler:
        out = io.StringIO()
        pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(60)
        print(out.getvalue())
    connection.close()
    if not args.keep:
        psql("postgres", f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
