"""Migration runner: supabase/migrations is the one source of truth, applied as the Supabase CLI applies it.

* supabase/migrations/<version>_<name>.sql are applied in version order, each in its own transaction,
  and recorded in supabase_migrations.schema_migrations (version, statements, name) like the CLI does,
  so `supabase db push` and this runner build and record the same database. Procrastinate's schema and
  every function are in those migrations too.
* sql_functions/**/*.sql stay the readable, declarative home of the functions (CREATE OR REPLACE files).
  They are not applied by `arti db migrate`: `arti db functions --write NAME` turns the files whose
  definitions differ from the migrated database into a new migration, and `function_drift()` (run by the
  tests on every fresh build) fails the build when a file and the migrations disagree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from arti.compat import apply_compat
from arti.errors import ArtiError
from arti.sqlsplit import Statement, split_statements

MIGRATION_NAME = re.compile(r"^(?P<version>\d+)_(?P<name>[A-Za-z0-9_\-]+)\.sql$")

TRACKING_DDL = """
create schema if not exists supabase_migrations;
create table if not exists supabase_migrations.schema_migrations (version text not null primary key);
alter table supabase_migrations.schema_migrations add column if not exists statements text[];
alter table supabase_migrations.schema_migrations add column if not exists name text;
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


def function_files(directory: Path) -> list[Path]:
    """The sql_functions files, in the order they are applied (path order)."""
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.rglob("*.sql") if p.is_file())


FUNCTIONS_CATALOG_SQL = """
select p.oid::regprocedure::text as signature,
       pg_get_functiondef(p.oid) as definition,
       coalesce(p.proacl::text, '') as acl,
       coalesce(obj_description(p.oid, 'pg_proc'), '') as comment,
       pg_get_userbyid(p.proowner) as owner
from pg_proc as p
join pg_namespace as n on n.oid = p.pronamespace
where n.nspname not in ('pg_catalog', 'information_schema')
  and n.nspname not like 'pg_toast%%'
  and not exists (select 1 from pg_depend as d where d.objid = p.oid and d.deptype = 'e')
"""
"""Every function outside the system schemas and extensions: what sql_functions files define and grant."""


def functions_catalog(conn: psycopg.Connection[Any]) -> dict[str, tuple[str, str, str, str]]:
    """signature -> (definition, ACL, comment, owner) of every non-extension function."""
    return {_first(row): tuple(_values(row)[1:]) for row in conn.execute(FUNCTIONS_CATALOG_SQL)}  # type: ignore[misc]


def _values(row: Any) -> list[Any]:
    return list(row.values()) if isinstance(row, dict) else list(row)


def _apply_file(conn: psycopg.Connection[Any], path: Path) -> None:
    _run_statements(conn, path, split_statements(read_sql(path)))


def function_drift(conn: psycopg.Connection[Any], directory: Path) -> list[str]:
    """The sql_functions files whose application would change this database's functions (definition, grants,
    comment or owner), relative to `directory`. Everything is applied inside a transaction that is rolled
    back: the database is left as it was. An empty list means the migrations and the files agree."""
    changed: list[str] = []
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        raise ArtiError("function_drift needs a connection outside any transaction")
    tx = conn.transaction(force_rollback=True)
    with tx:
        conn.execute("set local check_function_bodies = off")
        before = functions_catalog(conn)
        for path in function_files(directory):
            _apply_file(conn, path)
            after = functions_catalog(conn)
            if after != before:
                changed.append(path.relative_to(directory).as_posix())
            before = after
    return changed


def apply_function_files(conn: psycopg.Connection[Any], directory: Path) -> list[str]:
    """Apply every sql_functions file in one transaction, for trying a change before it becomes a migration
    (the test harness does this after the migrations; `function_drift` keeps both in agreement)."""
    files = function_files(directory)
    try:
        with conn.transaction():
            conn.execute("select pg_advisory_xact_lock(hashtext('arti-migrate'))")
            conn.execute("set local check_function_bodies = off")
            for path in files:
                _apply_file(conn, path)
    except ArtiError as exc:
        raise ArtiError(f"sql_functions not applied (rolled back): {exc}") from None
    return [path.relative_to(directory).as_posix() for path in files]


FUNCTIONS_MIGRATION_BANNER = """\
-- =============================================================================================
-- Migration: {name}
-- Generated by `arti db functions --write {name}`
-- from sql_functions/: the files whose definitions, grants or comments differed from the database
-- the earlier migrations build. sql_functions/ is where
-- these functions are read and edited; this file is what `arti db migrate` and `supabase db push`
-- apply. Bodies may refer to functions defined further down, so their checks wait until the end.
-- Files:
{files}
-- =============================================================================================

set local check_function_bodies = off;
"""


def next_version(migrations_dir: Path, version: str | None = None) -> str:
    """The version of a new migration: `version` (default: now, UTC, as the Supabase CLI names migrations), or
    one more than the latest migration in `migrations_dir` when that is not earlier."""
    latest = max((int(m.version) for m in discover_migrations(migrations_dir)), default=0)
    if version is None:
        import datetime as dt

        version = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S")
    return version if int(version) > latest else str(latest + 1)


def write_functions_migration(conn: psycopg.Connection[Any], functions_dir: Path, migrations_dir: Path,
                              name: str, *, version: str | None = None) -> Path | None:
    """Write a migration holding the sql_functions files that differ from `conn`'s database (which must be
    migrated to the latest version). Returns its path, or None when nothing differs."""
    if not re.fullmatch(r"[a-z0-9_]{1,60}", name):
        raise ArtiError(f"migration name {name!r}: use 1-60 lower-case letters, digits and underscores")
    pending = pending_migrations(conn, migrations_dir)
    if pending:
        raise ArtiError(f"{len(pending)} migration(s) not applied yet ({pending[0].path.name}, ...): run "
                        "`arti db migrate` first, so the new migration holds only what the files change")
    changed = function_drift(conn, functions_dir)
    if not changed:
        return None
    version = next_version(migrations_dir, version)
    listing = "\n".join(f"--   sql_functions/{relative}" for relative in changed)
    parts = [FUNCTIONS_MIGRATION_BANNER.format(name=name, files=listing)]
    for relative in changed:
        text = read_sql(functions_dir / relative).strip()
        parts.append(f"\n-- sql_functions/{relative}\n{text}\n")
    migrations_dir.mkdir(parents=True, exist_ok=True)
    path = migrations_dir / f"{version}_{name}.sql"
    path.write_text("".join(parts))
    return path


SEED_TRACKING_DDL = """
create schema if not exists supabase_migrations;
create table if not exists supabase_migrations.seed_files (path text not null primary key, hash text not null);
"""


def load_seed(conn: psycopg.Connection[Any], seed: Path, project_root: Path) -> bool:
    """Run a seed file as `supabase db push --include-seed` does: unless the same content (sha256) was already
    seeded, in one transaction, recorded in supabase_migrations.seed_files (path relative to the project, hex
    hash). Returns True when the seed ran."""
    import hashlib

    text = read_sql(seed)
    digest = hashlib.sha256(text.encode()).hexdigest()
    relative = seed.resolve().relative_to(project_root.resolve()).as_posix()
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('arti-seed'))")
        conn.execute(SEED_TRACKING_DDL)
        row = conn.execute("select hash from supabase_migrations.seed_files where path = %s", (relative,)).fetchone()
        if row is not None and _first(row) == digest:
            return False
        _run_statements(conn, seed, split_statements(text))
        conn.execute("insert into supabase_migrations.seed_files (path, hash) values (%s, %s) "
                     "on conflict (path) do update set hash = excluded.hash", (relative, digest))
    return True


def migrate(conn: psycopg.Connection[Any], migrations_dir: Path) -> MigrateReport:
    """Bootstrap Supabase compatibility where needed, then apply the pending migrations."""
    # Every migration file is named and readable before anything touches the database.
    for migration in discover_migrations(migrations_dir):
        read_sql(migration.path)
    apply_compat(conn)
    ensure_tracking(conn)
    return MigrateReport(applied=apply_migrations(conn, migrations_dir))
