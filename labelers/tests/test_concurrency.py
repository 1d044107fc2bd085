"""Labels raced by several worker threads and the sweep: nothing is paid for twice."""

from collections import Counter

import pytest

from labelers import dispatch
from labelers.models import Label
from moderation.intake import IntakePayload
from moderation.services.items import item_ingest
from testkit.workers import drain_with_threads

pytestmark = pytest.mark.django_db(transaction=True)


def ingest_texts(source, texts):
    for n, text in enumerate(texts):
        item_ingest(
            source=source,
            payload=IntakePayload(external_id=f"x{n}", content_text=text),
            webhook_id=f"w{n}",
        )
    dispatch.items_route()


def paid_calls(fake_api) -> Counter:
    return Counter(c["content_text"] for c in fake_api.calls if c["outcome"] == "ok")


def test_a_label_waiting_for_a_throttle_slot_past_its_lease_is_not_paid_twice(
    fake_api, source, settings
):
    # 2 slots, 16 calls of 0.5 s: the last labels wait ~4 s for a slot, twice their lease;
    # the sweep sees their lease run out and hands them to another thread.
    settings.LABEL_MAX_IN_FLIGHT = 2
    settings.LABEL_MAX_CALLS_PER_SECOND = 0
    settings.LABEL_LEASE_SECONDS = 2
    fake_api.configure(latency=0.5)
    texts = [f"slow item {n}" for n in range(16)]
    ingest_texts(source, texts)
    drain_with_threads(threads=8)
    assert set(Label.objects.values_list("status", flat=True)) == {"done"}
    paid = paid_calls(fake_api)
    assert set(paid) == set(texts)
    assert sum(n - 1 for n in paid.values()) == 0, paid.most_common(3)


def test_a_burst_of_identical_content_is_paid_for_once(fake_api, source):
    # Eight workers take eight identical items at once; the call takes 0.5 s, so without a
    # single flight each would find no finished label to reuse and pay for its own.
    fake_api.configure(latency=0.5)
    ingest_texts(source, ["the same words"] * 8)
    drain_with_threads(threads=8)
    labels = Label.objects.all()
    assert {lb.status for lb in labels} == {"done"}
    assert paid_calls(fake_api) == Counter({"the same words": 1})
    assert sum(lb.cache_hit for lb in labels) == 7
