"""The embedded default's files and per-process state: owner-only data, a broker whose
half-written messages no reader can see, caches that outsiders cannot grow."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import tracemalloc
import uuid
from pathlib import Path

import pytest

from lib import broker
from lib.cache import TTLCache

ROOT = Path(__file__).resolve().parents[1]


def test_a_fresh_data_folder_and_its_database_are_owner_only(tmp_path):
    data = tmp_path / "data"
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SECRET_KEY")}
    code = (
        "import django; django.setup(); "
        "from django.db import connection; connection.ensure_connection()"
    )
    subprocess.run(
        [sys.executable, "-c", code],
        env={**env, "DATA_DIR": str(data), "DJANGO_SETTINGS_MODULE": "config.settings"},
        cwd=ROOT,
        check=True,
        timeout=60,
    )
    assert stat.S_IMODE(data.stat().st_mode) == 0o700
    assert stat.S_IMODE((data / "db.sqlite3").stat().st_mode) == 0o600
    assert stat.S_IMODE((data / "secret_key").stat().st_mode) == 0o600


def test_a_half_written_message_never_looks_like_a_message(tmp_path, monkeypatch):
    seen = []
    real_replace = os.replace

    def spy(partial, final):
        seen.append((Path(partial), Path(final)))
        return real_replace(partial, final)

    monkeypatch.setattr(broker.os, "replace", spy)
    final = tmp_path / f"123_{uuid.uuid4()}.celery.msg"
    broker._write_atomic(str(final), b"{}")
    ((partial, written),) = seen
    assert written == final and final.read_bytes() == b"{}"
    # Neither the queue's name nor ".msg" anywhere in the partial's path below the folder.
    below = str(partial.relative_to(tmp_path))
    assert ".msg" not in below and "celery" not in below
    assert partial.parent != tmp_path


def test_a_flood_of_unknown_keys_keeps_a_cache_small():
    cache: TTLCache[None] = TTLCache(seconds=60, maxsize=1000)
    for n in range(1000):  # fill it, then measure what 100,000 more keys add
        cache.get(f"warm-{n}", lambda: None)
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for n in range(100_000):
        # Distinct keys as long as a uuid4's hex, made without one: under tracemalloc every
        # allocation is traced, and uuid4's own took half the test's time.
        cache.get(f"slug-{n:032x}-{n}", lambda: None)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    assert len(cache) == 1000
    assert grown < 512 * 1024, f"{grown} bytes kept for keys that were evicted"


@pytest.mark.django_db
def test_posts_to_random_webhook_slugs_do_not_grow_the_source_cache(client, monkeypatch):
    small = TTLCache(seconds=60, maxsize=50)
    monkeypatch.setattr("moderation.selectors.sources.source_cache", small)
    for n in range(300):
        response = client.post(
            f"/webhooks/random-{n}/", data=b"{}", content_type="application/json"
        )
        assert response.status_code == 404
    assert len(small) == 50
