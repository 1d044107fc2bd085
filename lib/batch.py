"""Several independent reads in one round trip to the database.

A page that makes twenty small reads pays twenty round trips, and on a busy machine each
one waits for the database's process and then for its own to be scheduled again: under
load that wait, not the SQL, is most of the page's time. On PostgreSQL (client-side
binding, Django's default with psycopg 3) the statements are sent as one string and their
results read in turn; elsewhere each queryset is read on its own. Either way each result is
exactly what list(queryset) gives: the same SQL, the same converters.

    received, flagged = read_together(
        Item.objects.filter(...).values_list("source_id").annotate(n=Count("*")),
        Item.objects.filter(...).values("source_id", "status").annotate(n=Count("*")),
    )
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import EmptyResultSet
from django.db import connections
from django.db.models import QuerySet
from django.db.models.query import FlatValuesListIterable, ValuesIterable, ValuesListIterable

SHAPES = (ValuesIterable, ValuesListIterable, FlatValuesListIterable)


def read_together(*querysets: QuerySet) -> list[list[Any]]:
    """Each queryset's rows (values(), values_list(), values_list(flat=True) querysets;
    one database), read in one round trip where the database allows it."""
    for queryset in querysets:
        if queryset._iterable_class not in SHAPES:  # models need more than rows
            raise TypeError(f"read_together reads values querysets, not {queryset.model}")
    aliases = {queryset.db for queryset in querysets}
    if len(aliases) != 1:
        return [list(queryset) for queryset in querysets]
    connection = connections[aliases.pop()]
    if connection.vendor != "postgresql" or connection.features.uses_server_side_binding:
        return [list(queryset) for queryset in querysets]
    compiled = []
    for queryset in querysets:
        compiler = queryset.query.get_compiler(queryset.db)
        try:
            sql, params = compiler.as_sql()
        except EmptyResultSet:
            sql, params = "", ()
        compiled.append((queryset, compiler, sql, params))
    statements = [(sql, params) for _, _, sql, params in compiled if sql]
    rows_of: list[list[tuple]] = []
    if statements:
        with connection.cursor() as cursor:
            cursor.execute(
                ";\n".join(sql for sql, _ in statements),
                [param for _, params in statements for param in params],
            )
            for n in range(len(statements)):
                if n:
                    cursor.nextset()
                rows_of.append(cursor.fetchall())
    results = []
    read = iter(rows_of)
    for queryset, compiler, sql, _ in compiled:
        rows = list(compiler.results_iter(results=[next(read)], tuple_expected=True)) if sql else []
        results.append(_shaped(queryset, rows))
    return results


def _shaped(queryset: QuerySet, rows: list[tuple]) -> list[Any]:
    """The rows as the queryset's own iterable (django.db.models.query) yields them."""
    query = queryset.query
    if queryset._iterable_class is FlatValuesListIterable:
        return [row[0] for row in rows]
    if queryset._iterable_class is ValuesIterable:
        names = (
            list(query.selected)
            if query.selected
            else [*query.extra_select, *query.values_select, *query.annotation_select]
        )
        return [dict(zip(names, row, strict=True)) for row in rows]
    return rows
