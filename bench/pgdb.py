"""What the PostgreSQL page benchmarks share: their own database, Django pointed at it in
production settings, and the timing helpers.

A script run as `python bench/x.py` has bench/ first on sys.path, where bench/queue.py
stands in for the standard library's `queue`: each script drops that entry (and puts the
project's root in) before importing this module or Django.

    from bench import pgdb

    pgdb.use_database("bench_x")  # before importing anything that needs the settings
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time

import django
import psycopg
from django.core.management import call_command
from django.db import connection, connections

ADMIN_DSN = "postgresql://postgres@127.0.0.1:5432/postgres"


def database_name(name: str) -> str:
    """`name`, with $BENCH_DB_SUFFIX after it: two runs of one bench side by side (two
    checkouts) each drop and seed a database of their own."""
    return name + os.environ.get("BENCH_DB_SUFFIX", "")


def use_database(name: str) -> None:
    """Point Django at database `name` (127.0.0.1:5432, user postgres, trust auth) with the
    product's production settings: DEBUG off, persistent connections (CONN_MAX_AGE's
    default once DATABASE_URL is set), no broker; then set Django up."""
    os.environ["DATABASE_URL"] = f"postgres://postgres@127.0.0.1:5432/{name}"
    os.environ.setdefault("SECRET_KEY", f"{name}-not-secret")
    os.environ["DEBUG"] = "0"
    os.environ["ALLOWED_HOSTS"] = "testserver,localhost"
    os.environ.setdefault("DATA_DIR", tempfile.mkdtemp(prefix=f"{name}-"))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.pop("CELERY_BROKER_URL", None)  # pages need no broker; never touch Redis

    django.setup()


def admin(sql: str) -> None:
    """Run one statement on the maintenance database (CREATE/DROP DATABASE)."""
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        conn.execute(sql)


def recreate_database(name: str) -> None:
    """Drop and create database `name` (only that one), and migrate it."""
    connections.close_all()
    admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    admin(f"CREATE DATABASE {name}")
    call_command("migrate", verbosity=0)


def switch_database(name: str) -> None:
    """Point Django's connection at database `name` from now on (its settings stay)."""
    connections.close_all()
    connections["default"].settings_dict["NAME"] = name


def comment(name: str) -> str | None:
    """Database `name`'s comment (None: no comment, or no such database)."""
    with psycopg.connect(ADMIN_DSN, autocommit=True) as conn:
        row = conn.execute(
            "SELECT shobj_description(oid, 'pg_database') FROM pg_database WHERE datname = %s",
            [name],
        ).fetchone()
    return row[0] if row else None


def drop_database(name: str) -> None:
    connections.close_all()
    admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def median(values: list[float]) -> float:
    return statistics.median(values)


def timed(sql: str, repeat: int, params=None) -> list[float]:
    """Milliseconds of each of `repeat` runs of one query, rows fetched, on Django's
    connection."""
    timings = []
    with connection.cursor() as cursor:
        for _ in range(repeat):
            started = time.perf_counter()
            cursor.execute(sql, params)
            cursor.fetchall()
            timings.append((time.perf_counter() - started) * 1000)
    return timings


def load() -> str:
    """The machine's load: the two cores are shared, and other work shows in every figure."""
    return "load average " + " ".join(f"{value:.2f}" for value in os.getloadavg())
