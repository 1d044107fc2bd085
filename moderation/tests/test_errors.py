"""Every error page sits in the site's frame (the base template with its navigation) and
says why and where to go (issue 23)."""

import pytest
from django.test import Client, RequestFactory

from moderation.services.decisions import decision_record
from moderation.tests.factories import ItemFactory, UserFactory, reason_id
from moderation.views import errors

pytestmark = pytest.mark.django_db


def framed(html: str) -> bool:
    """The base template's frame: the navigation and the page's own stylesheet."""
    return 'aria-label="Main"' in html and "app.css" in html and 'id="error-page"' in html


def test_a_reviewer_opening_their_own_escalated_item_is_told_why_in_the_frame(client):
    reviewer = UserFactory()
    item = ItemFactory()
    decision_record(
        item=item, reviewer=reviewer, action="escalate", reason_id=reason_id("escalate")
    )
    client.force_login(reviewer)
    response = client.get(f"/items/{item.pk}/")
    html = response.content.decode()
    assert response.status_code == 403
    assert framed(html)
    assert "You escalated this item" in html
    assert 'href="/me/decisions/"' in html and 'href="/"' in html


def test_an_unknown_item_answers_a_framed_404(client):
    client.force_login(UserFactory())
    response = client.get("/items/987654/")
    assert response.status_code == 404
    html = response.content.decode()
    assert framed(html) and "Nothing is here" in html
    assert "matches the given query" not in html


def test_a_form_sent_without_its_token_answers_a_framed_page_that_says_to_reload():
    client = Client(enforce_csrf_checks=True)
    item = ItemFactory()
    client.force_login(UserFactory())
    response = client.post(f"/items/{item.pk}/release/")
    html = response.content.decode()
    assert response.status_code == 403
    assert framed(html) and "Reload the page" in html


def test_a_bad_request_and_a_server_error_are_framed_too():
    request = RequestFactory().get("/")
    request.user = UserFactory()
    request.session = {}
    for response, status in (
        (errors.bad_request(request), 400),
        (errors.server_error(request), 500),
    ):
        assert response.status_code == status
        assert framed(response.content.decode()), status


def test_a_server_error_whose_frame_fails_still_answers_a_plain_page(monkeypatch):
    request = RequestFactory().get("/")

    def broken(*args, **kwargs):
        raise RuntimeError("the database is down")

    monkeypatch.setattr(errors, "render", broken)
    response = errors.server_error(request)
    assert response.status_code == 500
    assert "Something failed on our side" in response.content.decode()
