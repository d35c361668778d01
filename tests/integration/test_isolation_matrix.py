"""Generated isolation matrix: every table x every command x every persona.

Each cell either works (the row is visible / the write affects exactly one row) or is refused
(42501, or zero rows), as the policy table below says. The personas are: anon, a signed-in outsider,
a member of org A in each role, and a platform administrator (member of no organization).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from tests.factories import PERSONAS, ROLES, World, build_world
from tests.harness import TestDB

MEMBERS = set(ROLES)
MANAGER_UP = {"manager", "admin", "owner"}
ADMIN_UP = {"admin", "owner"}


@dataclass(frozen=True)
class Spec:
    table: str
    key: str  # where-clause selecting org A's row
    insert: str | None
    update: str
    delete: str
    select_ok: frozenset[str]
    insert_ok: frozenset[str] = frozenset()
    update_ok: frozenset[str] = frozenset()
    delete_ok: frozenset[str] = frozenset()


def _spec(table: str, key: str, insert: str | None, update_set: str, select_ok: set[str],
          insert_ok: set[str] | None = None, update_ok: set[str] | None = None,
          delete_ok: set[str] | None = None) -> Spec:
    return Spec(table, key, insert, f"update public.{table} set {update_set} where {key}",
                f"delete from public.{table} where {key}", frozenset(select_ok), frozenset(insert_ok or ()),
                frozenset(update_ok or ()), frozenset(delete_ok or ()))


SPECS = [
    _spec("organizations", "id = %(org_a)s",
          "insert into public.organizations (name, slug) values ('Sneaky', 'sneaky-org')",
          "name = 'Renamed'", MEMBERS | {"platform_admin"}, update_ok=ADMIN_UP, delete_ok={"owner"}),
    _spec("memberships", "org_id = %(org_a)s and user_id = %(user_viewer)s",
          "insert into public.memberships (org_id, user_id, role) values (%(org_a)s, %(user_outsider)s, 'owner')",
          "role = 'owner'", MEMBERS | {"platform_admin"}),
    _spec("role_permissions", "role = 'viewer' and permission = 'org.read'",
          "insert into public.role_permissions (role, permission) values ('viewer', 'members.manage')",
          "permission = 'members.manage'", MEMBERS | {"outsider", "platform_admin"}),
    _spec("invitations", "id = %(invitation)s",
          "insert into public.invitations (org_id, email, role) values (%(org_a)s, 'x@example.test', 'owner')",
          "role = 'owner'", ADMIN_UP),
    _spec("profiles", "id = %(profile_viewer)s",
          "insert into public.profiles (id, full_name) values (gen_random_uuid(), 'ghost')",
          "full_name = 'Changed'", MEMBERS | {"platform_admin"}, update_ok={"viewer"}),
    _spec("artists", "id = %(artist_a)s",
          "insert into public.artists (org_id, name) values (%(org_a)s, 'New artist')",
          "name = 'Renamed'", MEMBERS, MANAGER_UP, MANAGER_UP, MANAGER_UP),
    _spec("campaigns", "id = %(campaign_a)s",
          "insert into public.campaigns (org_id, artist_id, name, starts_on) "
          "values (%(org_a)s, %(artist_a)s, 'New', '2026-12-01')",
          "status = 'active'", MEMBERS, MANAGER_UP, MANAGER_UP, MANAGER_UP),
    _spec("connected_accounts", "id = %(account_a)s",
          "insert into public.connected_accounts (org_id, artist_id, provider, external_id) "
          "values (%(org_a)s, %(artist_a)s, 'soundcloud', 'sc-123')",
          "display_name = 'Renamed'", MEMBERS | {"platform_admin"}, MANAGER_UP, MANAGER_UP, MANAGER_UP),
    _spec("sync_runs", "id = %(sync_a)s",
          "insert into public.sync_runs (org_id, account_id, trigger) values (%(org_a)s, %(account_a)s, 'manual')",
          "status = 'succeeded'", MEMBERS | {"platform_admin"}),
    _spec("metrics", "account_id = %(account_a)s and metric = 'followers' and day = %(today)s",
          "insert into public.metrics (account_id, metric, day, org_id, value) "
          "values (%(account_a)s, 'followers', '2020-01-01', %(org_a)s, 1)",
          "value = 999999", MEMBERS),
    _spec("metric_snapshots", "id = %(snapshot_a)s",
          "insert into public.metric_snapshots (org_id, account_id, endpoint, payload) "
          "values (%(org_a)s, %(account_a)s, '/x', '{}')",
          "payload = '{\"forged\": true}'", MEMBERS),
    _spec("notifications", "id = %(notification)s",
          "insert into public.notifications (user_id, kind, title) values (%(user_viewer)s, 'spam', 'Spam')",
          "read_at = now()", {"viewer"}, update_ok={"viewer"}, delete_ok={"viewer"}),
    _spec("insights", "id = %(insight_a)s",
          "insert into public.insights (org_id, kind, title, body, question) "
          "values (%(org_a)s, 'answer', 'Q', 'A', 'Q?')",
          "title = 'Forged'", MEMBERS),  # answers are written by /insights/ask only (private.record_answer)
    _spec("documents", "id = %(document_a)s",
          "insert into public.documents (org_id, source, source_key, content) "
          "values (%(org_a)s, 'metrics', 'forged', 'Forged fact.')",
          "content = 'Forged'", MEMBERS),
    _spec("audit_log", "id = %(audit_a)s",
          "insert into public.audit_log (org_id, action, target_table) values (%(org_a)s, 'fake.insert', 'x')",
          "action = 'forged.update'", ADMIN_UP | {"platform_admin"}),
]
COMMANDS = ("select", "insert", "update", "delete")


def persona_context(db: TestDB, world: World, persona: str) -> AbstractContextManager[TestDB]:
    if persona == "anon":
        return db.as_anon()
    return db.as_user(world.users[persona])


def _cases() -> list[Any]:
    cases = []
    for spec in SPECS:
        for command in COMMANDS:
            if command == "insert" and spec.insert is None:
                continue
            allowed: frozenset[str] = getattr(spec, f"{command}_ok")
            for persona in PERSONAS:
                outcome = "allowed" if persona in allowed else "refused"
                cases.append(pytest.param(spec, command, persona, persona in allowed,
                                          id=f"{spec.table}-{command}-{persona}-{outcome}"))
    return cases


def attempt(db: TestDB, world: World, spec: Spec, command: str, persona: str) -> bool:
    """Run the command as the persona; True when it worked on exactly one row."""
    params = world.params()
    sql = {"select": f"select count(*) as n from public.{spec.table} where {spec.key}",
           "insert": spec.insert, "update": spec.update, "delete": spec.delete}[command]
    assert sql is not None
    try:
        with persona_context(db, world, persona):
            cur = db.conn.execute(sql, params)
            if command == "select":
                row = cur.fetchone()
                return bool(row and row["n"] == 1)
            return cur.rowcount == 1
    except psycopg.errors.InsufficientPrivilege:
        return False


@pytest.mark.parametrize(("spec", "command", "persona", "expected"), _cases())
def test_isolation_matrix(db: TestDB, spec: Spec, command: str, persona: str, expected: bool) -> None:
    world = build_world(db)
    assert attempt(db, world, spec, command, persona) is expected


WRITABLE = [s for s in SPECS if s.insert_ok]


@pytest.mark.parametrize("spec", WRITABLE, ids=lambda s: s.table)
def test_writers_cannot_insert_into_another_org(db: TestDB, spec: Spec) -> None:
    world = build_world(db)
    params = world.params() | {"org_a": world.ids["org_b"], "artist_a": world.ids["artist_b"],
                               "account_a": world.ids["account_b"]}
    assert spec.insert is not None
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.as_user(world.users["owner"]):
        db.execute(spec.insert, params)


@pytest.mark.parametrize("spec", [s for s in SPECS if s.update_ok], ids=lambda s: s.table)
def test_rows_cannot_be_moved_to_another_org(db: TestDB, spec: Spec) -> None:
    world = build_world(db)
    column = "id" if spec.table in ("organizations", "profiles") else "org_id"
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.as_user(world.users["owner"]):
        db.execute(f"update public.{spec.table} set {column} = %(org_b)s where {spec.key}", world.params())


def test_campaign_cannot_point_at_another_orgs_artist(db: TestDB) -> None:
    world = build_world(db)
    with pytest.raises(psycopg.errors.ForeignKeyViolation), db.as_user(world.users["manager"]):
        db.execute("update public.campaigns set artist_id = %(artist_b)s where id = %(campaign_a)s", world.params())


def test_sync_managed_columns_are_not_writable_by_users(db: TestDB) -> None:
    world = build_world(db)
    with pytest.raises(psycopg.errors.InsufficientPrivilege), db.as_user(world.users["owner"]):
        db.execute("update public.connected_accounts set status = 'active', last_synced_at = now() "
                   "where id = %(account_a)s", world.params())


def test_audit_log_is_append_only_even_for_the_table_owner(db: TestDB) -> None:
    world = build_world(db)
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"), db.savepoint():
        db.execute("delete from public.audit_log where id = %(audit_a)s", world.params())
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="append-only"), db.savepoint():
        db.execute("update public.audit_log set action = 'x.y' where id = %(audit_a)s", world.params())
