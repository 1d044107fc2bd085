"""Failed logins are throttled per user name and address together (django-axes); staff can be asked
for a one-time password in the admin (django-otp)."""

import pytest
from axes.models import AccessAttempt
from django.contrib import admin
from django.contrib.admin import AdminSite
from django.test import Client, RequestFactory
from django_otp.plugins.otp_static.models import StaticDevice

from lib.logins import admin_site_require_otp, client_ip
from moderation.tests.factories import UserFactory

pytestmark = pytest.mark.django_db

LOGIN = "/accounts/login/"


def attempt(client, username, password, address="192.0.2.10"):
    return client.post(LOGIN, {"username": username, "password": password}, REMOTE_ADDR=address)


def test_a_user_is_locked_out_at_an_address_after_five_failures_from_it(client):
    user = UserFactory()
    for _ in range(4):
        assert attempt(client, user.username, "wrong", "192.0.2.10").status_code == 200
    assert attempt(client, user.username, "wrong", "192.0.2.10").status_code == 429  # the 5th
    response = attempt(client, user.username, "pw-for-tests", "192.0.2.10")
    assert response.status_code == 429
    assert b"Too many failed logins" in response.content
    assert "_auth_user_id" not in client.session


def test_wrong_logins_under_made_up_names_do_not_lock_out_others_behind_the_address(client):
    """An office behind one public address: someone's typos, or a guesser's made-up names,
    must not lock every colleague out. The lock is per user name and address together."""
    for n in range(5):
        attempt(client, f"guess{n}", "wrong", "203.0.113.9")
    for _ in range(5):
        attempt(client, "made-up", "wrong", "203.0.113.9")
    user = UserFactory()
    assert attempt(client, user.username, "pw-for-tests", "203.0.113.9").status_code == 302


def test_a_locked_out_user_still_logs_in_from_another_address(client):
    user = UserFactory()
    for _ in range(5):
        attempt(client, user.username, "wrong", "203.0.113.9")
    assert attempt(client, user.username, "pw-for-tests", "203.0.113.9").status_code == 429
    assert attempt(client, user.username, "pw-for-tests", "198.51.100.8").status_code == 302


def test_an_admin_unlocks_a_locked_out_user_from_the_admin(client):
    user = UserFactory()
    for _ in range(5):
        attempt(client, user.username, "wrong", "203.0.113.9")
    assert attempt(client, user.username, "pw-for-tests", "203.0.113.9").status_code == 429

    admin_client = Client()
    admin_client.force_login(UserFactory(is_staff=True, is_superuser=True))
    listing = admin_client.get("/admin/axes/accessattempt/")
    assert listing.status_code == 200 and user.username in listing.content.decode()
    [locked] = AccessAttempt.objects.filter(username=user.username)
    response = admin_client.post(
        "/admin/axes/accessattempt/",
        {"action": "delete_selected", "_selected_action": [locked.pk], "post": "yes"},
    )
    assert response.status_code == 302

    assert attempt(client, user.username, "pw-for-tests", "203.0.113.9").status_code == 302


def test_a_few_failures_do_not_lock_anyone_out(client):
    user = UserFactory()
    for _ in range(3):
        attempt(client, user.username, "wrong")
    assert attempt(client, user.username, "pw-for-tests").status_code == 302


def test_behind_the_proxy_the_address_is_the_one_the_proxy_appended(settings):
    settings.TRUSTED_PROXY_COUNT = 1
    request = RequestFactory().post(
        LOGIN, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="1.2.3.4, 198.51.100.20"
    )
    assert client_ip(request) == "198.51.100.20"  # "1.2.3.4" is whatever the client wrote
    settings.TRUSTED_PROXY_COUNT = 0
    assert client_ip(request) == "10.0.0.2"


@pytest.fixture
def otp_admin():
    admin_site_require_otp()
    yield
    admin.site.__class__ = AdminSite


def test_with_otp_required_staff_need_a_token_from_their_device_for_the_admin(client, otp_admin):
    staff = UserFactory(is_staff=True, is_superuser=True)
    device = StaticDevice.objects.create(user=staff, name="emergency")
    device.token_set.create(token="otp-12345")
    form = {"username": staff.username, "password": "pw-for-tests"}
    address = {"REMOTE_ADDR": "192.0.2.50"}

    response = client.post("/admin/login/?next=/admin/", form, **address)
    assert response.status_code == 200  # the form again: no token given
    assert client.get("/admin/", **address).status_code == 302

    response = client.post(
        "/admin/login/?next=/admin/",
        {**form, "otp_device": device.persistent_id, "otp_token": "otp-12345"},
        **address,
    )
    assert response.status_code == 302
    assert client.get("/admin/", **address).status_code == 200


def test_staff_logged_in_with_a_password_only_do_not_reach_the_otp_admin(client, otp_admin):
    staff = UserFactory(is_staff=True, is_superuser=True)
    client.force_login(staff)
    response = client.get("/admin/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
