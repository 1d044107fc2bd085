"""Logins, logouts and failed logins are in the audit log, with the client address and the
name tried, never the password."""

import json

import pytest

from audit.models import AuditEntry
from moderation.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_a_login_is_recorded_with_its_address(client):
    user = UserFactory(username="ana")
    client.post(
        "/accounts/login/",
        {"username": "ana", "password": "pw-for-tests"},
        REMOTE_ADDR="198.51.100.4",
    )
    row = AuditEntry.objects.get(action="auth.login")
    assert (row.actor_id, row.actor_username, row.ip) == (user.pk, "ana", "198.51.100.4")
    assert (row.object_type, row.object_id) == ("user", str(user.pk))


def test_a_failed_login_keeps_the_name_tried_and_never_the_password(client):
    UserFactory(username="ana")
    client.post(
        "/accounts/login/",
        {"username": "ana", "password": "wrong-Secret-42"},
        REMOTE_ADDR="198.51.100.5",
    )
    row = AuditEntry.objects.get(action="auth.login_failed")
    assert (row.actor_id, row.actor_username, row.ip) == (None, "ana", "198.51.100.5")
    stored = json.dumps(list(AuditEntry.objects.values()), default=str)
    assert "wrong-Secret-42" not in stored


def test_a_logout_is_recorded(client):
    user = UserFactory(username="ana")
    client.force_login(user)
    client.post("/accounts/logout/")
    assert AuditEntry.objects.get(action="auth.logout").actor_id == user.pk
