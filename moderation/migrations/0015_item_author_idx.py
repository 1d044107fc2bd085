"""The author's items by time (the author's page, the panel's counts): built concurrently,
so intake goes on while it builds (see moderation/migration_operations.py)."""

from django.db import migrations, models

from moderation.migration_operations import AddIndexConcurrently


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("moderation", "0014_authors_strikes_account_actions"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="item",
            index=models.Index(
                condition=models.Q(("author__isnull", False)),
                fields=["author", "received_at", "id"],
                name="item_author_idx",
            ),
        ),
    ]
