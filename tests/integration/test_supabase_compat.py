"""The compatibility bootstrap mirrors Supabase where the project depends on it (issue 15, item 4-5).

Each fact below is a documented fact of a Supabase database: GoTrue's auth.users and auth.identities, who
owns the schemas `supabase db reset` keeps, the API roles' statement timeouts, where extensions live, what is
preloaded. The bootstrap's non-idempotent part (Supabase's default privileges on public) runs once.
"""

from __future__ import annotations

from typing import Any

import psycopg

from arti.compat import apply_compat
from arti.settings import PROJECT_ROOT
from arti.users import create_user
from tests.harness import TestDB

# GoTrue's auth.users, in column order: (name, type, default, not null). From supabase/auth's migrations, as
# `\d auth.users` shows it on a Supabase project.
GOTRUE_USERS = [
    ("instance_id", "uuid", None, False),
    ("id", "uuid", None, True),
    ("aud", "character varying(255)", None, False),
    ("role", "character varying(255)", None, False),
    ("email", "character varying(255)", None, False),
    ("encrypted_password", "character varying(255)", None, False),
    ("email_confirmed_at", "timestamp with time zone", None, False),
    ("invited_at", "timestamp with time zone", None, False),
    ("confirmation_token", "character varying(255)", None, False),
    ("confirmation_sent_at", "timestamp with time zone", None, False),
    ("recovery_token", "character varying(255)", None, False),
    ("recovery_sent_at", "timestamp with time zone", None, False),
    ("email_change_token_new", "character varying(255)", None, False),
    ("email_change", "character varying(255)", None, False),
    ("email_change_sent_at", "timestamp with time zone", None, False),
    ("last_sign_in_at", "timestamp with time zone", None, False),
    ("raw_app_meta_data", "jsonb", None, False),
    ("raw_user_meta_data", "jsonb", None, False),
    ("is_super_admin", "boolean", None, False),
    ("created_at", "timestamp with time zone", None, False),
    ("updated_at", "timestamp with time zone", None, False),
    ("phone", "text", "NULL::character varying", False),
    ("phone_confirmed_at", "timestamp with time zone", None, False),
    ("phone_change", "text", "''::character varying", False),
    ("phone_change_token", "character varying(255)", "''::character varying", False),
    ("phone_change_sent_at", "timestamp with time zone", None, False),
    ("confirmed_at", "timestamp with time zone", "LEAST(email_confirmed_at, phone_confirmed_at)", False),
    ("email_change_token_current", "character varying(255)", "''::character varying", False),
    ("email_change_confirm_status", "smallint", "0", False),
    ("banned_until", "timestamp with time zone", None, False),
    ("reauthentication_token", "character varying(255)", "''::character varying", False),
    ("reauthentication_sent_at", "timestamp with time zone", None, False),
    ("is_sso_user", "boolean", "false", True),
    ("deleted_at", "timestamp with time zone", None, False),
    ("is_anonymous", "boolean", "false", True),
]

TOKEN_COLUMNS = ("confirmation_token", "recovery_token", "email_change_token_new", "email_change",
                 "email_change_token_current", "phone_change", "phone_change_token", "reauthentication_token")


def test_auth_users_has_gotrues_columns_types_and_defaults_only(db: TestDB) -> None:
    rows = db.execute(
        "select a.attname as name, format_type(a.atttypid, a.atttypmod) as type, "
        "pg_get_expr(d.adbin, d.adrelid) as default, a.attnotnull as not_null "
        "from pg_attribute as a left join pg_attrdef as d on d.adrelid = a.attrelid and d.adnum = a.attnum "
        "where a.attrelid = 'auth.users'::regclass and a.attnum > 0 and not a.attisdropped order by a.attnum")
    assert [(r["name"], r["type"], r["default"], r["not_null"]) for r in rows] == GOTRUE_USERS
    indexes = {r["name"] for r in db.execute(
        "select indexrelid::regclass::text as name from pg_index where indrelid = 'auth.users'::regclass")}
    assert {"auth.users_pkey", "auth.users_email_partial_key", "auth.users_phone_key",
            "auth.confirmation_token_idx", "auth.recovery_token_idx"} <= indexes
    assert db.value("select count(*) from information_schema.columns "
                    "where table_schema = 'auth' and table_name = 'identities'") == 9


def gotrue_problems(db: TestDB, user_id: Any) -> list[str]:
    """What would keep GoTrue from reading this user or signing them in with a password."""
    row = db.one("select * from auth.users where id = %s", (user_id,))
    assert row is not None
    problems = []
    if str(row["instance_id"]) != "00000000-0000-0000-0000-000000000000":
        problems.append(f"instance_id {row['instance_id']}")
    if (row["aud"], row["role"]) != ("authenticated", "authenticated"):
        problems.append(f"aud/role {row['aud']}/{row['role']}")
    problems += [f"{c} is NULL" for c in TOKEN_COLUMNS if row[c] is None]
    if row["created_at"] is None or row["updated_at"] is None:
        problems.append("no created_at/updated_at")
    identity = db.one("select provider, provider_id, identity_data from auth.identities where user_id = %s",
                      (user_id,))
    if identity is None:
        problems.append("no identity")
    elif (identity["provider"], identity["provider_id"], identity["identity_data"].get("sub")) != \
            ("email", str(user_id), str(user_id)):
        problems.append(f"identity {identity}")
    return problems


def test_seed_users_are_users_gotrue_can_sign_in(db: TestDB) -> None:
    db.execute((PROJECT_ROOT / "supabase" / "seed.sql").read_text().encode())
    users = db.execute("select id, email, encrypted_password = extensions.crypt('arti-demo-password', "
                       "encrypted_password) as password_ok from auth.users where email like '%%northstar.test' "
                       "or email = 'ops@arti.test' order by email")
    assert len(users) == 6
    for user in users:
        assert user["password_ok"], user["email"]
        assert gotrue_problems(db, user["id"]) == [], user["email"]


def test_arti_users_create_writes_a_gotrue_user(db: TestDB) -> None:
    user = create_user(db.conn, "cli-made@example.test", password="hunter22", full_name="Cli Made")
    assert gotrue_problems(db, user.id) == []
    assert db.value("select encrypted_password like '$2a$10$%%' from auth.users where id = %s", (user.id,))


def test_harness_users_are_gotrue_users(db: TestDB) -> None:
    assert gotrue_problems(db, db.create_user()) == []


def test_supabase_admin_owns_the_schemas_db_reset_keeps(db: TestDB) -> None:
    owners = {r["nspname"]: r["owner"] for r in db.execute(
        "select nspname, nspowner::regrole::text as owner from pg_namespace "
        "where nspname in ('auth', 'graphql_public')")}
    assert owners == {"auth": "supabase_admin", "graphql_public": "supabase_admin"}


def test_api_roles_have_supabases_statement_timeouts(db: TestDB) -> None:
    settings = {r["role"]: r["config"] for r in db.execute(
        "select r.rolname as role, s.setconfig as config from pg_db_role_setting as s "
        "join pg_roles as r on r.oid = s.setrole where s.setdatabase = 0")}
    assert "statement_timeout=3s" in settings["anon"]
    assert "statement_timeout=8s" in settings["authenticated"]


def test_the_once_part_runs_once_so_new_functions_stay_closed_to_anon(db: TestDB) -> None:
    """An earlier bootstrap re-granted EXECUTE on public's future functions to anon on every migrate."""
    with db.savepoint():
        apply_compat(db.conn)
        apply_compat(db.conn)
        db.execute("create function public.arti_compat_probe() returns int language sql as 'select 1'")
        db.execute("revoke execute on function public.arti_compat_probe() from public")
        callers = {r["role"]: r["ok"] for r in db.execute(
            "select r as role, has_function_privilege(r, 'public.arti_compat_probe()', 'execute') as ok "
            "from unnest(array['anon', 'authenticated', 'service_role']) as r")}
        assert callers == {"anon": False, "authenticated": False, "service_role": True}


def test_pg_stat_statements_is_preloaded(db: TestDB) -> None:
    assert db.value("select count(*) >= 0 from extensions.pg_stat_statements") is True
    assert "pg_stat_statements" in db.value("select current_setting('shared_preload_libraries')")


def test_the_embedded_cluster_serves_tls(database_url: str) -> None:
    with psycopg.connect(database_url, sslmode="require") as conn:
        row = conn.execute("select ssl, version from pg_stat_ssl where pid = pg_backend_pid()").fetchone()
    assert row is not None and row[0] is True and row[1].startswith("TLSv1.")
