"""lib/batch.py: reads sent together give exactly what each queryset gives alone (rows,
their shape, the converters: dates, JSON), on SQLite (one query each) and PostgreSQL (one
round trip)."""

from datetime import UTC, timedelta

import pytest
from django.db import connection
from django.db.models import Count
from django.db.models.functions import TruncDate
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from lib.batch import read_together
from moderation.models import Item
from moderation.tests.factories import ItemFactory, SourceFactory

pytestmark = pytest.mark.django_db


def test_reads_together_equal_each_read_alone():
    sources = [SourceFactory(), SourceFactory()]
    now = timezone.now()
    for n in range(7):
        item = ItemFactory(source=sources[n % 2], metadata={"n": n})
        Item.objects.filter(pk=item.pk).update(
            received_at=now - timedelta(days=n % 3), content_text=f"{n}0 % off"
        )
    items = Item.objects.all()
    querysets = [
        items.annotate(day=TruncDate("received_at", tzinfo=UTC))
        .values_list("day", "source_id")
        .annotate(n=Count("*"))
        .order_by("day", "source_id"),
        items.values("source_id").annotate(n=Count("pk")).order_by("source_id"),
        # A literal % in a parameter, JSON read back.
        items.filter(content_text__contains="0 %")
        .values_list("metadata", flat=True)
        .order_by("pk"),
        items.filter(pk__in=[]).values_list("pk", flat=True),  # no SQL at all
        items.filter(source=sources[0]).values_list("pk", "received_at").order_by("-pk"),
    ]
    alone = [list(queryset) for queryset in querysets]
    assert [len(rows) for rows in alone] == [6, 2, 7, 0, 4]
    with CaptureQueriesContext(connection) as captured:
        together = read_together(*(queryset.all() for queryset in querysets))
    assert together == alone
    assert len(captured) == (1 if connection.vendor == "postgresql" else 4)


def test_models_are_not_read_together():
    with pytest.raises(TypeError):
        read_together(Item.objects.all())
