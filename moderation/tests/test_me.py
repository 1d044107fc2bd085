"""A reviewer's own pages: their password."""

import pytest

from moderation.tests.factories import UserFactory

pytestmark = pytest.mark.django_db


def test_a_reviewer_changes_their_own_password_from_settings(client):
    reviewer = UserFactory(reviewer=True)
    client.force_login(reviewer)
    settings_page = client.get("/me/settings/").content.decode()
    assert 'href="/me/password/"' in settings_page

    page = client.get("/me/password/")
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="main"' in html and "Queue</a>" in html  # the site's frame, not the admin's

    response = client.post(
        "/me/password/",
        {
            "old_password": "pw-for-tests",
            "new_password1": "a-new-long-passphrase-42",
            "new_password2": "a-new-long-passphrase-42",
        },
    )
    assert response.status_code == 302 and response["Location"] == "/me/settings/"
    reviewer.refresh_from_db()
    assert reviewer.check_password("a-new-long-passphrase-42")
    # Still logged in (the session follows the new password).
    assert client.get("/me/settings/").status_code == 200


def test_a_wrong_old_password_changes_nothing(client):
    reviewer = UserFactory(reviewer=True)
    client.force_login(reviewer)
    response = client.post(
        "/me/password/",
        {
            "old_password": "wrong",
            "new_password1": "a-new-long-passphrase-42",
            "new_password2": "a-new-long-passphrase-42",
        },
    )
    assert response.status_code == 200
    reviewer.refresh_from_db()
    assert reviewer.check_password("pw-for-tests")


def test_the_password_page_needs_a_login(client):
    response = client.get("/me/password/")
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
