"""Running the suite on every core (pytest-xdist): dev.py adds workers only when no tests are
named and none were chosen, and each worker keeps its files apart from the others'."""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.hashers import PBKDF2PasswordHasher
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder

import conftest
import dev
import tests.test_metrics
import tests.test_runner
from moderation.tests.factories import UserFactory


@pytest.fixture
def cores(monkeypatch):
    monkeypatch.delenv("TEST_WORKERS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1}, raising=False)


def test_the_whole_suite_runs_on_every_core_and_beside_the_two_lanes(cores):
    assert dev.test_args([]) == ["-n", "3"]  # 2 cores: the two lanes and one more
    assert dev.test_args(["-q", "-p", "no:cacheprovider", "-k", "webhook"]) == [
        "-n", "3", "-q", "-p", "no:cacheprovider", "-k", "webhook",
    ]  # fmt: skip


def test_named_tests_and_chosen_workers_are_left_as_given(cores):
    for args in (
        ["tests/test_layers.py"],
        ["tests/test_layers.py::test_no_import_cycles", "-q"],
        ["labelers/tests", "-x"],
        ["-n", "3"],
        ["-n3"],
        ["--numprocesses=auto"],
        ["-p", "no:xdist"],
    ):
        assert dev.test_args(args) == args


def test_workers_are_capped_at_four_and_test_workers_chooses(cores, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(16)), raising=False)
    assert dev.test_args([]) == ["-n", "4"]
    monkeypatch.setenv("TEST_WORKERS", "1")
    assert dev.test_args([]) == []
    monkeypatch.setenv("TEST_WORKERS", "3")
    assert dev.test_args([]) == ["-n", "3"]


@pytest.mark.skipif(not os.environ.get("PYTEST_XDIST_WORKER"), reason="only in an xdist worker")
def test_a_worker_has_a_data_folder_of_its_own():
    worker = os.environ["PYTEST_XDIST_WORKER"]
    folder = Path(settings.DATA_DIR)
    assert folder.parent.name == conftest.WORKER_FOLDERS and folder.name.endswith(f"-{worker}")
    # Everything kept below DATA_DIR follows it: the breaker's and throttle's state file, the
    # broker's folders, media, the SQLite test database.
    assert Path(settings.MEDIA_ROOT).parent == folder
    assert Path(
        settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("data_folder_in", folder)
    ).is_relative_to(folder)
    test_db = settings.DATABASES["default"].get("TEST", {}).get("NAME") or ""
    if settings.DATABASES["default"]["ENGINE"].endswith("sqlite3"):
        assert Path(test_db).parent == folder


class Item:
    """What the grouping reads of a collected test."""

    def __init__(self, module, *, e2e=False, fixturenames=()):
        self.module, self.e2e, self.fixturenames = module, e2e, fixturenames

    def get_closest_marker(self, name):
        return object() if name == "e2e" and self.e2e else None


def test_tests_that_start_processes_share_one_lane_and_browser_tests_another(request):
    lane = conftest._lane
    assert lane(Item(tests.test_runner, e2e=True)) == conftest.PROCESS_LANE
    assert lane(Item(tests.test_metrics)) == conftest.PROCESS_LANE  # it imports running_app
    # A browser test that also starts processes waits its turn in the processes lane.
    assert lane(Item(tests.test_metrics, fixturenames=("browser",))) == conftest.PROCESS_LANE
    assert lane(Item(tests.test_runner, fixturenames=("live_server", "browser"))) == (
        conftest.BROWSER_LANE
    )
    assert lane(Item(tests.test_runner, fixturenames=("db", "live_server"))) is None
    assert lane(request.node) is None
    for item in request.session.items:
        groups = [mark.args for mark in item.iter_markers("xdist_group")]
        assert groups == ([(lane(item),)] if lane(item) else [])


def test_installs_started_side_by_side_take_turns(monkeypatch):
    """CI starts its two test passes at once: both check .venv, and two pip installs into it
    at once broke one of them (a missing .pth file)."""
    seen = []

    def install(extras):
        with open(dev.ROOT / ".venv.lock") as other:
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                seen.append("held")
            else:
                seen.append("free")

    monkeypatch.setattr(dev, "_ensure_venv", install)
    dev.ensure_venv("test")
    assert seen == ["held"]


@pytest.mark.django_db
@pytest.mark.skipif(not os.environ.get("PYTEST_XDIST_WORKER"), reason="only in an xdist worker")
def test_a_workers_database_is_its_own_copy_of_the_runs_migrated_template():
    """Migrated once per run and copied per worker, not migrated in every worker."""
    templates = json.loads(os.environ[conftest.TEMPLATES_ENV])
    template = templates["databases"]["default"]
    own = connection.settings_dict["NAME"]
    assert own != template and os.environ["PYTEST_XDIST_WORKER"] not in template
    assert Path(f"{templates['lock']}.default").exists()  # built once, by the first worker
    applied = set(MigrationRecorder(connection).applied_migrations())
    assert ("moderation", "0001_initial") in applied
    if connection.vendor == "sqlite":
        assert Path(own).exists() and Path(template).exists()
        with closing(sqlite3.connect(template)) as copied_from:
            rows = copied_from.execute("SELECT app, name FROM django_migrations").fetchall()
    else:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [template])
            assert cursor.fetchone() is not None
        rows = applied  # the template takes no connections: it stays copyable
    assert set(rows) == applied


@pytest.mark.skipif(not os.environ.get("PYTEST_XDIST_WORKER"), reason="only in an xdist worker")
def test_a_worker_names_its_lanes_tests_by_their_group(request):
    """xdist keeps a group on one worker only if the workers name each test of it
    `nodeid@group`; a worker that was not told to (--dist comes from the controller's
    conftest, not the command line) named none, and every test went to any worker."""
    assert request.config.getvalue("loadgroup")
    for item in request.session.items:
        if lane := conftest._lane(item):
            assert item.nodeid.endswith(f"@{lane}"), item.nodeid
        else:
            assert "@" not in item.nodeid.rpartition("]")[2], item.nodeid


def test_the_tests_hash_passwords_quickly_in_a_format_production_verifies(db):
    """testkit.hashers: users made by the tests get 1,000-iteration PBKDF2 hashes, which
    the production hasher (what processes started by the tests use) verifies."""
    user = UserFactory()
    user.set_password("a-long-passphrase-42")
    algorithm, iterations, _, _ = user.password.split("$")
    assert (algorithm, iterations) == ("pbkdf2_sha256", "1000")
    production = PBKDF2PasswordHasher()
    assert production.verify("a-long-passphrase-42", user.password)
    assert production.must_update(user.password)  # upgraded at its first real login
