"""Procrastinate's schema, installed into its own `procrastinate` schema (never `public`).

By default Procrastinate installs into the first schema of the search path, where PostgREST would
expose its tables and let any user call procrastinate_defer_jobs_v1. Here it lives in schema
`procrastinate` with no grant to anon/authenticated/service_role; every function is pinned to
`search_path = procrastinate, pg_catalog`, and the package's own migrations are tracked in
supabase_migrations.arti_procrastinate_migrations so upgrades apply exactly what is new.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import psycopg

SCHEMA = "procrastinate"


def _package_sql() -> Any:
    return resources.files("procrastinate") / "sql"


def migration_names() -> list[str]:
    directory = _package_sql() / "migrations"
    return sorted(p.name for p in directory.iterdir() if p.name.endswith(".sql"))


def install_procrastinate(conn: psycopg.Connection[Any]) -> list[str]:
    """Install or upgrade Procrastinate's schema. Returns what was applied."""
    applied: list[str] = []
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('arti-procrastinate'))")
        conn.execute(
            "create schema if not exists procrastinate;"
            "comment on schema procrastinate is 'Procrastinate job queue (not exposed through the API).';"
            "revoke all on schema procrastinate from public;"
            "create table if not exists supabase_migrations.arti_procrastinate_migrations ("
            " name text primary key, applied_at timestamptz not null default now());"
            "comment on table supabase_migrations.arti_procrastinate_migrations is "
            "'Procrastinate package migrations applied by arti db migrate.';"
        )
        exists = conn.execute("select to_regclass('procrastinate.procrastinate_jobs') is not null").fetchone()
        done = {row[0] if not isinstance(row, dict) else row["name"] for row in
                conn.execute("select name from supabase_migrations.arti_procrastinate_migrations")}
        conn.execute("set local search_path = procrastinate, pg_catalog")
        if not (exists and (exists[0] if not isinstance(exists, dict) else next(iter(exists.values())))):
            conn.execute((_package_sql() / "schema.sql").read_text().encode())
            applied.append("schema.sql")
            pending = migration_names()  # the full schema includes every migration so far
        else:
            pending = [name for name in migration_names() if name not in done]
            for name in pending:
                conn.execute((_package_sql() / "migrations" / name).read_text().encode())
                applied.append(name)
        for name in pending:
            conn.execute(
                "insert into supabase_migrations.arti_procrastinate_migrations (name) values (%s) "
                "on conflict do nothing", (name,))
        if applied:
            _harden(conn)
    return applied


def _harden(conn: psycopg.Connection[Any]) -> None:
    """Pin search_path on every function and close the schema to the API roles."""
    functions = conn.execute(
        "select p.oid::regprocedure::text from pg_proc as p where p.pronamespace = 'procrastinate'::regnamespace"
    ).fetchall()
    for row in functions:
        signature = row[0] if not isinstance(row, dict) else next(iter(row.values()))
        conn.execute(f"alter function {signature} set search_path = procrastinate, pg_catalog")
    conn.execute(
        "revoke all on all tables in schema procrastinate from public, anon, authenticated, service_role;"
        "revoke all on all sequences in schema procrastinate from public, anon, authenticated, service_role;"
        "revoke all on all functions in schema procrastinate from public, anon, authenticated, service_role;"
    )
