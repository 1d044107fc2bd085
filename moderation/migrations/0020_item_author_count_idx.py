"""The author panel's flagged and removed counts, each a range of a small partial index:
built concurrently, so intake goes on while they build (moderation/migration_operations.py)."""

from django.db import migrations, models

from moderation.migration_operations import AddIndexConcurrently


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("moderation", "0019_item_decided_action"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="item",
            index=models.Index(
                condition=models.Q(("author__isnull", False), ("flagged_at__isnull", False)),
                fields=["author"],
                name="item_author_flagged_idx",
            ),
        ),
        AddIndexConcurrently(
            model_name="item",
            index=models.Index(
                condition=models.Q(
                    ("author__isnull", False), ("decided_action", "remove"), ("status", "decided")
                ),
                fields=["author"],
                name="item_author_removed_idx",
            ),
        ),
    ]
