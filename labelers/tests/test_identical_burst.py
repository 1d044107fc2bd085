"""A burst of identical items through a real worker and real tasks is paid for once."""

import json
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from labelers.criteria import source_setup
from labelers.models import Label
from testkit.processes import running_app, wait_for
from testkit.signing import signed_headers

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

ITEMS = 24


def test_a_burst_of_identical_items_through_a_real_worker_is_paid_for_once(
    fake_api_server, tmp_path
):
    fake = fake_api_server
    fake.reset()
    fake.configure(latency=1.0)  # every worker thread takes an item while the first call runs
    source, secret, _ = source_setup(name="Same", slug="same")
    with running_app(data_dir=tmp_path, api_url=fake.url, concurrency=8) as (app_url, _):

        def send(n):
            body = json.dumps({"external_id": f"s{n}", "content_text": "one viral post"})
            headers = signed_headers(secret, body.encode())
            r = requests.post(f"{app_url}/webhooks/same/", data=body, headers=headers, timeout=30)
            assert r.status_code == 202

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(send, range(ITEMS)))
        wait_for(
            lambda: Label.objects.filter(status="done").count() == ITEMS,
            timeout=60,
            what="the burst to drain",
        )
    paid = Counter(c["content_text"] for c in fake.calls if c["outcome"] == "ok")
    assert paid == Counter({"one viral post": 1})
    assert Label.objects.filter(cache_hit=True).count() == ITEMS - 1
