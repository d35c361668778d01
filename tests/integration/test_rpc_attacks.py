"""Generated attacks on every function the API roles may execute, read from the catalog (issue 16 item 2).

The catalog decides what is attacked: every function that `anon` or `authenticated` may EXECUTE, in any schema
(public RPCs, the private helpers RLS policies and invoker RPCs call, Supabase's auth.* claim readers), apart
from extension members and trigger functions. A function added later is attacked without touching this file.
Each call runs as PostgREST runs it (role + request.jwt.claims) and is rolled back afterwards:

* sub-less claims (a signed token without `sub`: `auth.uid()` is NULL), with org A's ids and with NULL in each
  argument;
* an owner of org B, with org A's ids and with NULL in each argument (the others org A's ids);
* anon, for the few functions anon may execute.

Expected: refused with 42501, 22023 or P0002, and 42501 whenever auth.uid() is NULL, whatever the arguments.
Decision: a read-only function (stable/immutable) may instead answer with a harmless empty result (no rows, or
only NULL, false, 0 and empty arrays/objects): the private policy helpers must not raise inside RLS policies
(they answer "no organizations", "no permission"), and an RLS-filtered read such as metrics_timeseries over
another organization's accounts simply finds nothing. Not so a public RPC called without a user (always 42501)
or with NULL in a required argument: a check that becomes NULL must not let the call through, even to an empty
answer. Supabase's auth.* claim readers take no argument and
return the caller's own claims, so any result of theirs is harmless. Never a change: every table of public,
private and procrastinate is compared (row count and checksum) before and after, and org A's organization row
must not have been locked by the call (its xmax is compared: a lock taken by a call that then failed still
shows).

NULL in an argument that has a default means "not given" (e.g. create_organization's slug); a function without
any org-scoped argument (no uuid, no invitation token) acts on the caller's own account, so for it only its
required arguments are set to NULL, and it is not attacked "with org A's ids" by another signed-in user.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest

from tests.factories import World, build_world
from tests.harness import TestDB

REFUSALS = {"42501", "22023", "P0002"}

INVITATION_TOKEN = "attack-invitation-token-" + "0" * 40
INVITEE_EMAIL = "invited-attack@example.test"

API_FUNCTIONS_SQL = """
select p.oid::regprocedure::text as signature, n.nspname as schema, p.proname as name, p.provolatile,
       p.pronargdefaults, p.proargnames, p.proargmodes,
       array(select t::regtype::text from unnest(p.proargtypes) with ordinality as a (t, i) order by i) as arg_types,
       has_function_privilege('anon', p.oid, 'execute') as anon
from pg_proc as p
join pg_namespace as n on n.oid = p.pronamespace
where n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_toast%'
  and p.prokind = 'f' and p.prorettype <> 'trigger'::regtype
  and not exists (select 1 from pg_depend as d
                  where d.classid = 'pg_proc'::regclass and d.objid = p.oid and d.deptype = 'e')
  and (has_function_privilege('anon', p.oid, 'execute') or has_function_privilege('authenticated', p.oid, 'execute'))
order by 1
"""

SNAPSHOT_TABLES_SQL = """
select format('%I.%I', n.nspname, c.relname) as name
from pg_class as c join pg_namespace as n on n.oid = c.relnamespace
where n.nspname in ('public', 'private', 'procrastinate') and c.relkind in ('r', 'p')
order by 1
"""


@dataclass(frozen=True)
class Function:
    signature: str
    schema: str
    name: str
    read_only: bool
    arg_names: tuple[str, ...]
    arg_types: tuple[str, ...]
    defaults: int
    anon: bool

    @property
    def org_scoped(self) -> bool:
        """Takes an id (or an invitation token) that points into an organization."""
        return any(t in ("uuid", "uuid[]") or n == "token" for n, t in zip(self.arg_names, self.arg_types,
                                                                           strict=True))

    def nullable_positions(self) -> list[int]:
        """The arguments set to NULL one by one: all of them when org-scoped, else the required ones."""
        required = len(self.arg_types) - self.defaults
        return [i for i in range(len(self.arg_types)) if self.org_scoped or i < required]


def api_functions(db: TestDB) -> list[Function]:
    functions = []
    for row in db.execute(API_FUNCTIONS_SQL):
        names, modes = row["proargnames"] or [], row["proargmodes"]
        if modes is not None:
            names = [n for n, m in zip(names, modes, strict=True) if m in ("i", "b", "v")]
        names = (list(names) + [""] * len(row["arg_types"]))[: len(row["arg_types"])]
        functions.append(Function(row["signature"], row["schema"], row["name"], row["provolatile"] in ("s", "i"),
                                  tuple(names), tuple(row["arg_types"]), row["pronargdefaults"], row["anon"]))
    return functions


# -- org A's world, plus what build_world does not make: an invitation with a known token, a webhook endpoint
# -- with a delivery -------------------------------------------------------------------------------------------

def attack_world(db: TestDB) -> World:
    world = build_world(db)
    org_a = world.ids["org_a"]
    invitation = db.value(
        "insert into public.invitations (org_id, email, role, invited_by) values (%s, %s, 'admin', %s) returning id",
        (org_a, INVITEE_EMAIL, world.users["owner"]))
    db.execute("insert into private.invitation_tokens (invitation_id, token_hash) "
               "values (%s, extensions.digest(%s, 'sha256'))", (invitation, INVITATION_TOKEN))
    endpoint = db.value(
        "insert into public.webhook_endpoints (org_id, url, events, secret_hint, created_by) "
        "values (%s, 'https://hooks.example.com/a', '{insight.created}', 'whsec_...abcd', %s) returning id",
        (org_a, world.users["owner"]))
    db.execute("insert into private.webhook_secrets (endpoint_id, secret) values (%s, 'whsec_attack')", (endpoint,))
    db.execute("insert into public.insights (org_id, kind, title, body, question) "
               "values (%s, 'answer', 'Q', 'A', 'Q?')", (org_a,))
    delivery = db.value("select id from public.webhook_deliveries where endpoint_id = %s", (endpoint,))
    assert delivery is not None, "the insight should have fanned out to org A's endpoint"
    world.ids.update(endpoint_a=endpoint, delivery_a=delivery, invitation_admin=invitation)
    return world


def argument_value(world: World, name: str, type_: str) -> Any:
    """Org A's value for an argument, chosen by name, else by type. An unknown type fails the test: give it a
    value here so the new function is attacked too."""
    ids, users = world.ids, world.users
    by_name: dict[str, Any] = {
        "org_id": ids["org_a"], "target_org": ids["org_a"], "user_id": users["owner"], "other_user": users["owner"],
        "account_id": ids["account_a"], "artist_id": ids["artist_a"], "invitation_id": ids["invitation_admin"],
        "endpoint_id": ids["endpoint_a"], "target_endpoint": ids["endpoint_a"], "delivery_id": ids["delivery_a"],
        "notification_id": ids["notification"], "account_ids": [ids["account_a"]], "token": INVITATION_TOKEN,
        "email": "attacker@example.test", "role": "owner", "wanted": "members.manage", "name": "Attack",
        "slug": "attack", "url": "https://hooks.example.com/attack", "events": ["insight.created"],
        "metric": "followers", "bucket": "day", "start_day": dt.date(2026, 11, 1), "end_day": dt.date(2026, 11, 30),
        "query": "followers", "mode": "hybrid", "description": "attack",
    }
    if name in by_name:
        return by_name[name]
    by_type: dict[str, Any] = {
        "uuid": ids["org_a"], "uuid[]": [ids["account_a"]], "text": "attack", "text[]": ["attack"],
        "integer": 1, "bigint": 1, "boolean": True, "date": dt.date(2026, 11, 20), "org_role": "owner",
        "jsonb": json.dumps({}), "vector": "[" + ",".join(["0.01"] * 384) + "]",
    }
    if type_ not in by_type:
        raise AssertionError(f"no attack value for an argument {name} of type {type_}: add one to argument_value()")
    return by_type[type_]


# -- before/after ---------------------------------------------------------------------------------------------

def snapshot(db: TestDB, tables: list[str]) -> dict[str, tuple[int, str]]:
    """Row count and checksum of every table (as the superuser, RLS does not apply)."""
    parts = " union all ".join(
        f"select '{t}' as t, count(*) as n, md5(coalesce(string_agg(x::text, '|' order by x::text), '')) as h "
        f"from {t} as x" for t in tables)
    return {r["t"]: (r["n"], r["h"]) for r in db.execute(parts)}


def org_row_version(db: TestDB, org: uuid.UUID) -> str:
    """xmax of the organization's row: a lock (or update) taken by the call changes it, even when the call then
    fails and its savepoint is rolled back."""
    return str(db.value("select xmax::text from public.organizations where id = %s", (org,)))


def empty(rows: list[dict[str, Any]]) -> bool:
    return all(v in (None, False, 0, "", [], {}) for row in rows for v in row.values())


@dataclass
class Attack:
    label: str
    role: str
    claims: dict[str, Any]
    uid_is_null: bool


def run_attacks(db: TestDB, world: World, attack: Attack, functions: list[Function]) -> list[str]:
    tables = [r["name"] for r in db.execute(SNAPSHOT_TABLES_SQL)]
    failures: list[str] = []
    org_a = world.ids["org_a"]
    for fn in functions:
        values = [argument_value(world, n, t) for n, t in zip(fn.arg_names, fn.arg_types, strict=True)]
        variants: list[tuple[str, list[Any], bool]] = []  # (label, arguments, a required argument is NULL)
        if fn.org_scoped or attack.uid_is_null:
            variants.append(("org A's ids" if fn.org_scoped else "valid arguments", values, False))
        for i in fn.nullable_positions():
            variants.append((f"{fn.arg_names[i] or f'argument {i + 1}'} null", [*values[:i], None, *values[i + 1:]],
                             i < len(values) - fn.defaults))
        if not variants:
            continue
        casts = ", ".join(f"%s::{t}" for t in fn.arg_types)
        sql = f"select * from {fn.schema}.{fn.name}({casts})"
        for label, args, required_null in variants:
            where = f"{fn.signature} as {attack.label}, {label}"
            with db.conn.transaction(force_rollback=True):
                before, locked_before = snapshot(db, tables), org_row_version(db, org_a)
                outcome: str | None = None
                rows: list[dict[str, Any]] = []
                try:
                    with db.as_role(attack.role, attack.claims):
                        rows = db.execute(sql, args)
                except psycopg.Error as exc:
                    outcome = exc.sqlstate or "?"
                    message = exc.diag.message_primary
                if outcome is None:
                    # A public RPC refuses a request without a user, and a NULL where an argument is required (no
                    # check may become NULL and let the call through, even to an empty answer); the private
                    # helpers RLS policies call may answer either with nothing.
                    strict = fn.schema == "public" and (attack.uid_is_null or required_null)
                    harmless = fn.schema == "auth" or (fn.read_only and empty(rows) and not strict)
                    if not harmless:
                        failures.append(f"{where}: answered {str(rows)[:160]} instead of refusing")
                elif attack.uid_is_null and outcome != "42501":
                    failures.append(f"{where}: {outcome} ({message}) instead of 42501 for a NULL auth.uid()")
                elif outcome not in REFUSALS:
                    failures.append(f"{where}: {outcome} ({message}), not one of 42501/22023/P0002")
                if snapshot(db, tables) != before:
                    failures.append(f"{where}: changed data")
                if org_row_version(db, org_a) != locked_before:
                    failures.append(f"{where}: locked org A's organization row")
    return failures


def _claims_without_sub() -> dict[str, Any]:
    return {"role": "authenticated", "aud": "authenticated", "email": INVITEE_EMAIL,
            "app_metadata": {"provider": "email"}, "user_metadata": {}, "aal": "aal1", "is_anonymous": False}


def test_the_catalog_lists_every_api_function(db: TestDB) -> None:
    """The attack list is not vacuous: the RPCs and the policy helpers are in it, trigger functions are not."""
    signatures = {f.signature for f in api_functions(db)}
    for expected in ("remove_member(uuid,uuid)", "set_member_role(uuid,uuid,org_role)", "accept_invitation(text)",
                     "create_organization(text,text)", "private.has_permission(uuid,text)", "auth.uid()"):
        assert expected in signatures
    assert len(signatures) >= 30


def test_sub_less_claims_are_refused_by_every_function(db: TestDB) -> None:
    world = attack_world(db)
    failures = run_attacks(db, world, Attack("sub-less claims", "authenticated", _claims_without_sub(), True),
                           api_functions(db))
    assert failures == [], "\n".join(failures)


def test_another_orgs_owner_is_refused_by_every_function(db: TestDB) -> None:
    world = attack_world(db)
    owner_b = world.users["owner_b"]
    claims = {"sub": str(owner_b), "role": "authenticated", "aud": "authenticated",
              "email": db.users[str(owner_b)]["email"], "app_metadata": {"provider": "email"}}
    failures = run_attacks(db, world, Attack("org B's owner", "authenticated", claims, False), api_functions(db))
    assert failures == [], "\n".join(failures)


def test_anon_is_refused_by_every_function_it_may_execute(db: TestDB) -> None:
    world = attack_world(db)
    functions = [f for f in api_functions(db) if f.anon]
    assert {f.schema for f in functions} <= {"auth"}, "anon may execute only Supabase's auth.* claim readers"
    failures = run_attacks(db, world, Attack("anon", "anon", {"role": "anon"}, True), functions)
    assert failures == [], "\n".join(failures)


def test_remove_member_with_a_null_user_by_an_outsider_takes_no_lock(db: TestDB) -> None:
    """The finding of issue 16 item 2, directly: refused with 42501, org A's row untouched."""
    world = build_world(db)
    before = org_row_version(db, world.ids["org_a"])
    with pytest.raises(psycopg.Error) as caught, db.as_user(world.users["outsider"]):
        db.execute("select public.remove_member(%s, %s::uuid)", (world.ids["org_a"], None))
    assert caught.value.sqlstate == "42501"
    assert org_row_version(db, world.ids["org_a"]) == before
