"""Migration operations for the big tables (items, labels, decisions).

A plain CREATE INDEX holds a lock that blocks writes to the table for the whole build: on a
big PostgreSQL table, intake stops for minutes during a deploy. New indexes on those tables
are built with AddIndexConcurrently, in a migration with `atomic = False` (PostgreSQL cannot
build an index concurrently inside a transaction). Elsewhere (the SQLite default) it is a
plain AddIndex: nothing else writes during a SQLite migration that matters.

tests/test_migrations.py fails when a migration adds a plain index to those tables.
"""

from __future__ import annotations

from django.db import NotSupportedError
from django.db.migrations.operations import AddConstraint, AddIndex, AlterField
from django.db.models import Index


def _concurrently(schema_editor) -> bool:
    if schema_editor.connection.vendor != "postgresql":
        return False
    if schema_editor.connection.in_atomic_block:
        raise NotSupportedError(
            "AddIndexConcurrently needs a migration with atomic = False (PostgreSQL cannot "
            "build an index concurrently inside a transaction)"
        )
    return True


def postgresql_statements(statements: list[str]):
    """A RunPython function that executes SQL statements on PostgreSQL only (SQLite has no
    such index: it searches with a plain scan), one at a time, as CONCURRENTLY runs outside
    any transaction: for index kinds Django's operations cannot express (trigram GIN, with a
    condition on an expression)."""

    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            for sql in statements:
                schema_editor.execute(sql)

    return run


class AddIndexConcurrently(AddIndex):
    """CREATE INDEX CONCURRENTLY on PostgreSQL, a plain AddIndex on other databases."""

    def describe(self) -> str:
        return f"Concurrently create index {self.index.name} on {self.model_name}"

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            kwargs = {"concurrently": True} if _concurrently(schema_editor) else {}
            schema_editor.add_index(model, self.index, **kwargs)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        model = from_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            kwargs = {"concurrently": True} if _concurrently(schema_editor) else {}
            schema_editor.remove_index(model, self.index, **kwargs)


class AddUniqueConstraintConcurrently(AddConstraint):
    """A conditional UniqueConstraint (on PostgreSQL a partial unique index) built with
    CREATE UNIQUE INDEX CONCURRENTLY; a plain AddConstraint on other databases."""

    def describe(self) -> str:
        return f"Concurrently create unique constraint {self.constraint.name} on {self.model_name}"

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        if not _concurrently(schema_editor):
            schema_editor.add_constraint(model, self.constraint)
            return
        if self.constraint.condition is None:
            raise NotSupportedError("only a conditional UniqueConstraint is a plain index")
        sql = str(self.constraint.create_sql(model, schema_editor))
        assert sql.startswith("CREATE UNIQUE INDEX "), sql
        schema_editor.execute(
            sql.replace("CREATE UNIQUE INDEX ", "CREATE UNIQUE INDEX CONCURRENTLY ", 1)
        )

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.model_name)
        if self.allow_migrate_model(schema_editor.connection.alias, model):
            schema_editor.remove_constraint(model, self.constraint)


class DropFieldIndexConcurrently(AlterField):
    """A field's own index dropped (db_index True -> False; another index serves its
    lookups) with DROP INDEX CONCURRENTLY on PostgreSQL, so that intake never waits for
    the ACCESS EXCLUSIVE lock a plain DROP INDEX takes; a plain AlterField elsewhere.
    Backwards it is built again concurrently."""

    def describe(self) -> str:
        return f"Concurrently drop the index of {self.model_name}.{self.name}"

    def _field_index_names(self, schema_editor, model, column: str) -> list[str]:
        # The indexes Django made for the field itself (the plain one and, for text, its
        # LIKE-pattern twin): single-column, not unique, not one of Meta's. Read from the
        # database's own catalogue (public introspection), not guessed from a name.
        meta = {index.name for index in model._meta.indexes}
        meta |= {constraint.name for constraint in model._meta.constraints}
        connection = schema_editor.connection
        with connection.cursor() as cursor:
            found = connection.introspection.get_constraints(cursor, model._meta.db_table)
        return sorted(
            name
            for name, info in found.items()
            if info["index"]
            and not info["unique"]
            and not info["primary_key"]
            and info["columns"] == [column]
            and info["type"] == Index.suffix
            and name not in meta
        )

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if not _concurrently(schema_editor):
            return super().database_forwards(app_label, schema_editor, from_state, to_state)
        model = from_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        column = model._meta.get_field(self.name).column
        for name in self._field_index_names(schema_editor, model, column):
            schema_editor.execute(
                f"DROP INDEX CONCURRENTLY IF EXISTS {schema_editor.quote_name(name)}"
            )

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if not _concurrently(schema_editor):
            return super().database_backwards(app_label, schema_editor, from_state, to_state)
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        # Built again as a named Index (the name Django's Index gives itself), concurrently.
        index = Index(fields=[self.name])
        index.set_name_with_model(model)
        schema_editor.add_index(model, index, concurrently=True)
