"""One SQL statement PREPAREd once per PostgreSQL session and EXECUTEd with its values after.

Intake's statements (an item's INSERT, a known author's lookup and insert, a report's dozen
joins) are short to run and comparatively costly to parse and plan: PREPAREd, a session
plans each once (PostgreSQL keeps the plan, or re-plans with the values when that is better)
and every webhook after only EXECUTEs it.

A session lost to a reconnect (CONN_MAX_AGE, CONN_HEALTH_CHECKS, a restart of the server)
is a new raw connection: PREPAREd again on first use. A session that forgot the statement
behind our back (DISCARD ALL, DEALLOCATE, a pooler handing over another server connection)
answers EXECUTE with 26000: the statement runs this once as plain SQL, and is PREPAREd again
next time. Other databases (SQLite), and sessions not kept between requests (CONN_MAX_AGE
0), run the plain SQL each time.

Inside a caller's transaction a failed statement would break it: there, each try runs in a
savepoint of its own, so the caller's transaction stays usable (and an IntegrityError from
the statement leaves it usable too, as the ORM's create() in atomic() does).
"""

from __future__ import annotations

import hashlib
import re
import weakref
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from typing import Any

from django.db import InterfaceError, OperationalError, ProgrammingError, connection, transaction

# SQLSTATE of an EXECUTE whose statement this session does not hold, and of a PREPARE of a
# name it holds already.
_MISSING = "26000"
_DUPLICATE = "42P05"
_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _guard():
    """Inside a caller's transaction, a savepoint keeps a failed statement from breaking it."""
    return transaction.atomic() if connection.in_atomic_block else nullcontext()


def _health_check_by_running() -> bool:
    """Whether Django would health-check the kept session before this request's first
    statement; if so, the caller's statement stands in for that check (and must retry once
    on a dead session)."""
    if (
        connection.connection is None  # a new session: nothing to check
        or connection.in_atomic_block  # checked when the transaction began
        or not connection.health_check_enabled
        or connection.health_check_done
    ):
        return False
    connection.health_check_done = True
    return True


def _sqlstate(exc: Exception) -> str | None:
    return getattr(exc.__cause__, "sqlstate", None)


def _rows(cursor, first: bool) -> list[tuple]:
    if first:
        row = cursor.fetchone()
        return [] if row is None else [row]
    return cursor.fetchall()


class PreparedStatement:
    """`sql` with `%(name)s` placeholders (a name may appear more than once); `params`: each
    name with its PostgreSQL type, in the order of PREPARE's $1, $2, ...

    The session's name for it is `name` and a digest of its text: a session that held an
    older text under the same name (a pooler's server connection across a deploy) is never
    handed the wrong statement."""

    def __init__(
        self,
        name: str,
        sql: str,
        params: Sequence[tuple[str, str]],
        *,
        checks_session: bool = False,
    ):
        if not re.fullmatch(r"[a-z_][a-z0-9_]*", name):
            raise ValueError(f"not a plain SQL name: {name!r}")
        self.sql = sql
        self.params = tuple(params)
        positions = {param: n for n, (param, _) in enumerate(self.params, start=1)}
        used = set(_PLACEHOLDER.findall(sql))
        if used != set(positions):
            raise ValueError(f"placeholders {sorted(used)} are not the params {sorted(positions)}")
        # Run without parameters, so `%%` (a literal % to the driver's interpolation) is `%`.
        body = _PLACEHOLDER.sub(lambda m: f"${positions[m.group(1)]}", sql).replace("%%", "%")
        types = ", ".join(kind for _, kind in self.params)
        digest = hashlib.sha256(f"{types}|{body}".encode()).hexdigest()[:12]
        self.name = name = f"{name}_{digest}"
        self.prepare_sql = f"PREPARE {name} ({types}) AS {body}"
        self.execute_sql = f"EXECUTE {name} ({', '.join(['%s'] * len(self.params))})"
        # Whether it may stand in for the request's health check (fetchall).
        self.checks_session = checks_session
        # The sessions (raw DB-API connections) known to hold it.
        self._prepared_on: weakref.WeakSet[Any] = weakref.WeakSet()

    def fetchone(self, values: Mapping[str, Any]) -> tuple | None:
        """The statement's first row (None: it returned none), on the default database."""
        rows = self.fetchall(values, first=True)
        return rows[0] if rows else None

    def fetchall(self, values: Mapping[str, Any], *, first: bool = False) -> list[tuple]:
        """The statement's rows (only the first with `first`), on the default database.

        A statement made with `checks_session` (intake's: each the whole of its webhook's
        writes) is, when it is the request's first use of a kept session, that session's
        health check (CONN_HEALTH_CHECKS): Django's own is a `SELECT 1` round trip before
        it, on every webhook. A session found dead (the server restarted, the backend was
        terminated) is closed and the statement runs once more on a new one. Outside a
        transaction that is safe for such a statement: atomic on its own, a first run either
        did nothing, or (its answer lost after its commit) the second run meets its own
        unique key, which intake answers as a repeat."""
        if connection.vendor != "postgresql" or not connection.settings_dict["CONN_MAX_AGE"]:
            # A session per request (CONN_MAX_AGE 0) would PREPARE on every request: one
            # round trip more than the plain statement, for a plan used once.
            return self._plain(values, first)
        checked_by_running = self.checks_session and _health_check_by_running()
        try:
            return self._fetchall(values, first)
        except (OperationalError, InterfaceError):
            if not checked_by_running or connection.is_usable():
                raise
        connection.close()
        return self._fetchall(values, first)

    def _fetchall(self, values: Mapping[str, Any], first: bool) -> list[tuple]:
        connection.ensure_connection()
        session = connection.connection
        if session not in self._prepared_on:
            self._prepare()
            self._prepared_on.add(session)
        try:
            with _guard(), connection.cursor() as cursor:
                cursor.execute(self.execute_sql, [values[name] for name, _ in self.params])
                return _rows(cursor, first)
        except ProgrammingError as exc:
            if _sqlstate(exc) != _MISSING:
                raise
        self._prepared_on.discard(session)  # PREPAREd again next time; this once, as it is
        return self._plain(values, first)

    def _prepare(self) -> None:
        try:
            with _guard(), connection.cursor() as cursor:
                cursor.execute(self.prepare_sql)
        except ProgrammingError as exc:
            # The session holds it already: a pooler's server connection PREPAREd by another
            # client connection of this process, or our record of it was lost.
            if _sqlstate(exc) != _DUPLICATE:
                raise

    def _plain(self, values: Mapping[str, Any], first: bool) -> list[tuple]:
        with _guard(), connection.cursor() as cursor:
            cursor.execute(self.sql, values)
            return _rows(cursor, first)

    def forget(self) -> None:
        """Forget which sessions hold it (tests: as after a restart of this process)."""
        self._prepared_on = weakref.WeakSet()
