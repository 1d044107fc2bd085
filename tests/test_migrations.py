"""Migrations that a deploy can run under traffic: no plain CREATE INDEX on the big tables."""

from __future__ import annotations

import pytest
from django.db import connection, models
from django.db.migrations import AddConstraint, AddField, AddIndex, Migration
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.state import ProjectState

from moderation.migration_operations import (
    AddIndexConcurrently,
    AddUniqueConstraintConcurrently,
    DropFieldIndexConcurrently,
)

# Tables that hold a row per item, label or decision: a plain index build blocks their writes
# (intake, labeling, review) for as long as it takes.
BIG_TABLES = {("moderation", "item"), ("moderation", "decision"), ("labelers", "label")}
# Already deployed before this check, with plain indexes (0007, 0009, 0010 and 0011 on big
# tables, and the initial ones): rewriting applied migrations would change no database that
# has them, and would make fresh installs' migrations non-atomic for nothing. Checked: later.
DEPLOYED_UP_TO = {"moderation": 11, "labelers": 11}


def deployed(migration: Migration) -> bool:
    return int(migration.name[:4]) <= DEPLOYED_UP_TO[migration.app_label]


def blocking_index_builds(migration: Migration) -> list[str]:
    """Operations of a migration that build an index on a big table with writes blocked."""
    found = []
    for operation in migration.operations:
        model = getattr(operation, "model_name", None)
        if model is None or (migration.app_label, model.lower()) not in BIG_TABLES:
            continue
        plain_index = isinstance(operation, AddIndex) and not isinstance(
            operation, AddIndexConcurrently
        )
        unique = (
            isinstance(operation, AddConstraint)
            and not isinstance(operation, AddUniqueConstraintConcurrently)
            and isinstance(operation.constraint, models.UniqueConstraint)
        )
        indexed_field = isinstance(operation, AddField) and (
            operation.field.db_index or operation.field.unique
        )
        if plain_index or unique or indexed_field:
            found.append(operation.describe())
    return found


def project_migrations() -> list[Migration]:
    loader = MigrationLoader(None, ignore_no_migrations=True)
    return [
        m for (app, _), m in loader.disk_migrations.items() if app in ("moderation", "labelers")
    ]


def test_no_migration_builds_a_plain_index_on_the_item_label_or_decision_tables():
    offending = {
        (m.app_label, m.name): found
        for m in project_migrations()
        if not deployed(m) and (found := blocking_index_builds(m))
    }
    assert not offending, (
        "build new indexes on these tables with moderation.migration_operations."
        f"AddIndexConcurrently in a migration with atomic = False: {offending}"
    )


def test_a_concurrent_index_is_only_used_in_a_non_atomic_migration():
    for migration in project_migrations():
        concurrent = (
            AddIndexConcurrently,
            AddUniqueConstraintConcurrently,
            DropFieldIndexConcurrently,
        )
        if any(isinstance(op, concurrent) for op in migration.operations):
            assert migration.atomic is False, migration.name


def test_the_check_catches_a_later_plain_index_and_lets_a_concurrent_one_pass():
    assert any(blocking_index_builds(m) for m in project_migrations() if deployed(m))
    index = models.Index(fields=["received_at"], name="item_later_idx")
    plain = Migration("0099_later", "moderation")
    plain.operations = [AddIndex(model_name="item", index=index)]
    assert blocking_index_builds(plain)
    concurrent = Migration("0099_later", "moderation")
    concurrent.operations = [AddIndexConcurrently(model_name="item", index=index)]
    assert not blocking_index_builds(concurrent)


@pytest.mark.django_db(transaction=True)
def test_add_index_concurrently_builds_and_drops_the_index_on_this_database():
    """Concurrently on PostgreSQL (outside a transaction), plainly on SQLite."""
    loader = MigrationLoader(connection)
    state: ProjectState = loader.project_state()
    operation = AddIndexConcurrently(
        model_name="label", index=models.Index(fields=["worker", "status"], name="label_test_idx")
    )
    new_state = state.clone()
    operation.state_forwards("labelers", new_state)

    def indexes():
        with connection.cursor() as cursor:
            table = "labelers_label"
            return connection.introspection.get_constraints(cursor, table).keys()

    with connection.schema_editor(atomic=False) as editor:
        operation.database_forwards("labelers", editor, state, new_state)
    assert "label_test_idx" in indexes()
    with connection.schema_editor(atomic=False) as editor:
        operation.database_backwards("labelers", editor, new_state, state)
    assert "label_test_idx" not in indexes()


@pytest.mark.django_db(transaction=True)
def test_drop_field_index_concurrently_drops_and_builds_the_fields_index_on_this_database():
    """Item.source's own index (0027): dropped concurrently on PostgreSQL (plainly on
    SQLite), built again backwards; the Meta indexes on the column stay."""
    loader = MigrationLoader(connection)
    before = loader.project_state(("moderation", "0026_dashboard_rollups"))
    migration = loader.disk_migrations[("moderation", "0027_item_intake_indexes")]
    (operation,) = [
        op
        for op in migration.operations
        if isinstance(op, DropFieldIndexConcurrently) and op.name == "source"
    ]
    executor_state = loader.project_state(("moderation", "0027_item_intake_indexes"))

    def source_indexes():
        with connection.cursor() as cursor:
            found = connection.introspection.get_constraints(cursor, "moderation_item")
        return {
            name
            for name, info in found.items()
            if info["columns"] == ["source_id"] and info["index"] and not info["unique"]
        }

    assert not source_indexes()  # migrated: only the unique (source, webhook_id) leads
    with connection.schema_editor(atomic=False) as editor:
        operation.database_backwards("moderation", editor, executor_state, before)
    assert len(source_indexes()) == 1
    with connection.schema_editor(atomic=False) as editor:
        operation.database_forwards("moderation", editor, before, executor_state)
    assert not source_indexes()
