"""Each decided item keeps the action it stands on (Item.decided_action), so the author
panel counts removed items from one index range (0020) instead of one decision per item.

The column has a database default, so adding it rewrites nothing on PostgreSQL; the decided
items are then filled in batches of ids, each its own short UPDATE."""

from django.db import migrations, models
from django.db.models import Max, OuterRef, Subquery

BATCH = 10_000


def fill_decided_action(apps, schema_editor):
    Item = apps.get_model("moderation", "Item")
    Decision = apps.get_model("moderation", "Decision")
    standing = Subquery(
        Decision.objects.filter(
            item=OuterRef("pk"),
            revision=OuterRef("revision"),
            action__in=("approve", "remove"),
            undone_by__isnull=True,
        )
        .order_by("-created_at", "-id")
        .values("action")[:1]
    )
    last = Item.objects.aggregate(last=Max("id"))["last"] or 0
    for start in range(0, last + 1, BATCH):
        Item.objects.filter(
            status="decided", id__gte=start, id__lt=start + BATCH
        ).update(decided_action=standing)


class Migration(migrations.Migration):
    dependencies = [
        ("moderation", "0018_banks"),
    ]

    operations = [
        migrations.AddField(
            model_name="item",
            name="decided_action",
            field=models.CharField(blank=True, db_default="", default="", max_length=16),
        ),
        migrations.RunPython(fill_decided_action, migrations.RunPython.noop, elidable=True),
    ]
