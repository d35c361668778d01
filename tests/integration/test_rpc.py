"""RPCs: who may call what (matrix over personas), and misuse answered with mappable SQLSTATEs.

PostgREST maps 42501 -> 403 (401 for anon), P0002 -> 404, 22023 -> 400, 23505 -> 409.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest

from tests.factories import PERSONAS, add_metric_series, build_world
from tests.harness import TestDB
from tests.integration.test_isolation_matrix import persona_context

MEMBERS = {"viewer", "analyst", "manager", "admin", "owner"}
AUTHENTICATED = {*MEMBERS, "outsider", "platform_admin"}

# rpc call, personas for which it succeeds, SQLSTATE for the others (anon always 42501: no EXECUTE)
RPC_MATRIX: list[tuple[str, str, set[str], str]] = [
    ("create_organization", "select (public.create_organization('Fresh')).id", AUTHENTICATED, "42501"),
    ("my_permissions", "select public.my_permissions(%(org_a)s)", AUTHENTICATED, "42501"),
    ("invite_member", "select public.invite_member(%(org_a)s, 'z@example.test', 'viewer')",
     {"admin", "owner"}, "42501"),
    ("revoke_invitation", "select public.revoke_invitation(%(invitation)s)", {"admin", "owner"}, "P0002"),
    ("set_member_role", "select public.set_member_role(%(org_a)s, %(user_extra)s, 'analyst')",
     {"admin", "owner"}, "42501"),
    ("remove_member", "select public.remove_member(%(org_a)s, %(user_extra)s)", {"admin", "owner"}, "42501"),
    ("org_members", "select * from public.org_members(%(org_a)s)", {"manager", "admin", "owner", "platform_admin"},
     "42501"),
    ("metrics_summary", "select * from public.metrics_summary(%(org_a)s, '2026-11-01', '2026-11-30')",
     MEMBERS, "42501"),
    ("top_movers", "select * from public.top_movers(%(org_a)s, 'followers')", MEMBERS, "42501"),
    ("artist_overview", "select public.artist_overview(%(artist_a)s)", MEMBERS, "P0002"),
]


def _matrix() -> list[Any]:
    return [pytest.param(sql, ok, state, persona, id=f"{name}-{persona}")
            for name, sql, ok, state in RPC_MATRIX for persona in PERSONAS]


@pytest.mark.parametrize(("sql", "allowed", "sqlstate", "persona"), _matrix())
def test_rpc_matrix(db: TestDB, sql: str, allowed: set[str], sqlstate: str, persona: str) -> None:
    world = build_world(db)
    if persona in allowed:
        with persona_context(db, world, persona):
            db.execute(sql, world.params())
        return
    with pytest.raises(psycopg.Error) as caught, persona_context(db, world, persona):
        db.execute(sql, world.params())
    assert caught.value.sqlstate == ("42501" if persona == "anon" else sqlstate)


def test_my_permissions_follow_the_role(db: TestDB) -> None:
    world = build_world(db)
    perms: dict[str, list[str]] = {}
    for persona in ("viewer", "analyst", "manager", "admin", "owner", "outsider"):
        with db.as_user(world.users[persona]):
            perms[persona] = db.value("select public.my_permissions(%s)", (world.ids["org_a"],))
    assert perms["outsider"] == []
    assert "insights.ask" not in perms["viewer"] and "insights.ask" in perms["analyst"]
    assert "sync.run" in perms["manager"] and "members.manage" not in perms["manager"]
    assert "members.manage" in perms["admin"] and "billing.manage" not in perms["admin"]
    assert "billing.manage" in perms["owner"] and "org.delete" in perms["owner"]
    for lower, higher in [("viewer", "analyst"), ("analyst", "manager"), ("manager", "admin"), ("admin", "owner")]:
        assert set(perms[lower]) < set(perms[higher])


def test_metrics_timeseries_sees_only_rows_rls_allows(db: TestDB) -> None:
    world = build_world(db)
    sql = ("select account_id, bucket_start, value_last from public.metrics_timeseries("
           "array[%(account_a)s, %(account_b)s]::uuid[], 'followers', '2026-11-01', '2026-11-30')")
    with db.as_user(world.users["viewer"]):
        rows = db.execute(sql, world.params())
    assert {r["account_id"] for r in rows} == {world.ids["account_a"]}
    assert [float(r["value_last"]) for r in rows] == [100, 110, 121]
    with db.as_user(world.users["owner_b"]):
        assert {r["account_id"] for r in db.execute(sql, world.params())} == {world.ids["account_b"]}


def test_metrics_timeseries_buckets_and_null_means_not_provided(db: TestDB) -> None:
    world = build_world(db)
    account = world.ids["account_a"]
    add_metric_series(db, world.ids["org_a"], account, "popularity", [50, None, 54, 56, None, 60, 61, 62],
                      dt.date(2026, 11, 22))  # 2026-11-15 (Sunday) .. 2026-11-22 (Sunday)
    with db.as_user(world.users["analyst"]):
        rows = db.execute("select bucket_start, value_last, value_sum, days_reported, days_not_provided "
                          "from public.metrics_timeseries(array[%s]::uuid[], 'popularity', '2026-11-15', "
                          "'2026-11-22', 'week')", (account,))
    assert rows == [
        {"bucket_start": dt.date(2026, 11, 9), "value_last": 50, "value_sum": 50, "days_reported": 1,
         "days_not_provided": 0},
        {"bucket_start": dt.date(2026, 11, 16), "value_last": 62, "value_sum": 54 + 56 + 60 + 61 + 62,
         "days_reported": 5, "days_not_provided": 2},
    ]


def test_metrics_summary_reports_change(db: TestDB) -> None:
    world = build_world(db)
    with db.as_user(world.users["viewer"]):
        rows = db.execute("select * from public.metrics_summary(%s, '2026-11-22', '2026-11-24')",
                          (world.ids["org_a"],))
    assert len(rows) == 1
    row = rows[0]
    assert (row["metric"], row["baseline_value"], row["latest_value"]) == ("followers", 100, 121)
    assert row["abs_change"] == 21 and float(row["pct_change"]) == 21.0
    assert row["provider"] == "spotify" and row["artist_id"] == world.ids["artist_a"]


def test_top_movers_ranks_by_percent_change(db: TestDB) -> None:
    world = build_world(db)
    from tests.factories import create_account

    slow = create_account(db, world.ids["org_a"], world.ids["artist_a"], "youtube")
    add_metric_series(db, world.ids["org_a"], slow, "followers", [1000, 1001, 1002], world.ids["today"])
    with db.as_user(world.users["viewer"]):
        rows = db.execute("select account_id, pct_change from public.top_movers(%s, 'followers', 7, 5)",
                          (world.ids["org_a"],))
    assert [r["account_id"] for r in rows] == [world.ids["account_a"], slow]
    assert float(rows[0]["pct_change"]) == 21.0 and float(rows[1]["pct_change"]) == 0.2


def test_artist_overview_shape(db: TestDB) -> None:
    world = build_world(db)
    with db.as_user(world.users["viewer"]):
        overview = db.value("select public.artist_overview(%s)", (world.ids["artist_a"],))
    assert overview["artist"]["name"] == "Artist A"
    (account,) = overview["accounts"]
    assert account["provider"] == "spotify"
    assert account["latest"]["followers"]["value"] == 121
    assert account["last_sync"]["status"] == "queued" and "org_id" not in account["last_sync"]
    assert [c["name"] for c in overview["campaigns"]] == ["Launch"]


@pytest.mark.parametrize(("sql", "sqlstate", "fragment"), [
    ("select * from public.metrics_timeseries('{}'::uuid[], 'followers', '2026-01-01', '2026-01-02')", "22023",
     "at least one account"),
    ("select * from public.metrics_timeseries(array[%(account_a)s]::uuid[], 'followers', '2026-02-01', "
     "'2026-01-01')", "22023", "start_day must be on or before end_day"),
    ("select * from public.metrics_timeseries(array[%(account_a)s]::uuid[], 'followers', '2026-01-01', "
     "'2026-02-01', 'hour')", "22023", "bucket must be day, week or month"),
    ("select * from public.metrics_timeseries(array[%(account_a)s]::uuid[], '', '2026-01-01', '2026-02-01')",
     "22023", "metric is required"),
    ("select * from public.top_movers(%(org_a)s, 'followers', 0)", "22023", "window_days"),
    ("select * from public.top_movers(%(org_a)s, 'followers', 7, 1000)", "22023", "max_results"),
    ("select * from public.metrics_summary(%(org_b)s, '2026-01-01', '2026-02-01')", "42501", "not a member"),
    ("select public.artist_overview(gen_random_uuid())", "P0002", "artist not found"),
    ("select public.create_organization('')", "22023", "1-120 characters"),
    ("select public.create_organization('X', 'Bad Slug!')", "22023", "slug must be"),
    ("select public.invite_member(%(org_a)s, 'not-an-email', 'viewer')", "22023", "valid address"),
    ("select public.invite_member(%(org_a)s, 'new@example.test', 'viewer')", "23505", "pending invitation"),
    ("select public.set_member_role(%(org_a)s, gen_random_uuid(), 'viewer')", "P0002", "not a member"),
    ("select public.remove_member(%(org_a)s, gen_random_uuid())", "P0002", "not a member"),
    ("select public.accept_invitation('no-such-token')", "P0002", "invitation not found"),
])
def test_rpc_misuse_gets_actionable_errors(db: TestDB, sql: str, sqlstate: str, fragment: str) -> None:
    world = build_world(db)
    with pytest.raises(psycopg.Error) as caught, db.as_user(world.users["owner"]):
        db.execute(sql, world.params())
    assert caught.value.sqlstate == sqlstate
    assert fragment in (caught.value.diag.message_primary or "")


def test_invite_accept_flow_and_single_use(db: TestDB) -> None:
    world = build_world(db)
    invitee = db.create_user("Invitee@Example.test")
    with db.as_user(world.users["admin"]):
        invite = db.value("select public.invite_member(%s, 'invitee@example.test', 'analyst')", (world.ids["org_a"],))
    # Someone else holding the link cannot use it.
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="another email"), \
            db.as_user(world.users["outsider"]):
        db.execute("select public.accept_invitation(%s)", (invite["token"],))
    with db.as_user(invitee, email="invitee@example.test"):
        org = db.value("select public.accept_invitation(%s)", (invite["token"],))
        assert org == world.ids["org_a"]
        assert db.value("select role::text from public.memberships where user_id = %s", (invitee,)) == "analyst"
    with pytest.raises(psycopg.errors.UniqueViolation, match="already been used"), db.as_user(invitee):
        db.execute("select public.accept_invitation(%s)", (invite["token"],))
    assert db.value("select count(*) from public.audit_log where action = 'membership.insert' "
                    "and new_data ->> 'user_id' = %s", (str(invitee),)) == 1


def test_nobody_invites_above_their_own_role(db: TestDB) -> None:
    world = build_world(db)
    with pytest.raises(psycopg.errors.InsufficientPrivilege, match="above your own"), \
            db.as_user(world.users["admin"]):
        db.execute("select public.invite_member(%s, 'boss@example.test', 'owner')", (world.ids["org_a"],))
