"""The trigram search indexes (0027) also hold edited items and erased ones
(models.search_indexed_q), so that "decided by me" can search through them: an item a
reviewer decided leaves the searched statuses only when the product edits it or erases it.
Before, that search named no status the indexes could serve and read every item's text
(bench/queue.py --mine: 217 ms at 200,000 items, growing with the table).

Intake's new items (revision 1, received) still pay for no trigram; an edit pays once it is
labeled, as a searched item does. Built and dropped concurrently: intake goes on during the
deploy.
"""

from django.db import migrations

from moderation.migration_operations import postgresql_statements

_0027 = ("flagged", "failed", "unrouted", "audit", "rereview", "reported", "escalated", "decided")
_0028 = (*_0027, "erased")


def _condition(statuses: tuple[str, ...], edited: bool) -> str:
    held = "status IN ({})".format(", ".join(f"'{status}'" for status in statuses))
    return f"({held} OR revision > 1)" if edited else held


def _indexes(suffix: str, condition: str) -> list[str]:
    return [
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS item_text_{suffix} ON moderation_item"
        f" USING gin (UPPER(content_text) gin_trgm_ops) WHERE {condition}",
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS item_external_id_{suffix} ON moderation_item"
        f" USING gin (external_id gin_trgm_ops) WHERE {condition}",
    ]


FORWARDS = [
    *_indexes("searchable_idx", _condition(_0028, edited=True)),
    "DROP INDEX CONCURRENTLY IF EXISTS item_text_search_idx",
    "DROP INDEX CONCURRENTLY IF EXISTS item_external_id_search_idx",
]
BACKWARDS = [
    *_indexes("search_idx", _condition(_0027, edited=False)),
    "DROP INDEX CONCURRENTLY IF EXISTS item_text_searchable_idx",
    "DROP INDEX CONCURRENTLY IF EXISTS item_external_id_searchable_idx",
]



class Migration(migrations.Migration):
    atomic = False

    dependencies = [("moderation", "0027_item_intake_indexes")]

    operations = [migrations.RunPython(postgresql_statements(FORWARDS), postgresql_statements(BACKWARDS), atomic=False)]
