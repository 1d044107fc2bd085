"""Decisions back to the products: signed callbacks to a real receiver on 127.0.0.1, retries,
the delivery log and the admin's redeliver, the SSRF guard."""

import json
import os
import socket
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from moderation import tasks
from moderation.callbacks import deliveries
from moderation.callbacks import http as callback_http
from moderation.models import CallbackDelivery, Item
from moderation.services.decisions import decision_record, decision_undo
from moderation.services.sources import source_set_callback_secret
from moderation.tests.factories import SourceFactory, UserFactory, reason_id
from testkit.receiver import Receiver
from tests.test_metrics import value as metric_value

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_SCHEDULE = [5, 300, 1800, 7200, 18000, 36000, 36000]


@pytest.fixture
def receiver():
    server = Receiver().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def dev_callback_settings(settings):
    """As in the embedded default, whatever DATABASE_URL the tests run with: http and
    127.0.0.1 allowed. Tests of production rules override these."""
    settings.CALLBACK_ALLOW_HTTP = True
    settings.CALLBACK_ALLOW_PRIVATE = True
    settings.CALLBACK_CONNECT_TIMEOUT = 2.0
    settings.CALLBACK_READ_TIMEOUT = 2.0
    settings.CALLBACK_RETRY_SCHEDULE = DEFAULT_SCHEDULE
    return settings


@pytest.fixture
def reviewer():
    return UserFactory(username="rita")


@pytest.fixture
def callback_source(receiver):
    return SourceFactory(callback_url=receiver.url)


def flagged_item(source, external_id="post-1") -> Item:
    return Item.objects.create(
        source=source,
        external_id=external_id,
        webhook_id=f"msg_{external_id}",
        content_text="I will find you",
        content_hash=f"hash-{external_id}",
        status=Item.Status.FLAGGED,
        violation_score=0.9,
        queue_score=0.9,
    )


@pytest.fixture
def decide(django_capture_on_commit_callbacks, reviewer):
    """A reviewer's decision; its callback task runs (eagerly) once it commits."""

    def run(item, action="remove"):
        # Removing and escalating take one of the admins' reasons.
        reason = reason_id(action) if action != "approve" else None
        with django_capture_on_commit_callbacks(execute=True):
            return decision_record(item=item, reviewer=reviewer, action=action, reason_id=reason)

    return run


@pytest.fixture
def sweep(django_capture_on_commit_callbacks):
    """What beat does every few seconds: send the due deliveries (eagerly here)."""

    def run():
        with django_capture_on_commit_callbacks(execute=True):
            return tasks.callback_sweep_task()

    return run


def make_due(delivery):
    CallbackDelivery.objects.filter(pk=delivery.pk).update(
        next_attempt_at=timezone.now() - timedelta(seconds=1)
    )


# --- what the product receives -----------------------------------------------------------


def test_a_decision_reaches_the_receiver_signed_with_the_sources_secret(
    receiver, callback_source, decide
):
    item = flagged_item(callback_source)
    decision = decide(item)
    [request] = receiver.received
    payload = Webhook(callback_source._secret).verify(request.body.decode(), request.headers)
    assert payload["type"] == "decision.created"
    # A removal carries its statement of reasons (test_statements.py tests its content).
    statement = payload["data"].pop("statement_of_reasons")
    assert statement["reason"] == decision.reason
    assert payload["data"] == {
        "decision_id": decision.pk,
        "item_id": item.pk,
        "external_id": "post-1",
        "sequence": 1,
        "revision": 1,
        "action": "remove",
        "reason": decision.reason,
        "decided_at": decision.created_at.isoformat(),
        "undoes": None,
        "automatic": False,
        "report_ids": [],
    }
    assert decision.reason == "Hate or harassment"
    assert request.headers["webhook-id"] == f"dec_{decision.pk}"
    assert request.headers["content-type"] == "application/json"
    assert request.path == "/hooks/decisions"


def test_a_delivered_decision_is_logged_with_status_latency_and_body(
    receiver, callback_source, decide
):
    decision = decide(flagged_item(callback_source))
    delivery = CallbackDelivery.objects.get(decision=decision)
    assert delivery.state == CallbackDelivery.State.DELIVERED
    assert delivery.attempts == 1 and delivery.delivered_at is not None
    [attempt] = delivery.attempt_log.all()
    assert attempt.status_code == 200 and attempt.response_body == '{"ok": true}'
    assert attempt.latency_ms is not None and attempt.latency_ms < 2000
    assert attempt.error == ""


def test_a_separate_callback_secret_signs_callbacks_instead_of_the_sources_secret(
    receiver, callback_source, decide
):
    secret = source_set_callback_secret(source=callback_source, separate=True)
    assert secret != callback_source._secret
    decide(flagged_item(callback_source))
    [request] = receiver.received
    Webhook(secret).verify(request.body.decode(), request.headers)
    with pytest.raises(Exception, match="signature"):
        Webhook(callback_source._secret).verify(request.body.decode(), request.headers)


def test_the_reviewer_is_sent_only_when_an_admin_allows_it(receiver, callback_source, decide):
    decide(flagged_item(callback_source, "a"))
    callback_source.callback_include_reviewer = True
    callback_source.save()
    decide(flagged_item(callback_source, "b"))
    first, second = (json.loads(r.body)["data"] for r in receiver.received)
    assert "reviewer" not in first
    assert second["reviewer"]["username"] == "rita"


def test_a_source_without_a_callback_url_gets_no_delivery(receiver, decide):
    decision = decide(flagged_item(SourceFactory()))
    assert not CallbackDelivery.objects.filter(decision=decision).exists()
    assert receiver.received == []


def test_every_decision_of_an_item_is_sent(receiver, callback_source, decide):
    item = flagged_item(callback_source)
    first = decide(item, action="approve")
    second = decide(item, action="remove")
    ids = [r.headers["webhook-id"] for r in receiver.received]
    assert ids == [f"dec_{first.pk}", f"dec_{second.pk}"]


def test_an_undo_is_sent_as_a_decision_that_names_the_one_it_reverses(
    receiver, callback_source, decide, reviewer, django_capture_on_commit_callbacks
):
    removed = decide(flagged_item(callback_source))
    with django_capture_on_commit_callbacks(execute=True):
        undo = decision_undo(decision=removed, reviewer=reviewer)
    first, second = (json.loads(r.body)["data"] for r in receiver.received)
    assert first["action"] == "remove" and first["undoes"] is None
    assert second["action"] == "undo" and second["undoes"] == removed.pk
    assert second["decision_id"] == undo.pk
    assert receiver.received[1].headers["webhook-id"] == f"dec_{undo.pk}"


def test_each_decision_of_an_item_carries_the_items_sequence_number(
    receiver, callback_source, decide, reviewer, django_capture_on_commit_callbacks, client
):
    """Callbacks can arrive out of order (a retried one after a later one): `sequence`
    numbers an item's decisions 1, 2, 3... so a product keeps the highest it has seen."""
    item, other = flagged_item(callback_source), flagged_item(callback_source, "post-2")
    removed = decide(item)
    decide(other, action="approve")
    with django_capture_on_commit_callbacks(execute=True):
        decision_undo(decision=removed, reviewer=reviewer)
    decide(item, action="approve")
    sent = [json.loads(r.body)["data"] for r in receiver.received]
    assert [(d["external_id"], d["sequence"]) for d in sent] == [
        ("post-1", 1),
        ("post-2", 1),
        ("post-1", 2),
        ("post-1", 3),
    ]


def test_an_older_decision_is_not_sent_after_a_newer_one_was_acknowledged(
    receiver, callback_source, decide, sweep
):
    receiver.answers = [500, 200]
    item = flagged_item(callback_source)
    older = decide(item, action="remove")  # 500: waits for its retry
    newer = decide(item, action="approve")  # 200: acknowledged
    delivery = CallbackDelivery.objects.get(decision=older)
    make_due(delivery)
    sweep()
    delivery.refresh_from_db()
    assert delivery.state == CallbackDelivery.State.SUPERSEDED
    assert [r.headers["webhook-id"] for r in receiver.received] == [
        f"dec_{older.pk}",
        f"dec_{newer.pk}",
    ]
    assert sweep() == 0  # never sent again by itself


def test_an_older_decision_still_waiting_is_sent_when_the_newer_one_is_not_acknowledged(
    receiver, callback_source, decide, sweep
):
    """At least once: only a newer acknowledged decision makes an older one moot."""
    receiver.answers = [500, 500, 200]
    item = flagged_item(callback_source)
    older = decide(item, action="remove")
    decide(item, action="approve")
    delivery = CallbackDelivery.objects.get(decision=older)
    make_due(delivery)
    sweep()
    delivery.refresh_from_db()
    assert delivery.state == CallbackDelivery.State.DELIVERED
    assert json.loads(receiver.received[-1].body)["data"]["sequence"] == 1


# --- retries -------------------------------------------------------------------------------


def test_a_receiver_answering_500_then_200_gets_the_same_webhook_id_and_one_acknowledgement(
    receiver, callback_source, decide, sweep
):
    receiver.answers = [500, 200]
    decision = decide(flagged_item(callback_source))
    delivery = CallbackDelivery.objects.get(decision=decision)
    assert delivery.state == CallbackDelivery.State.PENDING
    assert delivery.next_attempt_at > timezone.now() + timedelta(seconds=3)  # 5 s later
    assert sweep() == 0  # not due yet
    make_due(delivery)
    assert sweep() == 1
    assert sweep() == 0  # delivered: never sent again
    assert deliveries.delivery_attempt(delivery_id=delivery.pk).result == "not-due"
    first, second = receiver.received
    assert first.headers["webhook-id"] == second.headers["webhook-id"] == f"dec_{decision.pk}"
    for request in receiver.received:  # each attempt signed afresh, both valid
        Webhook(callback_source._secret).verify(request.body.decode(), request.headers)
    delivery.refresh_from_db()
    assert delivery.state == CallbackDelivery.State.DELIVERED and delivery.attempts == 2
    assert [a.status_code for a in delivery.attempt_log.all()] == [500, 200]


def test_a_receivers_long_answer_is_logged_truncated_to_1_kb(receiver, callback_source, decide):
    receiver.answers = [503]
    decision = decide(flagged_item(callback_source))
    [attempt] = CallbackDelivery.objects.get(decision=decision).attempt_log.all()
    assert attempt.status_code == 503
    assert 0 < len(attempt.response_body.encode()) <= 1024
    assert attempt.response_body.startswith("receiver says no")


def test_retries_follow_the_standard_webhooks_schedule_then_the_delivery_fails(
    receiver, callback_source, decide
):
    receiver.answers = [500]
    decision = decide(flagged_item(callback_source))
    delivery = CallbackDelivery.objects.get(decision=decision)
    delays = []
    for _ in DEFAULT_SCHEDULE:
        delivery.refresh_from_db()
        delays.append(round((delivery.next_attempt_at - timezone.now()).total_seconds()))
        make_due(delivery)
        deliveries.delivery_attempt(delivery_id=delivery.pk)
    delivery.refresh_from_db()
    assert delays == DEFAULT_SCHEDULE
    assert delivery.state == CallbackDelivery.State.FAILED and delivery.next_attempt_at is None
    assert delivery.attempts == len(DEFAULT_SCHEDULE) + 1 == len(receiver.received)
    assert sum(DEFAULT_SCHEDULE) / 3600 > 24  # about a day in all


def test_a_hanging_receiver_is_cut_off_by_the_timeout_and_retried(
    receiver, callback_source, decide, sweep, settings
):
    settings.CALLBACK_READ_TIMEOUT = 0.5
    receiver.answers = [("hang", 30), 200]
    decision = decide(flagged_item(callback_source))
    delivery = CallbackDelivery.objects.get(decision=decision)
    [attempt] = delivery.attempt_log.all()
    assert attempt.status_code is None and "timed out" in attempt.error
    assert 400 <= attempt.latency_ms < 3000
    assert delivery.state == CallbackDelivery.State.PENDING
    make_due(delivery)
    sweep()
    delivery.refresh_from_db()
    assert delivery.state == CallbackDelivery.State.DELIVERED
    assert len(receiver.received) == 2


def test_a_receiver_answering_a_byte_at_a_time_is_cut_off_at_the_total_timeout(
    receiver, callback_source, decide, settings
):
    settings.CALLBACK_CONNECT_TIMEOUT = 0.5
    settings.CALLBACK_READ_TIMEOUT = 0.5
    receiver.answers = [("drip", 30)]
    decision = decide(flagged_item(callback_source))
    [attempt] = CallbackDelivery.objects.get(decision=decision).attempt_log.all()
    assert attempt.status_code is None
    assert "no full answer within 1 s" in attempt.error
    assert 900 <= attempt.latency_ms < 3000


def test_a_redirect_is_not_followed(receiver, callback_source, decide):
    receiver.answers = [302]
    decision = decide(flagged_item(callback_source))
    delivery = CallbackDelivery.objects.get(decision=decision)
    assert delivery.state == CallbackDelivery.State.PENDING
    assert [a.status_code for a in delivery.attempt_log.all()] == [302]
    assert len(receiver.received) == 1


# --- the database is the record ------------------------------------------------------------


def test_a_delivery_being_sent_by_a_live_worker_is_not_sent_again(
    receiver, callback_source, decide, sweep
):
    receiver.answers = [500]
    decision = decide(flagged_item(callback_source))
    delivery = CallbackDelivery.objects.get(decision=decision)
    CallbackDelivery.objects.filter(pk=delivery.pk).update(
        state=CallbackDelivery.State.SENDING,
        lease_expires_at=timezone.now() + timedelta(seconds=60),
        next_attempt_at=timezone.now() - timedelta(seconds=1),
    )
    assert sweep() == 0
    assert deliveries.delivery_attempt(delivery_id=delivery.pk).result == "not-due"
    assert len(receiver.received) == 1


def test_a_delivery_of_a_dead_worker_is_sent_again_when_its_lease_runs_out(
    receiver, callback_source, decide, sweep
):
    receiver.answers = [500, 200]
    decision = decide(flagged_item(callback_source))
    CallbackDelivery.objects.filter(decision=decision).update(
        state=CallbackDelivery.State.SENDING,
        lease_expires_at=timezone.now() - timedelta(seconds=1),
    )
    assert sweep() == 1
    assert CallbackDelivery.objects.get(decision=decision).state == "delivered"
    assert len(receiver.received) == 2


def test_a_delivery_whose_message_was_lost_is_sent_by_the_sweep(
    receiver, callback_source, reviewer, sweep, settings
):
    # The decision commits but its message never reaches a worker (no on-commit run here).
    decision = decision_record(
        item=flagged_item(callback_source), reviewer=reviewer, action="approve"
    )
    assert sweep() == 0  # its message may still be waiting in the broker
    CallbackDelivery.objects.filter(decision=decision).update(
        enqueued_at=timezone.now() - timedelta(seconds=settings.CALLBACK_LOST_AFTER_SECONDS + 1)
    )
    assert sweep() == 1
    assert CallbackDelivery.objects.get(decision=decision).state == "delivered"
    assert len(receiver.received) == 1


# --- the admin -----------------------------------------------------------------------------


def test_redeliver_from_the_admin_sends_a_failed_delivery_again(
    receiver, callback_source, decide, client, django_capture_on_commit_callbacks, settings
):
    settings.CALLBACK_RETRY_SCHEDULE = []  # one attempt, then failed
    receiver.answers = [500, 200]
    decision = decide(flagged_item(callback_source))
    delivery = CallbackDelivery.objects.get(decision=decision)
    assert delivery.state == CallbackDelivery.State.FAILED
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            "/admin/moderation/callbackdelivery/",
            {"action": "redeliver", "_selected_action": [delivery.pk]},
            follow=True,
        )
    assert response.status_code == 200
    assert "1 deliveries will be sent again now" in response.content.decode()
    delivery.refresh_from_db()
    assert delivery.state == CallbackDelivery.State.DELIVERED
    assert [r.headers["webhook-id"] for r in receiver.received] == [f"dec_{decision.pk}"] * 2


def test_the_delivery_log_shows_each_attempt_in_the_admin(
    receiver, callback_source, decide, client
):
    receiver.answers = [500]
    decision = decide(flagged_item(callback_source))
    delivery = CallbackDelivery.objects.get(decision=decision)
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    listing = client.get(
        f"/admin/moderation/callbackdelivery/?source__id__exact={callback_source.pk}"
    )
    assert f"dec_{decision.pk}" in listing.content.decode()
    page = client.get(f"/admin/moderation/callbackdelivery/{delivery.pk}/change/").content.decode()
    assert "500" in page and "receiver says no" in page


def test_the_admin_refuses_an_http_callback_url_in_production_settings(client, settings):
    settings.CALLBACK_ALLOW_HTTP = False
    source = SourceFactory()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    form = {
        "name": source.name,
        "slug": source.slug,
        "labelers": [lb.pk for lb in source.labelers.all()],
        "active": "on",
    }
    url = f"/admin/moderation/source/{source.pk}/change/"
    refused = client.post(url, {**form, "callback_url": "http://products.example/hook"})
    assert refused.status_code == 200 and "callback URLs must use https" in refused.content.decode()
    accepted = client.post(url, {**form, "callback_url": "https://products.example/hook"})
    assert accepted.status_code == 302
    source.refresh_from_db()
    assert source.callback_url == "https://products.example/hook"


# --- SSRF ----------------------------------------------------------------------------------


def test_a_name_resolving_to_loopback_is_refused_in_production_settings(receiver, decide, settings):
    settings.CALLBACK_ALLOW_HTTP = False
    settings.CALLBACK_ALLOW_PRIVATE = False
    source = SourceFactory(callback_url=f"https://localhost:{receiver.port}/hooks")
    decision = decide(flagged_item(source))
    [attempt] = CallbackDelivery.objects.get(decision=decision).attempt_log.all()
    assert attempt.status_code is None
    assert "refused: localhost resolves to" in attempt.error and "loopback" in attempt.error
    assert receiver.received == []


def test_http_is_refused_in_production_settings(receiver, decide, settings):
    settings.CALLBACK_ALLOW_HTTP = False
    settings.CALLBACK_ALLOW_PRIVATE = True
    source = SourceFactory(callback_url=receiver.url)
    decision = decide(flagged_item(source))
    [attempt] = CallbackDelivery.objects.get(decision=decision).attempt_log.all()
    assert "refused: callback URLs must use https" in attempt.error
    assert receiver.received == []


def _callback_defaults(**env) -> dict:
    """CALLBACK_ALLOW_HTTP/PRIVATE as settings.py computes them from this environment."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "DEBUG"))}
    code = (
        "import django, json; django.setup(); from django.conf import settings as s; "
        "print(json.dumps([s.CALLBACK_ALLOW_HTTP, s.CALLBACK_ALLOW_PRIVATE]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        env={**clean, "DJANGO_SETTINGS_MODULE": "config.settings", "SECRET_KEY": "x", **env},
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    allow_http, allow_private = json.loads(out.stdout.strip().splitlines()[-1])
    return {"CALLBACK_ALLOW_HTTP": allow_http, "CALLBACK_ALLOW_PRIVATE": allow_private}


def test_production_settings_refuse_http_and_private_addresses_unless_allowed():
    production = {"DATABASE_URL": "postgres://u@db:5432/x"}
    assert _callback_defaults(**production) == {
        "CALLBACK_ALLOW_HTTP": False,
        "CALLBACK_ALLOW_PRIVATE": False,
    }
    allowed = _callback_defaults(**production, CALLBACK_ALLOW_PRIVATE="true")
    assert allowed["CALLBACK_ALLOW_PRIVATE"] is True
    assert _callback_defaults(**production, DEBUG="true")["CALLBACK_ALLOW_HTTP"] is True


def test_a_name_resolving_to_loopback_is_accepted_in_the_embedded_default(
    receiver, decide, settings
):
    embedded = _callback_defaults()  # no DATABASE_URL: the embedded default
    assert embedded == {"CALLBACK_ALLOW_HTTP": True, "CALLBACK_ALLOW_PRIVATE": True}
    for name, value in embedded.items():
        setattr(settings, name, value)
    source = SourceFactory(callback_url=f"http://localhost:{receiver.port}/hooks")
    decision = decide(flagged_item(source))
    assert CallbackDelivery.objects.get(decision=decision).state == "delivered"
    assert len(receiver.received) == 1


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.16.0.1",
        "192.168.1.1",
        "169.254.169.254",  # cloud metadata
        "100.64.0.1",  # carrier-grade NAT
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "::1",
        "fe80::1",
        "fc00::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:169.254.169.254",
        "2002:7f00:1::1",  # 6to4 embedding 127.0.0.1
        "2002:a9fe:a9fe::",  # 6to4 embedding 169.254.169.254
        "2002:0a01:0203::1",  # 6to4 embedding 10.1.2.3
        "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
        "2001:0:a9fe:a9fe::1",  # Teredo, server 169.254.169.254
        "64:ff9b::7f00:1",  # NAT64 embedding 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 embedding 169.254.169.254
        "64:ff9b:1::a9fe:a9fe",  # local-use NAT64
    ],
)
def test_private_loopback_link_local_multicast_and_reserved_addresses_are_refused(address):
    assert callback_http.address_refusal(address) is not None


@pytest.mark.parametrize(
    "address",
    [
        "93.184.216.34",
        "2606:4700::6810:84e5",
        "2002:5db8:d822::1",  # 6to4 to a public address
        "64:ff9b::5db8:d822",  # NAT64 to a public address (what DNS64 answers on IPv6-only hosts)
    ],
)
def test_public_addresses_are_allowed(address):
    assert callback_http.address_refusal(address) is None


def test_a_name_with_any_private_address_is_refused(monkeypatch):
    def two_addresses(host, port, **kwargs):
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.216.34", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", port)),
        ]

    monkeypatch.setattr(callback_http.socket, "getaddrinfo", two_addresses)
    with pytest.raises(callback_http.CallbackRefused, match="10.0.0.5"):
        callback_http.resolve("hooks.example", 443, allow_private=False)


def test_the_connection_goes_to_the_address_that_was_checked_with_the_name_as_host(
    receiver, monkeypatch
):
    """DNS rebinding: the name is resolved once, and that address is the one connected to;
    a second lookup (here it would fail) is never made."""
    lookups = []

    def resolver(host, port, *args, **kwargs):
        if host != "127.0.0.1":  # the HTTP library asks about the address itself: fine
            lookups.append(host)
        if len(lookups) > 1:
            raise socket.gaierror("a second lookup")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(callback_http.socket, "getaddrinfo", resolver)
    answer = callback_http.post(
        f"http://hooks.example:{receiver.port}/in",
        body=b"{}",
        headers={"content-type": "application/json"},
        connect_timeout=2,
        read_timeout=2,
        allow_http=True,
        allow_private=True,
    )
    assert answer.ok and lookups == ["hooks.example"]
    [request] = receiver.received
    assert request.headers["host"] == f"hooks.example:{receiver.port}"


@pytest.fixture
def tls_receiver(tmp_path):
    """An https receiver on 127.0.0.1 whose certificate names hooks.example only."""
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-keyout", str(key), "-out", str(cert), "-subj", "/CN=hooks.example",
         "-addext", "subjectAltName=DNS:hooks.example"],
        check=True, capture_output=True,
    )  # fmt: skip
    server = Receiver(certfile=str(cert), keyfile=str(key)).start()
    yield server
    server.stop()


@pytest.fixture
def names_resolve_to_loopback(monkeypatch):
    real = socket.getaddrinfo

    def resolver(host, port, *args, **kwargs):
        if host.endswith(".example"):
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return real(host, port, *args, **kwargs)

    monkeypatch.setattr(callback_http.socket, "getaddrinfo", resolver)


def _post_https(url):
    return callback_http.post(
        url,
        body=b"{}",
        headers={"content-type": "application/json"},
        connect_timeout=2,
        read_timeout=2,
        allow_http=False,
        allow_private=True,
    )


def test_https_goes_to_the_checked_address_with_the_name_for_sni_and_the_certificate(
    tls_receiver, names_resolve_to_loopback, monkeypatch
):
    monkeypatch.setattr(callback_http.certifi, "where", lambda: tls_receiver.certfile)
    answer = _post_https(f"https://hooks.example:{tls_receiver.port}/in")
    assert answer.ok, answer.error
    assert tls_receiver.server_names == ["hooks.example"]
    assert tls_receiver.received[0].headers["host"] == f"hooks.example:{tls_receiver.port}"


def test_https_refuses_a_certificate_for_another_name(
    tls_receiver, names_resolve_to_loopback, monkeypatch
):
    monkeypatch.setattr(callback_http.certifi, "where", lambda: tls_receiver.certfile)
    answer = _post_https(f"https://other.example:{tls_receiver.port}/in")
    assert not answer.ok and "TLS error" in answer.error
    assert tls_receiver.received == []


def test_callback_outcomes_are_counted_for_prometheus(
    receiver, callback_source, decide, client, settings
):
    settings.METRICS_ALLOWED_IPS = ["127.0.0.1"]

    def delivered() -> float:
        text = client.get("/metrics").content.decode()
        return metric_value(text, "modqueue_callbacks_total", outcome="delivered")

    before = delivered()
    decide(flagged_item(callback_source))
    assert len(receiver.received) == 1
    assert delivered() == before + 1


# --- escalations stay inside the team ------------------------------------------------------


def test_an_escalation_is_not_sent_to_the_product_nor_its_undo(
    receiver, callback_source, decide, reviewer, django_capture_on_commit_callbacks
):
    item = flagged_item(callback_source)
    escalation = decide(item, action="escalate")
    with django_capture_on_commit_callbacks(execute=True):
        decision_undo(decision=escalation, reviewer=reviewer)
    assert receiver.received == []
    assert not CallbackDelivery.objects.exists()


def test_the_seniors_decision_on_an_escalated_item_is_sent_without_the_escalation(
    receiver, callback_source, decide, django_capture_on_commit_callbacks
):
    item = flagged_item(callback_source)
    decide(item, action="escalate")
    senior = UserFactory(senior=True)
    with django_capture_on_commit_callbacks(execute=True):
        removed = decision_record(
            item=item,
            reviewer=senior,
            action="remove",
            reason_id=reason_id("remove"),
            may_decide_escalated=True,
        )
    [request] = receiver.received
    data = json.loads(request.body)["data"]
    assert (data["decision_id"], data["action"]) == (removed.pk, "remove")
