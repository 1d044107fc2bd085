"""Report intake's cost the same however often the item was reported before (bench/intake.py
--reports): a report looks up whether its reporter already counts for the item, and how many
distinct reporters it has since an approval, through the item's open reports only
(report_open_idx); the score is kept as a running product on the item.

Two indexes each report wrote for nothing are gone: source_id's own (report_id_unique leads
with it) and decision_id's over every open report's NULL (now only answered reports).

All built and dropped concurrently: intake goes on during the deploy. New indexes first, so
every lookup has one throughout.
"""

import django.db.models.deletion
from django.db import migrations, models

from moderation.migration_operations import AddIndexConcurrently, DropFieldIndexConcurrently


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("moderation", "0028_item_search_indexes_hold_edited_items"),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="report",
            index=models.Index(
                condition=models.Q(("decision__isnull", True)),
                fields=["item", "reporter_id"],
                name="report_open_idx",
            ),
        ),
        AddIndexConcurrently(
            model_name="report",
            index=models.Index(
                condition=models.Q(("decision__isnull", False)),
                fields=["decision"],
                name="report_decision_idx",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="report",
            name="decision",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="reports",
                to="moderation.decision",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="report",
            name="source",
            field=models.ForeignKey(
                db_index=False,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="+",
                to="moderation.source",
            ),
        ),
    ]
