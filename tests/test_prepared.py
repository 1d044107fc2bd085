"""lib/prepared.py: a statement PREPAREd once per PostgreSQL session, EXECUTEd after; again
in a new session (a reconnect) or one that forgot it; the plain SQL on other databases."""

from __future__ import annotations

import contextlib

import psycopg
import pytest
from django.db import OperationalError, connection, connections, transaction
from django.test.utils import CaptureQueriesContext

from lib.prepared import PreparedStatement

pytestmark = pytest.mark.django_db

postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="PREPARE is PostgreSQL's"
)


def statement(name: str = "test_sum", **kwargs) -> PreparedStatement:
    # A name used twice is one parameter; `%%` is a literal % to the driver.
    return PreparedStatement(
        name,
        "SELECT CAST(%(a)s AS integer) + CAST(%(b)s AS integer), CAST(%(a)s AS integer), '%%'",
        (("a", "integer"), ("b", "integer")),
        **kwargs,
    )


def run(stmt: PreparedStatement, a: int, b: int) -> tuple[tuple | None, list[str]]:
    with CaptureQueriesContext(connection) as queries:
        row = stmt.fetchone({"a": a, "b": b})
    return row, [q["sql"] for q in queries if "SAVEPOINT" not in q["sql"]]


@contextlib.contextmanager
def connections_other():
    """A second session to the test database, outside Django."""
    params = connection.get_connection_params()
    params.pop("cursor_factory", None)
    params.pop("context", None)
    with psycopg.connect(**params, autocommit=True) as other:
        yield other


def held(stmt: PreparedStatement) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_prepared_statements WHERE name = %s", [stmt.name])
        return cursor.fetchone() is not None


def test_the_prepared_text_numbers_the_parameters_and_names_its_version():
    stmt = statement()
    assert stmt.prepare_sql.startswith(f"PREPARE {stmt.name} (integer, integer) AS SELECT ")
    assert "CAST($1 AS integer) + CAST($2 AS integer), CAST($1 AS integer), '%'" in (
        stmt.prepare_sql
    )
    assert stmt.execute_sql == f"EXECUTE {stmt.name} (%s, %s)"
    # Another text under the same name is another statement to a session.
    other = PreparedStatement("test_sum", "SELECT CAST(%(a)s AS integer)", (("a", "integer"),))
    assert stmt.name.startswith("test_sum_") and other.name != stmt.name


def test_placeholders_and_parameters_must_agree():
    with pytest.raises(ValueError, match="placeholders"):
        PreparedStatement("test_bad", "SELECT %(a)s, %(c)s", (("a", "integer"),))
    with pytest.raises(ValueError, match="name"):
        PreparedStatement("bad name; --", "SELECT %(a)s", (("a", "integer"),))


@postgresql_only
def test_a_statement_is_prepared_once_per_session():
    stmt = statement("test_once")
    row, first = run(stmt, 2, 3)
    assert row == (5, 2, "%")
    assert [sql.split()[0] for sql in first] == ["PREPARE", "EXECUTE"]
    assert held(stmt)
    row, second = run(stmt, 4, 5)
    assert row == (9, 4, "%")
    assert second == [f"EXECUTE {stmt.name} (4, 5)"]


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_new_session_prepares_it_again():
    """A reconnect (CONN_MAX_AGE, a failed health check, a server restart) is a session
    without it: PREPAREd there on first use."""
    stmt = statement("test_reconnect")
    assert run(stmt, 1, 1)[0] == (2, 1, "%")
    connection.close()
    row, queries = run(stmt, 2, 2)
    assert row == (4, 2, "%")
    assert [sql.split()[0] for sql in queries] == ["PREPARE", "EXECUTE"]
    assert run(stmt, 3, 3)[1] == [f"EXECUTE {stmt.name} (3, 3)"]


@postgresql_only
def test_a_session_that_forgot_it_runs_it_plainly_once_then_prepares_it_again():
    """DISCARD ALL or a pooler's other server connection: the caller's transaction stays
    usable, the statement runs as plain SQL this once, and is PREPAREd next time."""
    stmt = statement("test_forgot")
    run(stmt, 1, 1)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("DEALLOCATE ALL")
        row, queries = run(stmt, 5, 6)
        assert row == (11, 5, "%")
        assert queries[0].startswith("EXECUTE ") and queries[-1].startswith("SELECT CAST(5 ")
        # The transaction was not broken by the failed EXECUTE.
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    row, queries = run(stmt, 7, 1)
    assert row == (8, 7, "%")
    assert [sql.split()[0] for sql in queries] == ["PREPARE", "EXECUTE"]


@postgresql_only
def test_a_session_that_holds_it_already_executes_it():
    """This process lost its record (a new process on a pooler's server connection): the
    PREPARE of a name the session holds is no error."""
    stmt = statement("test_held")
    run(stmt, 1, 1)
    stmt.forget()
    with transaction.atomic():
        row, queries = run(stmt, 2, 40)
        assert row == (42, 2, "%")
        assert queries[-1] == f"EXECUTE {stmt.name} (2, 40)"


@postgresql_only
def test_sessions_not_kept_between_requests_run_the_plain_statement(monkeypatch):
    """CONN_MAX_AGE 0: a session per request, so a PREPARE would serve one EXECUTE."""
    monkeypatch.setitem(connection.settings_dict, "CONN_MAX_AGE", 0)
    stmt = statement("test_unkept")
    row, queries = run(stmt, 1, 2)
    assert row == (3, 1, "%")
    assert len(queries) == 1 and queries[0].startswith("SELECT CAST(")


@pytest.mark.skipif(connection.vendor == "postgresql", reason="the other databases' path")
def test_other_databases_run_the_plain_statement():
    stmt = statement("test_plain")
    for a, b in ((1, 2), (3, 4)):
        row, queries = run(stmt, a, b)
        assert row == (a + b, a, "%")
        assert len(queries) == 1 and queries[0].startswith("SELECT CAST(")


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_the_statement_is_the_requests_health_check_on_a_kept_session(monkeypatch):
    """A webhook's one statement needs no `SELECT 1` round trip before it (Django's
    CONN_HEALTH_CHECKS): its own run is the check."""
    stmt = statement("test_checked", checks_session=True)
    stmt.fetchone({"a": 1, "b": 1})
    assert connection.health_check_enabled
    checks = []
    monkeypatch.setattr(
        type(connections["default"]), "is_usable", lambda self: checks.append(1) or True
    )
    connection.health_check_done = False  # as at the start of the next request
    assert stmt.fetchone({"a": 2, "b": 3})[0] == 5
    assert checks == [] and connection.health_check_done
    # A statement not made for it leaves the check to Django.
    connection.health_check_done = False
    statement("test_unchecked").fetchone({"a": 1, "b": 1})
    assert checks == [1]


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_statement_on_a_session_that_died_runs_on_a_new_one():
    """The server ended the kept session (a restart, a terminated backend) between two
    requests: the statement runs again on a new session, as Django's health check would
    have reconnected before it."""
    stmt = statement("test_died", checks_session=True)
    stmt.fetchone({"a": 1, "b": 1})
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (old_pid,) = cursor.fetchone()
    with connections_other() as other:
        other.execute("SELECT pg_terminate_backend(%s)", [old_pid])
    connection.health_check_done = False  # the next request
    assert stmt.fetchone({"a": 2, "b": 3})[0] == 5
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        assert cursor.fetchone()[0] != old_pid


@postgresql_only
@pytest.mark.django_db(transaction=True)
def test_a_dead_session_inside_a_transaction_is_not_retried():
    """Inside a transaction the session was checked when it began; a failure there is the
    caller's (the transaction cannot go on elsewhere)."""
    stmt = statement("test_died_atomic", checks_session=True)
    stmt.fetchone({"a": 1, "b": 1})
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_backend_pid()")
        (old_pid,) = cursor.fetchone()
    with pytest.raises(OperationalError), transaction.atomic():  # noqa: PT012
        with connections_other() as other:
            other.execute("SELECT pg_terminate_backend(%s)", [old_pid])
        stmt.fetchone({"a": 2, "b": 3})
    connection.close()
