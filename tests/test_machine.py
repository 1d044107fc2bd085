"""The signed webhook skips sessions, CSRF, users and login throttling (lib/machine.py), and
keeps what every answer needs: the SSL redirect, the Host check and the security headers."""

import json

import pytest
from django.contrib.sessions.models import Session
from django.http import HttpResponse
from django.test import RequestFactory

from lib import machine
from lib.machine import MachineEndpointMiddleware
from moderation.models import Item
from testkit.signing import signed_headers

pytestmark = pytest.mark.django_db


def _signed(source, external_id="p1"):
    body = json.dumps({"external_id": external_id, "content_text": "hello"}).encode()
    return body, signed_headers(source._secret, body)


def test_a_webhook_is_answered_without_the_middleware_that_serves_people(source):
    def rest_of_the_stack(request):
        raise AssertionError("the webhook went through sessions, CSRF and the rest")

    lane = MachineEndpointMiddleware(rest_of_the_stack)
    body, headers = _signed(source)
    request = RequestFactory().post(
        f"/webhooks/{source.slug}/",
        data=body,
        content_type="application/json",
        headers=headers,
    )
    response = lane(request)
    assert response.status_code == 202
    assert response["Content-Length"] == str(len(response.content))
    assert not hasattr(request, "session") and not hasattr(request, "user")
    assert Item.objects.filter(external_id="p1").exists()


def test_pages_and_unknown_urls_go_through_the_whole_stack(source):
    passed = []

    def rest_of_the_stack(request):
        passed.append(request.path)
        return HttpResponse("page")

    lane = MachineEndpointMiddleware(rest_of_the_stack)
    factory = RequestFactory()
    for path in ("/queue/", "/webhooks/", "/webhooks/x/y/", f"/webhooks/{source.slug}"):
        assert lane(factory.post(path)).content == b"page"
    assert passed == ["/queue/", "/webhooks/", "/webhooks/x/y/", f"/webhooks/{source.slug}"]


def test_a_webhooks_path_is_resolved_once_and_unknown_paths_are_not_kept(source):
    lane = MachineEndpointMiddleware(lambda request: HttpResponse("page"))
    machine._resolve.cache_clear()
    for n in range(3):
        body, headers = _signed(source, external_id=f"p{n}")
        request = RequestFactory().post(
            f"/webhooks/{source.slug}/", data=body, content_type="application/json", headers=headers
        )
        assert lane(request).status_code == 202
        assert request.resolver_match.kwargs == {"slug": source.slug}
    for _ in range(3):
        assert lane(RequestFactory().post("/webhooks/x/y/")).content == b"page"
    info = machine._resolve.cache_info()
    # The webhook's path: resolved once, then found; the unknown path: never kept.
    assert (info.hits, info.currsize) == (2, 1), info


def test_a_webhook_answer_sets_no_cookie_and_keeps_the_security_headers(client, source):
    body, headers = _signed(source)
    response = client.post(
        f"/webhooks/{source.slug}/", data=body, content_type="application/json", headers=headers
    )
    assert response.status_code == 202
    assert not response.cookies
    assert not Session.objects.exists()
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["X-Frame-Options"] == "DENY"
    assert "default-src 'self'" in response["Content-Security-Policy"]
    assert response["Referrer-Policy"] == "same-origin"


def test_a_webhook_to_a_host_not_allowed_is_refused(client, source, settings):
    settings.ALLOWED_HOSTS = ["moderation.example.com"]
    body, headers = _signed(source)
    response = client.post(
        f"/webhooks/{source.slug}/",
        data=body,
        content_type="application/json",
        headers=headers,
        HTTP_HOST="evil.example.net",
    )
    assert response.status_code == 400
    assert not Item.objects.exists()


def test_a_plain_http_webhook_is_redirected_in_production(client, source, settings):
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_HSTS_SECONDS = 3600
    body, headers = _signed(source)
    url = f"/webhooks/{source.slug}/"
    response = client.post(url, data=body, content_type="application/json", headers=headers)
    assert response.status_code == 301
    assert not Item.objects.exists()
    response = client.post(
        url, data=body, content_type="application/json", headers=headers, secure=True
    )
    assert response.status_code == 202
    assert response["Strict-Transport-Security"].startswith("max-age=3600")
