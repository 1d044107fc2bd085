"""Indexes every webhook paid for and no query needed (bench/intake.py):

- The trigram search indexes (0007) held every item, so every new item and every status
  change before review re-indexed ~200 trigrams of its text; the search only looks through
  the queue, escalated and decided items (models.SEARCHED): partial on those.
- source_id's own index: item_webhook_id_unique (source_id, webhook_id) leads with it.
- claimed_by_id's index held every unclaimed item (NULL): partial on claimed items.

All built and dropped concurrently: intake goes on during the deploy.
"""

from django.conf import settings
from django.db import migrations, models

from moderation.migration_operations import (
    AddIndexConcurrently,
    DropFieldIndexConcurrently,
    postgresql_statements,
)

SEARCHED = ("flagged", "failed", "unrouted", "audit", "rereview", "reported", "escalated", "decided")
_CONDITION = "status IN ({})".format(", ".join(f"'{status}'" for status in SEARCHED))
PARTIAL_SEARCH = [
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS item_text_search_idx ON moderation_item"
    f" USING gin (UPPER(content_text) gin_trgm_ops) WHERE {_CONDITION}",
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS item_external_id_search_idx ON moderation_item"
    f" USING gin (external_id gin_trgm_ops) WHERE {_CONDITION}",
    "DROP INDEX CONCURRENTLY IF EXISTS item_text_trgm_idx",
    "DROP INDEX CONCURRENTLY IF EXISTS item_external_id_trgm_idx",
]
FULL_SEARCH = [
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS item_text_trgm_idx ON moderation_item"
    " USING gin (UPPER(content_text) gin_trgm_ops)",
    "CREATE INDEX CONCURRENTLY IF NOT EXISTS item_external_id_trgm_idx ON moderation_item"
    " USING gin (external_id gin_trgm_ops)",
    "DROP INDEX CONCURRENTLY IF EXISTS item_text_search_idx",
    "DROP INDEX CONCURRENTLY IF EXISTS item_external_id_search_idx",
]



class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("moderation", "0026_dashboard_rollups"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RunPython(postgresql_statements(PARTIAL_SEARCH), postgresql_statements(FULL_SEARCH), atomic=False),
        DropFieldIndexConcurrently(
            model_name="item",
            name="source",
            field=models.ForeignKey(
                db_index=False,
                on_delete=models.deletion.PROTECT,
                related_name="items",
                to="moderation.source",
            ),
        ),
        AddIndexConcurrently(
            model_name="item",
            index=models.Index(
                condition=models.Q(("claimed_by__isnull", False)),
                fields=["claimed_by"],
                name="item_claimed_by_idx",
            ),
        ),
        DropFieldIndexConcurrently(
            model_name="item",
            name="claimed_by",
            field=models.ForeignKey(
                blank=True,
                db_index=False,
                null=True,
                on_delete=models.deletion.SET_NULL,
                related_name="+",
                to=settings.AUTH_USER_MODEL,
            ),
        ),
    ]
