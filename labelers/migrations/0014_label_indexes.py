"""Fewer label indexes written at every claim and answer (issue 24), built concurrently so that
labeling goes on meanwhile (moderation/migration_operations.py): content_hash keeps one plain
index (not a second, LIKE-pattern one); item_id none of its own (label_once_per_revision
starts with it); the dashboard's done-at index also requires labeled_at, so that the claim's
prepared plan never takes it for its lookup of an identical done label. Each new index is
built before the one it replaces is dropped."""

import django.db.models.deletion
from django.db import migrations, models

from moderation.migration_operations import AddIndexConcurrently


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("labelers", "0013_dashboard_rollups"),
        ("moderation", "0026_dashboard_rollups"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="label",
            index=models.Index(fields=["content_hash"], name="label_content_hash_idx"),
        ),
        migrations.AlterField(
            model_name="label",
            name="content_hash",
            field=models.CharField(max_length=64),
        ),
        migrations.AlterField(
            model_name="label",
            name="item",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="labels",
                to="moderation.item",
            ),
        ),
        AddIndexConcurrently(
            model_name="label",
            index=models.Index(
                condition=models.Q(("labeled_at__isnull", False), ("status", "done")),
                fields=["labeled_at"],
                name="label_done_labeled_at_idx",
            ),
        ),
        migrations.RemoveIndex(model_name="label", name="label_done_at_idx"),
    ]
