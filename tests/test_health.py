"""/healthz and /readyz: unauthenticated, cheap, plain http, any Host header."""

import json
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from labelers.models import DispatchHeartbeat
from lib import health


@pytest.fixture
def fresh_dispatcher(db):
    DispatchHeartbeat.objects.update_or_create(pk=1, defaults={"ran_at": timezone.now()})


def test_healthz_answers_without_login_database_or_allowed_host(client, settings):
    settings.ALLOWED_HOSTS = ["moderation.example.com"]
    response = client.get("/healthz", HTTP_HOST="10.0.0.7:8000")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_health_endpoints_are_not_redirected_to_https(client, settings, fresh_dispatcher):
    settings.SECURE_SSL_REDIRECT = True
    assert client.get("/healthz").status_code == 200
    assert client.get("/readyz").status_code == 200
    assert client.get("/accounts/login/").status_code == 301  # everything else is


def test_readyz_is_ok_when_database_broker_migrations_and_dispatcher_are(client, fresh_dispatcher):
    response = client.get("/readyz/", HTTP_HOST="127.0.0.1")
    assert response.status_code == 200, response.json()
    assert response.json()["checks"] == {
        "database": "ok",
        "migrations": "ok",
        "broker": "ok",
        "dispatcher": "ok",
    }


def test_a_stalled_dispatcher_is_reported_but_keeps_the_web_ready_by_default(client, db, settings):
    """A dead beat must not take every web instance (and intake) out of rotation."""
    DispatchHeartbeat.objects.create(pk=1, ran_at=timezone.now() - timedelta(minutes=5))
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["status"] == "ok"
    assert response.json()["checks"]["dispatcher"].startswith("the dispatcher last ran")


def test_readyz_is_unavailable_on_a_stalled_dispatcher_when_asked_to_check_it(client, db, settings):
    settings.READYZ_CHECK_DISPATCHER = True
    DispatchHeartbeat.objects.create(pk=1, ran_at=timezone.now() - timedelta(minutes=5))
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["dispatcher"].startswith("the dispatcher last ran")


def test_readyz_says_which_check_failed_without_its_secrets(
    client, fresh_dispatcher, monkeypatch, caplog
):
    def refused():
        raise ConnectionRefusedError("redis://:hunter2@broker:6379/0 refused")

    monkeypatch.setattr(health, "check_broker", refused)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"] == "unreachable (ConnectionRefusedError)"
    assert "hunter2" not in response.content.decode()


def test_readyz_reports_unapplied_migrations(client, fresh_dispatcher, monkeypatch):
    class Pending:
        def __init__(self, connection):
            self.loader = type("L", (), {"graph": type("G", (), {"leaf_nodes": list})()})()

        def migration_plan(self, targets):
            return [("moderation", "9999_future")]

    monkeypatch.setattr(health, "_migrations_current", False)
    monkeypatch.setattr(health, "MigrationExecutor", Pending)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["migrations"] == "1 migrations not applied"


def test_readyz_fails_fast_on_an_unreachable_redis_broker(
    client, fresh_dispatcher, settings, monkeypatch
):
    settings.READYZ_BROKER_TIMEOUT = 1.0
    # Celery reads CELERY_BROKER_URL from the environment before its configuration.
    monkeypatch.setenv("CELERY_BROKER_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setitem(health.celery_app.conf, "broker_url", "redis://127.0.0.1:1/0")
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"].startswith("unreachable")
    assert response.json()["seconds"] < 5


def test_the_readyz_command_checks_the_dispatcher_for_beats_health_check(db, capsys):
    DispatchHeartbeat.objects.create(pk=1, ran_at=timezone.now() - timedelta(minutes=5))
    with pytest.raises(CommandError, match="not ready"):
        call_command("readyz", "--check", "dispatcher")
    assert "the dispatcher last ran" in capsys.readouterr().out
    DispatchHeartbeat.objects.filter(pk=1).update(ran_at=timezone.now())
    call_command("readyz", "--check", "dispatcher")
    assert json.loads(capsys.readouterr().out) == {"dispatcher": "ok"}
