"""The real Supabase toolchain (pinned in tools/: CLI 2.117.0, postgres-meta 0.99.0) agrees with the project.

Two databases are built, each in a cluster of its own (pg_cron can only be created in its cluster's
cron.database_name, `postgres`, as on Supabase, so two Supabase-like databases cannot share a cluster):

* arti: `arti.migrate.migrate()` plus supabase/seed.sql, what `arti db migrate` and `--demo` do;
* supabase-cli: only the compatibility bootstrap (`apply_compat`, standing in for what a Supabase project
  has before its migrations), then `supabase db push --db-url … --include-seed`, the ordinary Supabase way.

Then: their catalogs are equal; `migration list` agrees with supabase/migrations; `db lint` is clean; `db
advisors` reports no WARN; the pgTAP files pass under pg_prove exactly as `supabase test db` runs them and
leave nothing behind; the committed TypeScript types are what `supabase gen types typescript` generates; and
`supabase db reset --db-url` rebuilds the arti database into the same catalog.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from arti.catalog import Snapshot, diff, snapshot
from arti.compat import apply_compat
from arti.db import connect
from arti.errors import ArtiError
from arti.localdb import LocalCluster
from arti.migrate import discover_migrations, load_seed, migrate
from arti.settings import DEFAULT_PORTS, PROJECT_ROOT, embedded_url
from arti.toolchain import (
    POSTGRES_META_DIR,
    SUPABASE_BIN,
    SUPABASE_DIR,
    TYPES_COMMAND,
    TYPES_FILE,
    cli_db_url,
    generate_types,
    require_tools,
    scratch_cluster,
    supabase,
)

pytestmark = pytest.mark.integration

MIGRATIONS_DIR = SUPABASE_DIR / "migrations"
SEED = SUPABASE_DIR / "seed.sql"
TESTS_DIR = SUPABASE_DIR / "tests"
CLI_VERSION = "2.117.0"
POSTGRES_META_VERSION = "0.99.0"
BUILDS = ("arti", "supabase-cli")
HOW = {"arti": "arti migrate + seed", "supabase-cli": "supabase db push --include-seed"}
TEST_DB_PORT = int(os.environ.get("ARTI_TEST_DB_PORT", DEFAULT_PORTS["tests_database"]))


@dataclass
class Built:
    """One database built one way: where it is, what went wrong building it, and its catalog afterwards."""

    kind: str
    cluster: LocalCluster
    problem: str | None
    catalog: Snapshot

    @property
    def url(self) -> str:
        return embedded_url(self.cluster.port)


def _output(result: subprocess.CompletedProcess[str]) -> str:
    return f"exit {result.returncode}\n--- stdout\n{result.stdout.strip()}\n--- stderr\n{result.stderr.strip()}"


def _build_arti(url: str) -> str | None:
    try:
        with connect(url, autocommit=True) as conn:
            migrate(conn, MIGRATIONS_DIR)
            load_seed(conn, SEED, PROJECT_ROOT)
    except (ArtiError, psycopg.Error) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def _build_with_cli(url: str) -> str | None:
    with connect(url, autocommit=True) as conn:
        apply_compat(conn)
    result = supabase("db", "push", "--db-url", cli_db_url(url), "--include-seed")
    return None if result.returncode == 0 else _output(result)


@pytest.fixture(scope="module")
def databases() -> Iterator[dict[str, Built]]:
    try:
        require_tools()
    except ArtiError as exc:
        pytest.fail(str(exc))
    builders = {"arti": _build_arti, "supabase-cli": _build_with_cli}
    with ExitStack() as stack:
        built: dict[str, Built] = {}
        for kind in BUILDS:
            cluster = stack.enter_context(scratch_cluster(f"toolchain-{TEST_DB_PORT}-{kind}"))
            cluster.recreate_database()
            url = embedded_url(cluster.port)
            problem = builders[kind](url)
            with connect(url) as conn:
                built[kind] = Built(kind, cluster, problem, snapshot(conn))
        yield built


def test_the_pinned_cli_runs_the_pinned_postgres_meta_and_compose_uses_it_too() -> None:
    """tools/ pins CLI 2.117.0 and postgres-meta 0.99.0; the CLI binary's own postgres-meta image is that
    version (so our `gen types` runs what the CLI would), and docker-compose's meta service runs it too."""
    require_tools()
    version = supabase("--version")
    assert version.stdout.strip() == CLI_VERSION, _output(version)
    meta = json.loads((POSTGRES_META_DIR / "package.json").read_text())["version"]
    assert meta == POSTGRES_META_VERSION
    binaries = sorted((SUPABASE_BIN.resolve().parent.parent.parent / "@supabase").glob("cli-*/bin/*"))
    embedded = {m.decode() for b in binaries for m in re.findall(rb"postgres-meta:v(\d+\.\d+\.\d+)", b.read_bytes())}
    assert embedded == {POSTGRES_META_VERSION}, f"the CLI binaries name postgres-meta {embedded}"
    compose = (PROJECT_ROOT / "docker-compose.yml").read_text()
    assert re.findall(r"image: supabase/postgres-meta:v([\d.]+)", compose) == [POSTGRES_META_VERSION]


@pytest.mark.parametrize("kind", BUILDS)
def test_the_database_builds(databases: dict[str, Built], kind: str) -> None:
    """arti's migrate + seed, and `supabase db push --include-seed` onto the compatibility bootstrap, succeed."""
    problem = databases[kind].problem
    assert problem is None, f"building the database with {HOW[kind]} failed:\n{problem}"


def test_db_push_builds_the_catalog_arti_builds(databases: dict[str, Built]) -> None:
    """Functions (definition, owner, ACL, config, security definer, comment), policies, grants, triggers,
    default privileges, tables, columns, constraints, indexes, views, types, extensions and their schemas,
    roles, publications, cron jobs and the migration history: all equal."""
    lines = diff(databases["arti"].catalog, databases["supabase-cli"].catalog, "arti", "db push")
    assert not lines, f"{len(lines)} differences between the two builds:\n" + "\n".join(lines)


def test_the_catalog_snapshot_sees_each_kind_of_change(databases: dict[str, Built]) -> None:
    """The comparison above is not vacuous: a changed grant, default privilege, function attribute, policy,
    trigger, column and cron job each show up in the diff (changes made in a transaction rolled back)."""
    with connect(databases["arti"].url) as conn:
        before = snapshot(conn)
        conn.execute("""
            create function public.snapshot_probe() returns trigger language plpgsql as $$ begin return new; end $$;
            alter function public.snapshot_probe() security definer;
            grant execute on function public.snapshot_probe() to anon;
            comment on function public.snapshot_probe() is 'probe';
            alter default privileges in schema private grant select on tables to anon;
            grant select (slug) on public.organizations to anon;
            create policy snapshot_probe on public.organizations for select to anon using (false);
            create trigger snapshot_probe before update on public.organizations
                for each row execute function public.snapshot_probe();
            alter table public.organizations add column snapshot_probe int;
            select cron.schedule('snapshot-probe', '0 3 * * *', 'select 1');
        """)
        after = snapshot(conn)
        conn.rollback()
    text = "\n".join(diff(before, after, "before", "after"))
    for expected in ("functions: public.snapshot_probe(): only in after",
                     "default_privileges: postgres in private on tables: only in after",
                     "columns: public.organizations.slug: acl",
                     "policies: public.organizations.snapshot_probe: only in after",
                     "triggers: public.organizations.snapshot_probe: only in after",
                     "columns: public.organizations.snapshot_probe: only in after",
                     "cron_jobs: snapshot-probe: only in after"):
        assert expected in text, f"{expected!r} not in the diff:\n{text}"


@pytest.mark.parametrize("kind", BUILDS)
def test_migration_list_agrees_with_the_files(databases: dict[str, Built], kind: str) -> None:
    """`supabase migration list --db-url` shows every local migration applied remotely, and nothing else."""
    _assert_migration_list_agrees(databases[kind].url)


def _assert_migration_list_agrees(url: str) -> None:
    result = supabase("migration", "list", "--db-url", cli_db_url(url), "--output-format", "json")
    assert result.returncode == 0, _output(result)
    rows = json.loads(result.stdout)["migrations"]
    files = [m.version for m in discover_migrations(MIGRATIONS_DIR)]
    assert [row["local"] for row in rows if row["local"]] == files, _output(result)
    mismatched = [row for row in rows if row["local"] != row["remote"]]
    assert not mismatched, "local and remote migration versions differ:\n" + "\n".join(map(str, mismatched))


@pytest.mark.parametrize("kind", BUILDS)
def test_db_lint_reports_no_issue(databases: dict[str, Built], kind: str) -> None:
    """`supabase db lint --schema public,private --level warning` (plpgsql_check over every function) reports
    neither an error nor a warning: a warning such as an untyped literal returned as bigint[] (42804) is a
    defect too."""
    result = supabase("db", "lint", "--db-url", cli_db_url(databases[kind].url), "--schema", "public,private",
                      "--level", "warning", "--fail-on", "error")
    assert result.returncode == 0, f"db lint on the {HOW[kind]} database:\n{_output(result)}"
    # It got as far as checking both schemas (plpgsql_check was enabled before the first of these lines) ...
    assert "Linting schema: private" in result.stderr, _output(result)
    # ... and its verdict is "nothing": the CLI prints this line only when no function has any issue at all;
    # otherwise it prints the issues at or above --level as JSON on stdout.
    issues = json.loads(result.stdout) if result.stdout.strip() else []
    assert not issues, f"db lint on the {HOW[kind]} database:\n" + "\n".join(
        f"{i['level']} {f['function']} line {i.get('statement', {}).get('lineNumber')}: {i['message']} "
        f"({i.get('detail', '')})" for f in issues for i in f["issues"])
    assert "No schema errors found" in result.stderr, _output(result)


@pytest.mark.parametrize("kind", BUILDS)
def test_db_advisors_report_no_warning(databases: dict[str, Built], kind: str) -> None:
    """`supabase db advisors --type all --level warn` (the CLI's bundled security and performance lints)
    lists nothing."""
    result = supabase("db", "advisors", "--db-url", cli_db_url(databases[kind].url), "--type", "all",
                      "--level", "warn", "--fail-on", "warn", "--output-format", "json")
    assert result.returncode == 0, f"db advisors on the {HOW[kind]} database:\n{_output(result)}"
    issues = json.loads(result.stdout)["results"]
    assert not issues, f"db advisors on the {HOW[kind]} database:\n" + "\n".join(
        f"{i['level']} {i['name']}: {i['detail']}" for i in issues)


@pytest.mark.parametrize("kind", BUILDS)
def test_pgtap_files_pass_under_pg_prove_and_leave_nothing_behind(databases: dict[str, Built], kind: str) -> None:
    """What `supabase test db` does: pgTAP created in `extensions` if absent, `pg_prove --ext .pg --ext .sql -r
    supabase/tests` from supabase/, pgTAP dropped again if it was created. Every file passes, and the catalog
    and auth.users are afterwards exactly as before."""
    url = databases[kind].url
    with connect(url, autocommit=True) as conn:
        before = snapshot(conn)
        users_before = conn.execute("select count(*) as n from auth.users").fetchone()
        had_pgtap = conn.execute("select count(*) as n from pg_extension where extname = 'pgtap'").fetchone()["n"]
        conn.execute("create extension if not exists pgtap with schema extensions")
    try:
        parts = psycopg.conninfo.conninfo_to_dict(url)
        env = {**os.environ, "PGHOST": str(parts["host"]), "PGPORT": str(parts["port"]),
               "PGUSER": str(parts["user"]), "PGPASSWORD": str(parts["password"]), "PGDATABASE": str(parts["dbname"])}
        result = subprocess.run(["pg_prove", "--ext", ".pg", "--ext", ".sql", "-r", str(TESTS_DIR)],
                                cwd=SUPABASE_DIR, env=env, capture_output=True, text=True, timeout=600)
    finally:
        if not had_pgtap:
            with connect(url, autocommit=True) as conn:
                conn.execute("drop extension if exists pgtap")
    assert result.returncode == 0 and "Result: PASS" in result.stdout, \
        f"pg_prove on the {HOW[kind]} database:\n{_output(result)}"
    with connect(url) as conn:
        after = snapshot(conn)
        users_after = conn.execute("select count(*) as n from auth.users").fetchone()
    left = diff(before, after, "before", "after pg_prove")
    assert not left, "the pgTAP run left this behind:\n" + "\n".join(left)
    assert users_after == users_before, f"auth.users: {users_before} rows before, {users_after} after"


def test_committed_types_are_what_gen_types_generates(databases: dict[str, Built]) -> None:
    """supabase/types/database.ts is what `supabase gen types typescript` (postgres-meta 0.99.0, schemas from
    config.toml [api]) prints for the migrated database."""
    fresh = generate_types(databases["arti"].url)
    with tempfile.NamedTemporaryFile("w", suffix=".ts", prefix="database-", delete=False) as tmp:
        tmp.write(fresh)
    try:
        committed = TYPES_FILE.read_text() if TYPES_FILE.exists() else ""
        if committed != fresh:
            changed = subprocess.run(["diff", "-u", str(TYPES_FILE), tmp.name], capture_output=True, text=True)
            lines = changed.stdout.splitlines()
            pytest.fail(f"{TYPES_FILE.relative_to(PROJECT_ROOT)} is stale: regenerate it with `{TYPES_COMMAND}` "
                        f"and commit it. Differences ({len(lines)} diff lines):\n" + "\n".join(lines[:60]))
    finally:
        Path(tmp.name).unlink()


def test_db_reset_rebuilds_the_arti_database(databases: dict[str, Built]) -> None:
    """Last, since it rebuilds the arti database: `supabase db reset --db-url` succeeds on it, the result has the
    catalog arti built, and `migration list` still agrees."""
    arti = databases["arti"]
    result = supabase("db", "reset", "--db-url", cli_db_url(arti.url))
    assert result.returncode == 0, f"db reset on the arti database:\n{_output(result)}"
    with connect(arti.url) as conn:
        after = snapshot(conn)
    lines = diff(arti.catalog, after, "arti", "after db reset")
    assert not lines, f"{len(lines)} differences after db reset:\n" + "\n".join(lines)
    _assert_migration_list_agrees(arti.url)
