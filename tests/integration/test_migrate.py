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
from arti.migrate import (
    apply_function_files,
    function_drift,
    migrate,
    pending_migrations,
    write_functions_migration,
)
from arti.queue_schema import pending_queue_migrations, queue_migration_sql
from arti.settings import PROJECT_ROOT, embedded_url
from tests.harness import SESSION


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
    report = migrate(scratch, mig)
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
    mig = tmp_path / "migrations"
    _write(mig, "20260101000000_t.sql", "create table public.t (id int);")
    first = migrate(scratch, mig)
    assert first.applied == ["20260101000000_t.sql"]
    assert migrate(scratch, mig).applied == []
    assert pending_migrations(scratch, mig) == []


def test_a_changed_function_file_becomes_a_migration_of_that_file_only(
    scratch: psycopg.Connection[Any], tmp_path: Path
) -> None:
    """sql_functions/ is not applied by migrate: the drift is found, written as a migration, then applied."""
    mig, fns = tmp_path / "migrations", tmp_path / "functions"
    _write(fns, "a/answer.sql", ANSWER_42)
    _write(fns, "b/other.sql", "create or replace function public.other() returns int language sql as $$ select 1 $$;")
    migrate(scratch, mig)
    assert scratch.execute("select to_regprocedure('public.answer()') as f").fetchone() == {"f": None}
    assert function_drift(scratch, fns) == ["a/answer.sql", "b/other.sql"]
    assert scratch.execute("select to_regprocedure('public.answer()') as f").fetchone() == {"f": None}, \
        "the drift check leaves the database as it was"

    first = write_functions_migration(scratch, fns, mig, "functions", version="20260101000000")
    assert first is not None and first.name == "20260101000000_functions.sql"
    assert migrate(scratch, mig).applied == [first.name]
    assert function_drift(scratch, fns) == []
    assert write_functions_migration(scratch, fns, mig, "nothing") is None

    _write(fns, "a/answer.sql", ANSWER_42.replace("42", "43"))
    assert function_drift(scratch, fns) == ["a/answer.sql"]
    second = write_functions_migration(scratch, fns, mig, "answer_43", version="20260101000000")
    assert second is not None and second.name == "20260101000001_answer_43.sql", "always after the latest"
    text = second.read_text()
    assert "sql_functions/a/answer.sql" in text and "other()" not in text
    migrate(scratch, mig)
    assert scratch.execute("select public.answer() as a").fetchone() == {"a": 43}
    assert function_drift(scratch, fns) == []


def test_a_grant_or_comment_change_is_drift_too(scratch: psycopg.Connection[Any], tmp_path: Path) -> None:
    mig, fns = tmp_path / "migrations", tmp_path / "functions"
    _write(fns, "answer.sql", ANSWER_42)
    migrate(scratch, mig)
    write_functions_migration(scratch, fns, mig, "functions")
    migrate(scratch, mig)
    _write(fns, "answer.sql", ANSWER_42 + "\nrevoke all on function public.answer() from public;")
    assert function_drift(scratch, fns) == ["answer.sql"]
    _write(fns, "answer.sql", ANSWER_42 + "\ncomment on function public.answer() is 'the answer';")
    assert function_drift(scratch, fns) == ["answer.sql"]


def test_writing_a_functions_migration_needs_a_migrated_database(
    scratch: psycopg.Connection[Any], tmp_path: Path
) -> None:
    mig, fns = tmp_path / "migrations", tmp_path / "functions"
    _write(fns, "answer.sql", ANSWER_42)
    _write(mig, "20260101000000_t.sql", "create table public.t (id int);")
    with pytest.raises(ArtiError, match=r"not applied yet .*run `arti db migrate` first"):
        write_functions_migration(scratch, fns, mig, "functions")
    with pytest.raises(ArtiError, match="lower-case letters"):
        write_functions_migration(scratch, fns, mig, "Bad Name")


def test_sql_functions_agree_with_the_migrations(database_url: str) -> None:
    """The session database was built from supabase/migrations alone; applying sql_functions/ on top changed
    nothing. A function edited without its migration fails here."""
    assert SESSION.url == database_url
    assert SESSION.drift == [], (
        f"sql_functions files differ from what the migrations build: {SESSION.drift}; run "
        "`arti db migrate && arti db functions --write <name>` and commit the migration")


def test_the_migrations_cover_the_installed_procrastinate(database_url: str) -> None:
    assert SESSION.pending_queue_migrations == [], (
        f"procrastinate was upgraded: {SESSION.pending_queue_migrations} have no migration; run "
        "`arti db queue-migration <name>`")


def test_the_queue_migration_installs_a_working_queue_on_an_empty_database(
    scratch: psycopg.Connection[Any], tmp_path: Path
) -> None:
    mig = tmp_path / "migrations"
    _write(mig, "20260101000000_queue.sql", queue_migration_sql("queue"))
    migrate(scratch, mig)
    assert pending_queue_migrations(scratch) == []
    row = scratch.execute("select procrastinate.procrastinate_defer_jobs_v1(array[row('q', 't', 0, null, null, "
                          "'{}', null)::procrastinate.procrastinate_job_to_defer_v1]) as ids").fetchone()
    assert row is not None and len(row["ids"]) == 1
    functions = scratch.execute(
        "select count(*) filter (where not coalesce(p.proconfig, '{}') @> "
        "array['search_path=procrastinate, pg_catalog']) as unpinned, count(*) as total "
        "from pg_proc as p where p.pronamespace = 'procrastinate'::regnamespace").fetchone()
    assert functions is not None and functions["total"] > 10 and functions["unpinned"] == 0
    # Applied again over an installed queue (as on a database an older arti installed it in): a no-op.
    _write(mig, "20260102000000_again.sql", queue_migration_sql("again"))
    assert migrate(scratch, mig).applied == ["20260102000000_again.sql"]


def test_failing_migration_is_rolled_back_with_file_and_line(
    scratch: psycopg.Connection[Any], tmp_path: Path
) -> None:
    mig = tmp_path / "migrations"
    _write(mig, "20260101000000_ok.sql", "create table public.ok (id int);")
    bad = _write(mig, "20260102000000_bad.sql",
                 "-- banner\ncreate table public.half (id int);\n\ninsert into public.half\n"
                 "values (1), ('not a number');\n")
    with pytest.raises(ArtiError) as caught:
        migrate(scratch, mig)
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
    fns = tmp_path / "functions"
    _write(fns, "a.sql", "create or replace function public.fine() returns int language sql as $$ select 1 $$;")
    bad = _write(fns, "b.sql", "create or replace function public.broken() returns int language sql as select;")
    with pytest.raises(ArtiError, match=rf"{bad}:1: syntax error"):
        apply_function_files(scratch, fns)
    assert scratch.execute("select to_regprocedure('public.fine()') as f").fetchone() == {"f": None}
    with pytest.raises(ArtiError, match=rf"{bad}:1: syntax error"):
        function_drift(scratch, fns)


def test_unreadable_migration_file_is_a_clear_error(scratch: psycopg.Connection[Any], tmp_path: Path) -> None:
    mig = tmp_path / "migrations"
    bad = mig / "20260101000000_binary.sql"
    mig.mkdir()
    bad.write_bytes(b"\xff\xfe create table nope (id int);")
    with pytest.raises(ArtiError, match=rf"cannot read {bad}: .*fix the file's permissions or encoding"):
        migrate(scratch, mig)


def test_misnamed_migration_file_is_a_clear_error(scratch: psycopg.Connection[Any], tmp_path: Path) -> None:
    mig = tmp_path / "migrations"
    _write(mig, "add_table.sql", "select 1;")
    with pytest.raises(ArtiError, match=r"not named <version>_<name>\.sql"):
        migrate(scratch, mig)


def test_project_migrations_outside_the_cron_database_fail_with_a_hint(scratch: psycopg.Connection[Any]) -> None:
    """pg_cron lives in one database per cluster (as on Supabase: postgres); elsewhere we say so."""
    with pytest.raises(ArtiError, match=r"_foundation\.sql:\d+: can only create extension in database postgres.*hint"):
        migrate(scratch, PROJECT_ROOT / "supabase" / "migrations")
