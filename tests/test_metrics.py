"""/metrics: Prometheus text from prometheus-client, protected, summed over gunicorn's
processes; a worker serves its own."""

import json
import uuid

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from labelers.criteria import source_setup
from moderation.models import Item
from testkit.processes import free_port, running_app, wait_for
from testkit.signing import signed_headers


def samples(text: str) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(text: str, name: str, **labels) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.mark.django_db
def test_metrics_are_refused_without_the_token_or_an_allowed_address(client, settings):
    settings.METRICS_TOKEN = "scrape-token"
    settings.METRICS_ALLOWED_IPS = ["10.1.0.0/16"]
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.1").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="10.1.2.3").status_code == 200
    # Through the proxy every request has the proxy's address: only the token counts.
    forwarded = client.get("/metrics", REMOTE_ADDR="10.1.2.3", HTTP_X_FORWARDED_FOR="192.0.2.1")
    assert forwarded.status_code == 403
    wrong = client.get("/metrics", REMOTE_ADDR="192.0.2.1", HTTP_AUTHORIZATION="Bearer nope")
    assert wrong.status_code == 403
    right = client.get(
        "/metrics", REMOTE_ADDR="192.0.2.1", HTTP_AUTHORIZATION="Bearer scrape-token"
    )
    assert right.status_code == 200
    assert right["Content-Type"].startswith("text/plain; version=")


@pytest.mark.django_db
def test_production_allows_no_scraper_until_one_is_configured(client, settings):
    settings.METRICS_TOKEN, settings.METRICS_ALLOWED_IPS = "", []
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403


@pytest.mark.django_db
def test_metrics_count_intake_labels_api_calls_and_show_the_queue(
    client, fake_api, post_webhook, source, settings
):
    settings.METRICS_ALLOWED_IPS = ["127.0.0.1"]
    before = client.get("/metrics").content.decode()
    for n in range(3):
        post_webhook(source, {"external_id": f"m{n}", "content_text": f"I hate you {n} conf=0.9"})
    post_webhook(source, {"external_id": "m0", "content_text": "I hate you 0 conf=0.9"})
    post_webhook(source, {"external_id": "calm", "content_text": "I hate you 0 conf=0.9"})
    post_webhook(source, {"content_text": "no id"})
    after = client.get("/metrics").content.decode()

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("modqueue_intake_requests_total", status="202") == 4
    assert delta("modqueue_intake_requests_total", status="200") == 1
    assert delta("modqueue_intake_requests_total", status="422") == 1
    assert delta("modqueue_labels_total", outcome="done") == 3
    assert delta("modqueue_labels_total", outcome="cached") == 1
    assert delta("modqueue_label_cache_hits_total") == 1
    assert delta("modqueue_api_calls_total", result="200") == 3
    assert delta("modqueue_api_call_seconds_count") == 3
    assert value(after, "modqueue_review_queue_items", source=source.slug) == 4
    assert value(after, "modqueue_review_queue_oldest_seconds", source=source.slug) >= 0
    assert value(after, "modqueue_labels_open", status="pending") == 0
    assert 0 <= value(after, "modqueue_dispatcher_lag_seconds") < 60


@pytest.mark.django_db
def test_requests_are_counted_and_timed_by_view_name_never_by_path(
    client, fake_api, post_webhook, source, settings
):
    settings.METRICS_ALLOWED_IPS = ["127.0.0.1"]
    before = client.get("/metrics").content.decode()
    assert client.get("/accounts/login/").status_code == 200
    for item_id in (101, 202, 303):  # three items, one series: the route's name
        assert client.get(f"/items/{item_id}/").status_code == 302  # to the login page
    assert client.get("/no-such-page/").status_code == 404
    assert client.get("/no-such-page-either/").status_code == 404
    # The signed webhook takes the short cut past the other middleware, and is counted.
    assert post_webhook(source, {"external_id": "v1", "content_text": "hi"}).status_code == 202
    after = client.get("/metrics").content.decode()

    def delta(name, **labels):
        return value(after, name, **labels) - value(before, name, **labels)

    requests_total = "modqueue_http_requests_total"
    assert delta(requests_total, view="login", method="GET", status="200") == 1
    assert delta(requests_total, view="item", method="GET", status="302") == 3
    assert delta(requests_total, view="unmatched", method="GET", status="404") == 2
    assert delta(requests_total, view="webhook", method="POST", status="202") == 1
    assert delta("modqueue_http_request_seconds_count", view="item", method="GET") == 3
    assert delta("modqueue_http_request_seconds_count", view="webhook", method="POST") == 1
    webhook_seconds = value(
        after, "modqueue_http_request_seconds_sum", view="webhook", method="POST"
    )
    assert webhook_seconds > 0
    # No label value anywhere is a path: ids and made-up URLs make no series of their own.
    label_values = {v for _, labels in samples(after) for _, v in labels}
    assert not any("/" in v for v in label_values), sorted(label_values)


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
def test_gunicorns_processes_are_summed_and_the_worker_serves_its_own(fake_api_server, tmp_path):
    fake_api_server.reset()
    source, secret, _ = source_setup(name="Metrics", slug=f"metrics-{uuid.uuid4().hex[:6]}")
    worker_port = free_port()
    with running_app(
        data_dir=tmp_path,
        api_url=fake_api_server.url,
        WORKER_METRICS_PORT=worker_port,
        METRICS_TOKEN="scrape-token",
    ) as (app_url, _):
        for n in range(8):
            body = json.dumps({"external_id": f"e{n}", "content_text": f"e2e {n}"}).encode()
            response = requests.post(
                f"{app_url}/webhooks/{source.slug}/",
                data=body,
                headers=signed_headers(secret, body),
                timeout=10,
            )
            assert response.status_code == 202
        wait_for(
            lambda: (
                not Item.objects.filter(source=source, status="received").exists()
                and not Item.objects.filter(source=source, status="labeling").exists()
            ),
            timeout=60,
            what="the items labeled",
        )
        auth = {"Authorization": "Bearer scrape-token"}
        # Two gunicorn processes answer in turn; each scrape sees the sum of both.
        for _ in range(4):
            text = requests.get(f"{app_url}/metrics", headers=auth, timeout=10).text
            assert value(text, "modqueue_intake_requests_total", status="202") == 8
            http = value(text, "modqueue_http_requests_total", view="webhook", method="POST",
                         status="202")  # fmt: skip
            assert http == 8
        worker_text = wait_for(
            lambda: requests.get(f"http://127.0.0.1:{worker_port}/metrics", timeout=5).text,
            timeout=10,
            what="the worker's metrics",
        )
        assert value(worker_text, "modqueue_labels_total", outcome="done") == 8
        assert value(worker_text, "modqueue_api_call_seconds_count") == 8
