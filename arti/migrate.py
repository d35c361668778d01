"""Migration runner: versioned migrations as the Supabase CLI records them, then repeatable SQL functions.

* supabase/migrations/<version>_<name>.sql are applied in version order, each in its own transaction,
  and recorded in supabase_migrations.schema_migrations (version, statements, name) like the CLI does,
  so `supabase db push` and this runner agree about what is applied.
* sql_functions/**/*.sql are CREATE OR REPLACE files, re-applied when their checksum changes
  (recorded in supabase_migrations.arti_repeatable_scripts), all in one transaction.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from arti.compat import apply_compat
from arti.errors import ArtiError
from arti.queue_schema import install_procrastinate
from arti.sqlsplit import Statement, split_statements

MIGRATION_NAME = re.compile(r"^(?P<version>\d+)_(?P<name>[A-Za-z0-9_\-]+)\.sql$")

TRACKING_DDL = """
create schema if not exists supabase_migrations;
create table if not exists supabase_migrations.schema_migrations (version text not null primary key);
alter table supabase_migrations.schema_migrations add column if not exists statements text[];
alter table supabase_migrations.schema_migrations add column if not exists name text;
create table if not exists supabase_migrations.arti_repeatable_scripts (
    path text primary key,
    checksum text not null,
    applied_at timestamptz not null default now()
);
comment on table supabase_migrations.arti_repeatable_scripts is
    'Checksums of the sql_functions/ files last applied by `arti db migrate`.';
"""


@dataclass(frozen=True)
class Migration:
    """A versioned migration file."""

    version: str
    name: str
    path: Path


@dataclass
class MigrateReport:
    """What a run applied."""

    applied: list[str] = field(default_factory=list)
    functions: list[str] = field(default_factory=list)
    queue: list[str] = field(default_factory=list)


def discover_migrations(directory: Path) -> list[Migration]:
    """Migration files in version order; a misnamed .sql file is an error, not silently skipped."""
    if not directory.is_dir():
        return []
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        match = MIGRATION_NAME.match(path.name)
        if not match:
            raise ArtiError(
                f"migration file {path} is not named <version>_<name>.sql (e.g. 20260101000000_init.sql)"
            )
        found.append(Migration(match["version"], match["name"], path))
    versions = [m.version for m in found]
    duplicates = sorted({v for v in versions if versions.count(v) > 1})
    if duplicates:
        raise ArtiError(f"two migration files share the version {duplicates[0]} in {directory}")
    return sorted(found, key=lambda m: int(m.version))


def read_sql(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ArtiError(f"cannot read {path}: {reason}; fix the file's permissions or encoding") from None


def ensure_tracking(conn: psycopg.Connection[Any]) -> None:
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('arti-migrate-tracking'))")
        conn.execute(TRACKING_DDL)


def applied_versions(conn: psycopg.Connection[Any]) -> set[str]:
    rows = conn.execute("select version from supabase_migrations.schema_migrations").fetchall()
    return {_first(row) for row in rows}


def pending_migrations(conn: psycopg.Connection[Any], directory: Path) -> list[Migration]:
    """Migrations in `directory` not yet recorded as applied (all of them if nothing is tracked)."""
    exists = conn.execute("select to_regclass('supabase_migrations.schema_migrations') as t").fetchone()
    done = applied_versions(conn) if exists and _first(exists) else set()
    return [m for m in discover_migrations(directory) if m.version not in done]


def _first(row: Any) -> Any:
    return next(iter(row.values())) if isinstance(row, dict) else row[0]


def _run_statements(conn: psycopg.Connection[Any], path: Path, statements: list[Statement]) -> None:
    for statement in statements:
        try:
            conn.execute(statement.text.encode())
        except psycopg.Error as exc:
            position = getattr(exc.diag, "statement_position", None)
            line = statement.line
            if position:
                line += statement.text[: int(position) - 1].count("\n")
            message = (exc.diag.message_primary or str(exc)).strip()
            if exc.diag.message_hint:
                message += f"; hint: {exc.diag.message_hint.strip()}"
            raise ArtiError(f"{path}:{line}: {message} (SQLSTATE {exc.sqlstate})") from None


def apply_migrations(conn: psycopg.Connection[Any], directory: Path) -> list[str]:
    """Apply pending migrations, each in its own transaction. Returns the applied file names."""
    applied: list[str] = []
    for migration in pending_migrations(conn, directory):
        statements = split_statements(read_sql(migration.path))
        try:
            with conn.transaction():
                conn.execute("select pg_advisory_xact_lock(hashtext('arti-migrate'))")
                _run_statements(conn, migration.path, statements)
                conn.execute(
                    "insert into supabase_migrations.schema_migrations (version, statements, name) "
                    "values (%s, %s, %s)",
                    (migration.version, [s.text for s in statements], migration.name),
                )
        except ArtiError as exc:
            raise ArtiError(f"migration failed and was rolled back: {exc}") from None
        applied.append(migration.path.name)
    return applied


def apply_functions(conn: psycopg.Connection[Any], directory: Path) -> list[str]:
    """Re-apply every changed sql_functions file in one transaction. Returns the applied paths."""
    if not directory.is_dir():
        return []
    files = sorted(p for p in directory.rglob("*.sql") if p.is_file())
    recorded = {
        row["path"] if isinstance(row, dict) else row[0]: row["checksum"] if isinstance(row, dict) else row[1]
        for row in conn.execute("select path, checksum from supabase_migrations.arti_repeatable_scripts")
    }
    changed: list[tuple[str, Path, str, str]] = []
    for path in files:
        text = read_sql(path)
        checksum = hashlib.sha256(text.encode()).hexdigest()
        relative = path.relative_to(directory).as_posix()
        if recorded.get(relative) != checksum:
            changed.append((relative, path, text, checksum))
    if not changed:
        return []
    try:
        with conn.transaction():
            conn.execute("select pg_advisory_xact_lock(hashtext('arti-migrate'))")
            # Files may reference each other; bodies are checked when called, not when created.
            conn.execute("set local check_function_bodies = off")
            for relative, path, text, checksum in changed:
                _run_statements(conn, path, split_statements(text))
                conn.execute(
                    "insert into supabase_migrations.arti_repeatable_scripts (path, checksum) values (%s, %s) "
                    "on conflict (path) do update set checksum = excluded.checksum, applied_at = now()",
                    (relative, checksum),
                )
    except ArtiError as exc:
        raise ArtiError(f"sql_functions not applied (rolled back): {exc}") from None
    return [relative for relative, *_ in changed]


def migrate(conn: psycopg.Connection[Any], migrations_dir: Path, functions_dir: Path) -> MigrateReport:
    """Bootstrap Supabase compatibility where needed, install/upgrade Procrastinate's schema, then apply
    migrations and changed functions."""
    # Every migration file is named and readable before anything touches the database.
    for migration in discover_migrations(migrations_dir):
        read_sql(migration.path)
    apply_compat(conn)
    ensure_tracking(conn)
    report = MigrateReport()
    report.queue = install_procrastinate(conn)
    report.applied = apply_migrations(conn, migrations_dir)
    report.functions = apply_functions(conn, functions_dir)
    return report
