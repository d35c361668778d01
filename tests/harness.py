"""Test harness: a session database built fresh, per-test rollback, and PostgREST-style roles.

The tests run against their own embedded cluster (data under .arti/test-db, port 54329 by default,
ARTI_TEST_DB_PORT to change it) so a test run never touches the development database on 54322.
Its `postgres` database is dropped and rebuilt (bootstrap + migrations + sql_functions) once per
session; pg_cron runs in it exactly as in the development cluster.
"""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from arti.db import set_request_context, user_claims
from arti.localdb import LocalCluster
from arti.migrate import apply_function_files, function_drift, migrate
from arti.queue_schema import pending_queue_migrations
from arti.settings import PROJECT_ROOT, embedded_url
from arti.users import INSERT_USER_SQL

TESTS_SQL = PROJECT_ROOT / "supabase" / "tests"


MIGRATIONS = PROJECT_ROOT / "supabase" / "migrations"
SQL_FUNCTIONS = PROJECT_ROOT / "sql_functions"


@dataclass
class SessionBuild:
    """How the session database was built: from the migrations alone, then the sql_functions files applied on
    top (so a function being edited can be tested before it becomes a migration). `drift` lists the files that
    changed something when applied: tests/integration/test_migrate.py fails on it, so in CI the database under
    test is exactly what the migrations build."""

    url: str = ""
    drift: list[str] = field(default_factory=list)
    pending_queue_migrations: list[str] = field(default_factory=list)


SESSION = SessionBuild()

EMAIL_APP_METADATA = {"provider": "email", "providers": ["email"]}
"""raw_app_meta_data of a user who signed up with an email address, as GoTrue writes it."""


def build_session_database(cluster: LocalCluster) -> str:
    """Drop and recreate the test database, migrate it, apply sql_functions, install pgTAP. Returns its URL."""
    cluster.recreate_database()
    url = embedded_url(cluster.port)
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        migrate(conn, MIGRATIONS)
        SESSION.drift = function_drift(conn, SQL_FUNCTIONS)
        SESSION.pending_queue_migrations = pending_queue_migrations(conn)
        apply_function_files(conn, SQL_FUNCTIONS)
        conn.execute("create extension if not exists pgtap with schema extensions")
    SESSION.url = url
    return url


class TestDB:
    """One test's connection: everything it does is rolled back when the test ends."""

    __test__ = False  # not a test class for pytest

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.users: dict[str, dict[str, Any]] = {}
        conn.execute("select 1")  # open the outer transaction; blocks below become savepoints

    # -- queries -----------------------------------------------------------------------------------
    def execute(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        cur = self.conn.execute(sql, params)
        return cur.fetchall() if cur.description else []

    def one(self, sql: str, params: Any = None) -> dict[str, Any] | None:
        rows = self.execute(sql, params)
        return rows[0] if rows else None

    def value(self, sql: str, params: Any = None) -> Any:
        row = self.one(sql, params)
        return None if row is None else next(iter(row.values()))

    # -- roles, exactly as PostgREST sets them per request ----------------------------------------
    @contextmanager
    def as_role(self, role: str, claims: Mapping[str, Any] | None) -> Iterator[TestDB]:
        """The block runs as PostgREST runs a request: role, claims and the role's own settings (statement
        timeout anon 3 s, authenticated 8 s). The block is a savepoint of the test's transaction, where local
        settings outlive it: the test's own are put back afterwards."""
        timeout = self.value("select current_setting('statement_timeout')")
        with self.conn.transaction():
            set_request_context(self.conn, role, claims)
            try:
                yield self
            finally:
                if self.conn.info.transaction_status != psycopg.pq.TransactionStatus.INERROR:
                    self.conn.execute("reset role")
                    self.conn.execute("select set_config('request.jwt.claims', '', true), "
                                      "set_config('request.jwt.claim.sub', '', true), "
                                      "set_config('statement_timeout', %s, true)", (timeout,))

    def as_user(self, user_id: uuid.UUID | str, claims: Mapping[str, Any] | None = None,
                **claim_overrides: Any) -> Any:
        """Become `authenticated` with the claims GoTrue would issue for this user."""
        if claims is None:
            known = self.users.get(str(user_id), {})
            base = user_claims(str(user_id), email=known.get("email"), app_metadata=known.get("app_metadata"))
        else:
            base = dict(claims)
        base.update(claim_overrides)
        return self.as_role("authenticated", base)

    def as_anon(self) -> Any:
        return self.as_role("anon", {"role": "anon"})

    def as_service_role(self) -> Any:
        return self.as_role("service_role", {"role": "service_role"})

    @contextmanager
    def savepoint(self) -> Iterator[TestDB]:
        """A block whose failure (e.g. an expected error) does not abort the test's transaction."""
        with self.conn.transaction():
            yield self

    # -- factories ---------------------------------------------------------------------------------
    def create_user(self, email: str | None = None, *, full_name: str | None = None,
                    app_metadata: Mapping[str, Any] | None = None) -> uuid.UUID:
        """A row in auth.users, as GoTrue writes one on sign-up."""
        user_id = uuid.uuid4()
        email = email or f"user-{user_id.hex[:8]}@example.test"
        meta = {"full_name": full_name or email.split("@")[0]}
        app = {**EMAIL_APP_METADATA, **(app_metadata or {})}
        self.execute(INSERT_USER_SQL, gotrue_user(user_id, email, app_meta=app, user_meta=meta))
        self.users[str(user_id)] = {"email": email, "app_metadata": app}
        return user_id


def gotrue_user(user_id: uuid.UUID, email: str, *, app_meta: Mapping[str, Any] | None = None,
                user_meta: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Parameters of arti.users.INSERT_USER_SQL for a confirmed user without a password (app metadata: an email
    sign-up's unless given)."""
    return {"id": user_id, "email": email, "password": None, "confirmed": True,
            "app_meta": json.dumps(app_meta or EMAIL_APP_METADATA), "user_meta": json.dumps(user_meta or {})}


def child_env(**settings: str) -> dict[str, str]:
    """The environment for a child process (`arti` CLI, worker, platform): this one's without its SUPABASE_* and
    ARTI_* variables, so a developer's own configuration never reaches a test, plus `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUPABASE_", "ARTI_"))}
    env.update(settings)
    return env


def wait_until(predicate: Callable[[], Any], timeout: float = 20.0, what: str = "condition", *, every: float = 0.1,
               logs: Callable[[], str] | None = None) -> Any:
    """Poll `predicate` every `every` seconds until it returns something truthy (returned), or fail after `timeout`
    (with what `logs` returns then, if given)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out waiting for {what}" + (f" ({timeout:.0f} s)\n{logs()}" if logs else ""))


def pgtap_files() -> list[Path]:
    return sorted(TESTS_SQL.glob("*.sql"))
