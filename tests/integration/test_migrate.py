"""The migration runner against scratch databases of the test cluster."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from arti.errors import ArtiError
from arti.localdb import LocalCluster
from arti.migrate import migrate, pending_migrations
from arti.settings import PROJECT_ROOT, embedded_url


@pytest.fixture
def scratch(test_cluster: LocalCluster) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection to a new, empty database that is dropped afterwards."""
    name = f"arti_scratch_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(embedded_url(test_cluster.port, "template1"), autocommit=True) as admin:
        admin.execute(f'create database "{name}"')
    conn = psycopg.connect(embedded_url(test_cluster.port, name), autocommit=True, row_factory=dict_row)
    try:
        yield conn
    finally:
        conn.close()
        with psycopg.connect(embedded_url(test_cluster.port, "template1"), autocommit=True) as admin:
            admin.execute(f'drop database if exists "{name}" with (force)')


ANSWER_42 = "create or replace function public.answer() returns int language sql as $$ select 42 $$;"


def _write(directory: Path, name: str, body: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    return path


def test_migrations_apply_in_version_order_and_are_recorded_like_the_cli(
    scratch: psycopg.Connection[Any], tmp_path: Path
) -> None:
    mig = tmp_path / "migrations"
    _write(mig, "20260102000000_second.sql", "alter table public.things add column label text;")
    _write(mig, "20260101000000_first.sql",
           "create table public.things (id int);\ncomment on table public.things is 'x';")
    report = migrate(scratch, mig, tmp_path / "none")
    assert report.applied == ["20260101000000_first.sql", "20260102000000_second.sql"]
    rows = scratch.execute("select version, name, statements from supabase_migrations.schema_migrations "
                           "order by version").fetchall()
    assert rows == [
        {"version": "20260101000000", "name": "first",
         "statements": ["create table public.things (id int)", "comment on table public.things is 'x'"]},
        {"version": "20260102000000", "name": "second",
         "statements": ["alter table public.things add column label text"]},
    ]


def test_second_migrate_applies_nothing(scratch: psycopg.Connection[Any], tmp_path: Path) -> None:
    mig, fns = tmp_path / "migrations", tmp_path / "functions"
    _write(mig, "20260101000000_t.sql", "create table public.t (id int);")
    _write(fns, "answer.sql", ANSWER_42)
    first = migrate(scratch, mig, fns)
    assert first.applied == ["20260101000000_t.sql"] and first.functions == ["answer.sql"]
    second = migrate(scratch, mig, fns)
    assert second.applied == [] and second.functions == []
    assert pending_migrations(scratch, mig) == []


def test_changed_sql_function_is_reapplied_and_unchanged_is_not(
    scratch: psycopg.Connection[Any], tmp_path: Path
) -> None:
    mig, fns = tmp_path / "migrations", tmp_path / "functions"
    mig.mkdir()
    _write(fns, "a/answer.sql", ANSWER_42)
    _write(fns, "b/other.sql", "create or replace function public.other() returns int language sql as $$ select 1 $$;")
    migrate(scratch, mig, fns)
    _write(fns, "a/answer.sql", ANSWER_42.replace("42", "43"))
    report = migrate(scratch, mig, fns)
    assert report.functions == ["a/answer.sql"]
    assert scratch.execute("select public.answer() as a").fetchone() == {"a": 43}


def test_failing_migration_is_rolled_back_with_file_and_line(
    scratch: psycopg.Connection[Any], tmp_path: Path
) -> None:
    mig = tmp_path / "migrations"
    _write(mig, "20260101000000_ok.sql", "create table public.ok (id int);")
    bad = _write(mig, "20260102000000_bad.sql",
                 "-- banner\ncreate table public.half (id int);\n\ninsert into public.half\n"
                 "values (1), ('not a number');\n")
    with pytest.raises(ArtiError) as caught:
        migrate(scratch, mig, tmp_path / "none")
    message = str(caught.value)
    assert f"{bad}:5:" in message
    assert "invalid input syntax for type integer" in message
    assert "rolled back" in message
    # The good one stays applied; nothing of the bad one remains.
    assert scratch.execute("select to_regclass('public.half') as t").fetchone() == {"t": None}
    assert scratch.execute("select to_regclass('public.ok') as t").fetchone() == {"t": "ok"}
    versions = [r["version"] for r in scratch.execute("select version from supabase_migrations.schema_migrations")]
    assert versions == ["20260101000000"]


def test_failing_sql_function_rolls_back_every_function_of_the_run(
    scratch: psycopg.Connection[Any], tmp_path: Path
) -> None:
    mig, fns = tmp_path / "migrations", tmp_path / "functions"
    mig.mkdir()
    _write(fns, "a.sql", "create or replace function public.fine() returns int language sql as $$ select 1 $$;")
    bad = _write(fns, "b.sql", "create or replace function public.broken() returns int language sql as select;")
    with pytest.raises(ArtiError, match=rf"{bad}:1: syntax error"):
        migrate(scratch, mig, fns)
    assert scratch.execute("select to_regprocedure('public.fine()') as f").fetchone() == {"f": None}


def test_unreadable_migration_file_is_a_clear_error(scratch: psycopg.Connection[Any], tmp_path: Path) -> None:
    mig = tmp_path / "migrations"
    bad = mig / "20260101000000_binary.sql"
    mig.mkdir()
    bad.write_bytes(b"\xff\xfe create table nope (id int);")
    with pytest.raises(ArtiError, match=rf"cannot read {bad}: .*fix the file's permissions or encoding"):
        migrate(scratch, mig, tmp_path / "none")


def test_misnamed_migration_file_is_a_clear_error(scratch: psycopg.Connection[Any], tmp_path: Path) -> None:
    mig = tmp_path / "migrations"
    _write(mig, "add_table.sql", "select 1;")
    with pytest.raises(ArtiError, match=r"not named <version>_<name>\.sql"):
        migrate(scratch, mig, tmp_path / "none")


def test_project_migrations_outside_the_cron_database_fail_with_a_hint(scratch: psycopg.Connection[Any]) -> None:
    """pg_cron lives in one database per cluster (as on Supabase: postgres); elsewhere we say so."""
    with pytest.raises(ArtiError, match=r"_foundation\.sql:\d+: can only create extension in database postgres.*hint"):
        migrate(scratch, PROJECT_ROOT / "supabase" / "migrations", PROJECT_ROOT / "sql_functions")
