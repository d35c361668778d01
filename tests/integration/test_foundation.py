"""The foundation: compat auth functions, RLS as PostgREST applies it, and the exposed surface."""

from __future__ import annotations

import json

import psycopg
import pytest

from tests.harness import TestDB


def test_auth_functions_return_the_claims_set(db: TestDB) -> None:
    user = db.create_user("claims@example.test")
    with db.as_user(user):
        row = db.one("select auth.uid() as uid, auth.role() as role, auth.email() as email, "
                     "auth.jwt() ->> 'aud' as aud, current_user as pg_role")
    assert row == {"uid": user, "role": "authenticated", "email": "claims@example.test",
                   "aud": "authenticated", "pg_role": "authenticated"}


def test_auth_functions_read_legacy_per_claim_settings(db: TestDB) -> None:
    db.execute("select set_config('request.jwt.claim.sub', '00000000-0000-0000-0000-00000000abcd', true), "
               "set_config('request.jwt.claim.role', 'authenticated', true), "
               "set_config('request.jwt.claims', '', true)")
    row = db.one("select auth.uid()::text as uid, auth.role() as role")
    assert row == {"uid": "00000000-0000-0000-0000-00000000abcd", "role": "authenticated"}


def test_without_claims_the_auth_functions_are_null(db: TestDB) -> None:
    with db.as_anon():
        assert db.one("select auth.uid() as uid, auth.role() as role") == {"uid": None, "role": "anon"}


def _sample_table(db: TestDB) -> None:
    db.execute("create table public.sample_notes (id serial primary key, "
               "owner_id uuid not null default auth.uid(), body text)")
    db.execute("alter table public.sample_notes enable row level security")
    db.execute("create policy sample_notes_select on public.sample_notes for select to authenticated "
               "using (owner_id = (select auth.uid()))")
    db.execute("create policy sample_notes_insert on public.sample_notes for insert to authenticated "
               "with check (owner_id = (select auth.uid()))")


def test_rls_lets_a_member_read_their_row_and_hides_another_users(db: TestDB) -> None:
    _sample_table(db)
    alice, bob = db.create_user(), db.create_user()
    with db.as_user(alice):
        db.execute("insert into public.sample_notes (body) values ('alice note')")
    with db.as_user(bob):
        db.execute("insert into public.sample_notes (body) values ('bob note')")
        assert [r["body"] for r in db.execute("select body from public.sample_notes")] == ["bob note"]
    with db.as_user(alice):
        assert [r["body"] for r in db.execute("select body from public.sample_notes")] == ["alice note"]
    with db.as_anon():
        assert db.execute("select body from public.sample_notes") == []
    # The attack: alice writes a row claiming to be bob.
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.as_user(alice):
        db.execute("insert into public.sample_notes (owner_id, body) values (%s, 'forged')", (bob,))


def test_service_role_bypasses_rls(db: TestDB) -> None:
    _sample_table(db)
    alice = db.create_user()
    with db.as_user(alice):
        db.execute("insert into public.sample_notes (body) values ('x')")
    with db.as_service_role():
        assert db.value("select count(*) from public.sample_notes") == 1


def test_claims_do_not_leak_past_the_request(db: TestDB) -> None:
    alice = db.create_user()
    with db.as_user(alice):
        pass
    assert db.one("select current_user as u, auth.uid() as uid") == {"u": "postgres", "uid": None}


def test_public_tables_all_have_rls(db: TestDB) -> None:
    rows = db.execute("select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                      "where n.nspname = 'public' and c.relkind in ('r', 'p') and not c.relrowsecurity")
    assert rows == []


def test_no_extension_object_in_public(db: TestDB) -> None:
    rows = db.execute(
        "select e.extname, pg_describe_object(d.classid, d.objid, d.objsubid) as object "
        "from pg_depend d join pg_extension e on e.oid = d.refobjid "
        "where d.deptype = 'e' and d.refclassid = 'pg_extension'::regclass and ("
        "  (d.classid = 'pg_class'::regclass and (select relnamespace from pg_class where oid = d.objid) "
        "     = 'public'::regnamespace) or "
        "  (d.classid = 'pg_proc'::regclass and (select pronamespace from pg_proc where oid = d.objid) "
        "     = 'public'::regnamespace) or "
        "  (d.classid = 'pg_type'::regclass and (select typnamespace from pg_type where oid = d.objid) "
        "     = 'public'::regnamespace))"
    )
    assert rows == []
    installed = {r["extname"]: r["schema"] for r in db.execute(
        "select extname, extnamespace::regnamespace::text as schema from pg_extension")}
    assert installed["vector"] == "extensions"
    assert installed["pgtap"] == "extensions"
    assert installed["pgcrypto"] == "extensions"
    # As on Supabase (Security Advisor lint 0014): pg_cron in pg_catalog, pg_stat_statements in extensions.
    assert installed["pg_cron"] == "pg_catalog"
    assert installed["pg_stat_statements"] == "extensions"
    assert [name for name, schema in installed.items() if schema == "public"] == []
    assert "pg_graphql" not in installed


@pytest.mark.parametrize("schema", ["private", "extensions", "supabase_migrations", "cron", "auth", "procrastinate"])
def test_no_relation_outside_public_is_granted_to_api_roles(db: TestDB, schema: str) -> None:
    rows = db.execute(
        "select c.relname, r.rolname, p.privilege_type "
        "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "cross join lateral aclexplode(coalesce(c.relacl, acldefault('r', c.relowner))) p "
        "join pg_roles r on r.oid = p.grantee "
        "where n.nspname = %s and r.rolname in ('anon', 'authenticated') and c.relkind in ('r','v','m','S','p')",
        (schema,),
    )
    assert rows == []


def test_no_public_sequence_is_usable_by_anon(db: TestDB) -> None:
    rows = db.execute("select c.relname from pg_class c where c.relkind = 'S' "
                      "and c.relnamespace = 'public'::regnamespace and (has_sequence_privilege('anon', c.oid, 'usage') "
                      "or has_sequence_privilege('anon', c.oid, 'update'))")
    assert rows == []


def test_schema_usage_for_api_roles_is_limited(db: TestDB) -> None:
    rows = db.execute(
        "select n.nspname, r.rolname from pg_namespace n "
        "cross join (select oid, rolname from pg_roles where rolname in ('anon', 'authenticated') "
        "            union all select 0, 'public') r "
        "where has_schema_privilege(case when r.rolname = 'public' then 'anon' else r.rolname end, n.oid, 'usage') "
        "and n.nspname in ('private', 'supabase_migrations', 'cron', 'procrastinate') order by 1, 2"
    )
    # authenticated may enter private to run the security definer helpers RLS policies call.
    assert [(r["nspname"], r["rolname"]) for r in rows] == [("private", "authenticated")]


def test_private_functions_callable_by_api_roles_are_hardened(db: TestDB) -> None:
    rows = db.execute(
        "select p.oid::regprocedure::text as fn, p.prosecdef, p.proconfig "
        "from pg_proc p where p.pronamespace = 'private'::regnamespace "
        "and (has_function_privilege('anon', p.oid, 'execute') "
        "     or has_function_privilege('authenticated', p.oid, 'execute'))"
    )
    for row in rows:
        assert row["prosecdef"], f"{row['fn']} is callable by the API but not security definer"
        assert 'search_path=""' in (row["proconfig"] or []), f"{row['fn']} lacks set search_path = ''"
    anon_rows = db.execute(
        "select p.oid::regprocedure::text as fn from pg_proc p "
        "where p.pronamespace = 'private'::regnamespace and has_function_privilege('anon', p.oid, 'execute')"
    )
    assert anon_rows == []


def test_database_settings_mirror_supabase(db: TestDB) -> None:
    settings = db.one("select current_setting('search_path') as sp, current_setting('pgrst.db_schemas') as s, "
                      "current_setting('wal_level') as wal, current_setting('cron.database_name') as cron")
    assert settings == {"sp": '"$user", public, extensions', "s": "public, graphql_public",
                        "wal": "logical", "cron": "postgres"}
    assert db.value("select count(*) from pg_publication where pubname = 'supabase_realtime'") == 1
    roles = {r["rolname"]: r for r in db.execute(
        "select rolname, rolcanlogin, rolbypassrls, rolinherit from pg_roles "
        "where rolname in ('anon', 'authenticated', 'service_role', 'authenticator')")}
    assert roles["service_role"]["rolbypassrls"] and not roles["service_role"]["rolcanlogin"]
    assert not roles["anon"]["rolcanlogin"] and not roles["authenticated"]["rolcanlogin"]
    assert roles["authenticator"]["rolcanlogin"] and not roles["authenticator"]["rolinherit"]
    members = db.execute("select r.rolname from pg_auth_members m join pg_roles r on r.oid = m.roleid "
                         "join pg_roles u on u.oid = m.member where u.rolname = 'authenticator' order by 1")
    assert [m["rolname"] for m in members] == ["anon", "authenticated", "service_role"]


def test_pg_cron_schedules_in_this_database(db: TestDB) -> None:
    job = db.value("select cron.schedule('arti-test-noop', '0 3 * * *', 'select 1')")
    row = db.one("select schedule, database from cron.job where jobid = %s", (job,))
    assert row == {"schedule": "0 3 * * *", "database": "postgres"}


def test_vector_is_pgvector_08_with_iterative_scans(db: TestDB) -> None:
    version = db.value("select extversion from pg_extension where extname = 'vector'")
    assert tuple(int(x) for x in version.split(".")[:2]) >= (0, 8)
    db.execute("set local hnsw.iterative_scan = relaxed_order")
    assert db.value("select '[1,2,3]'::vector <-> '[1,2,4]'::vector") == pytest.approx(1.0)
    assert json.loads(json.dumps(db.value("select current_setting('hnsw.iterative_scan')"))) == "relaxed_order"


@pytest.mark.parametrize("schema", ["public", "private"])
def test_every_table_column_and_function_has_a_comment(db: TestDB, schema: str) -> None:
    """Studio shows comments: nothing we define goes without one."""
    tables = db.execute(
        "select c.relname from pg_class c where c.relnamespace = %s::regnamespace and c.relkind in ('r','p','v','m') "
        "and obj_description(c.oid, 'pg_class') is null "
        "and not exists (select 1 from pg_depend d where d.objid = c.oid and d.deptype = 'e')", (schema,))
    assert tables == []
    columns = db.execute(
        "select c.relname || '.' || a.attname as col from pg_attribute a join pg_class c on c.oid = a.attrelid "
        "where c.relnamespace = %s::regnamespace and c.relkind in ('r','p','v','m') and a.attnum > 0 "
        "and not a.attisdropped and col_description(c.oid, a.attnum) is null "
        "and not exists (select 1 from pg_depend d where d.objid = c.oid and d.deptype = 'e')", (schema,))
    assert columns == []
    functions = db.execute(
        "select p.oid::regprocedure::text as fn from pg_proc p where p.pronamespace = %s::regnamespace "
        "and obj_description(p.oid, 'pg_proc') is null "
        "and not exists (select 1 from pg_depend d where d.objid = p.oid and d.deptype = 'e')", (schema,))
    assert functions == []


def test_realtime_publishes_live_tables(db: TestDB) -> None:
    published = {r["tablename"] for r in db.execute(
        "select tablename from pg_publication_tables where pubname = 'supabase_realtime' and schemaname = 'public'")}
    assert {"sync_runs", "notifications", "insights"} <= published
    # Private data never goes out through Realtime.
    assert db.value("select count(*) from pg_publication_tables where pubname = 'supabase_realtime' "
                    "and schemaname <> 'public'") == 0


POLICY_HELPERS = ("is_platform_admin", "my_org_ids", "my_role", "has_permission", "org_ids_with_permission",
                  "shares_org_with")


def test_policy_helpers_cache_their_plans(db: TestDB) -> None:
    """Security-definer SQL functions are never inlined and re-plan in every statement; PL/pgSQL caches."""
    rows = db.execute(
        "select p.proname, l.lanname from pg_proc p join pg_language l on l.oid = p.prolang "
        "where p.pronamespace = 'private'::regnamespace and p.proname = any(%s)",
        (list(POLICY_HELPERS),),
    )
    assert {r["proname"]: r["lanname"] for r in rows} == {name: "plpgsql" for name in POLICY_HELPERS}
