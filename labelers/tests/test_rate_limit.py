"""A burst drains at the configured rate instead of drawing 429s, with a real worker."""

import json

import pytest
import requests

from labelers.criteria import source_setup
from labelers.models import Label
from testkit.processes import run_in_threads, running_app, wait_for
from testkit.signing import signed_headers

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ITEMS = 60


def test_a_burst_is_held_to_the_global_rate_and_in_flight_caps(fake_api_server, tmp_path):
    fake = fake_api_server
    fake.reset()
    # The API allows 25 calls a second; the product is set to 15/s and 4 in flight, with
    # 8 worker threads that would otherwise make ~25 calls a second (300 ms each).
    fake.configure(rate_limit=25, latency=0.3)
    source, secret, _ = source_setup(name="Burst", slug="rate")
    with running_app(
        data_dir=tmp_path,
        api_url=fake.url,
        concurrency=8,
        LABEL_MAX_CALLS_PER_SECOND=15,
        LABEL_MAX_IN_FLIGHT=4,
    ) as (app_url, _):

        def send(n):
            body = json.dumps({"external_id": f"r{n}", "content_text": f"rate item {n}"})
            headers = signed_headers(secret, body.encode())
            r = requests.post(f"{app_url}/webhooks/rate/", data=body, headers=headers, timeout=30)
            assert r.status_code == 202

        run_in_threads(send, range(ITEMS), threads=8, timeout=60)
        wait_for(
            lambda: Label.objects.filter(status="done").count() == ITEMS,
            timeout=60,
            what="the burst to drain",
        )
    outcomes = [c["outcome"] for c in fake.calls]
    assert outcomes.count("429") == 0
    assert 2 <= fake.peak_in_flight <= 4
    assert len(outcomes) == ITEMS
    stamps = sorted(c["at"] for c in fake.calls)
    # 60 calls at 15/s: the last starts at least ~59/15 s after the first.
    assert stamps[-1] - stamps[0] >= (ITEMS - 1) / 15 * 0.9
    busiest = max(sum(1 for t in stamps if s <= t < s + 1) for s in stamps)
    assert busiest <= 16  # a GCRA burst of at most one extra call per window
    print(
        f"\nrate test: {ITEMS} calls over {stamps[-1] - stamps[0]:.1f}s, busiest second "
        f"{busiest}, peak in flight {fake.peak_in_flight}"
    )
