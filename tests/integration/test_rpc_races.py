"""Check-then-lock races (issue 16 item 3), with two real sessions.

The first session changes someone's standing and keeps its transaction open; the second, as that someone, calls an
RPC that depends on it. The RPC must take its lock before it reads the caller's role, so it waits for the first
session and, once that commits, is judged by the outcome: refused. Today's data is committed (two connections
cannot share a rolled-back test transaction) and removed afterwards.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from arti.db import set_request_context, user_claims
from arti.users import INSERT_USER_SQL
from tests.harness import gotrue_user, wait_until


@dataclass
class Team:
    org: uuid.UUID
    users: dict[str, uuid.UUID]
    emails: dict[str, str]


@pytest.fixture
def admin_conn(database_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        yield conn


@pytest.fixture
def team(admin_conn: psycopg.Connection[Any]) -> Iterator[Team]:
    """A committed organization with two owners, an admin and a viewer."""
    users, emails = {}, {}
    for label in ("owner1", "owner2", "admin", "viewer"):
        users[label] = uuid.uuid4()
        emails[label] = f"race-{label}-{users[label].hex[:8]}@example.test"
        admin_conn.execute(INSERT_USER_SQL, gotrue_user(users[label], emails[label]))
    org = admin_conn.execute("insert into public.organizations (name, slug) values ('Race', %s) returning id",
                             (f"race-{uuid.uuid4().hex[:10]}",)).fetchone()["id"]
    for label, role in (("owner1", "owner"), ("owner2", "owner"), ("admin", "admin"), ("viewer", "viewer")):
        admin_conn.execute("insert into public.memberships (org_id, user_id, role) values (%s, %s, %s)",
                           (org, users[label], role))
    made = Team(org, users, emails)
    try:
        yield made
    finally:
        admin_conn.execute("delete from public.organizations where id = %s", (org,))
        admin_conn.execute("delete from auth.users where id = any(%s) or email like 'race-invitee-%%'",
                           (list(users.values()),))


def _claims(team: Team, label: str) -> dict[str, Any]:
    return user_claims(str(team.users[label]), email=team.emails[label])


@dataclass
class Outcome:
    sqlstate: str | None = None
    message: str | None = None
    waited: bool = False


def race(database_url: str, first: tuple[dict[str, Any], str, tuple[Any, ...]],
         second: tuple[dict[str, Any], str, tuple[Any, ...]]) -> Outcome:
    """Run `first` (claims, sql, params) in a transaction held open, start `second` in another session, wait until
    it blocks on the first's locks (or finishes), commit the first, and return how the second ended."""
    outcome = Outcome()
    done = threading.Event()
    with psycopg.connect(database_url, row_factory=dict_row) as holder, \
            psycopg.connect(database_url, autocommit=True) as observer:
        set_request_context(holder, "authenticated", first[0])
        holder.execute(first[1], first[2])
        holder_pid = holder.info.backend_pid

        def second_call() -> None:
            try:
                with psycopg.connect(database_url) as conn, conn.transaction():
                    set_request_context(conn, "authenticated", second[0])
                    conn.execute(second[1], second[2])
            except psycopg.Error as exc:
                outcome.sqlstate = exc.sqlstate
                outcome.message = exc.diag.message_primary
            finally:
                done.set()

        def blocked() -> bool:
            row = observer.execute("select count(*) from pg_stat_activity "
                                   "where %s = any(pg_blocking_pids(pid))", (holder_pid,)).fetchone()
            return bool(row and row[0])

        thread = threading.Thread(target=second_call, daemon=True)
        thread.start()
        wait_until(lambda: done.is_set() or blocked(), timeout=10, what="the second call to wait or finish")
        outcome.waited = not done.is_set()
        holder.commit()
        assert done.wait(10), "the second call did not finish after the first committed"
        thread.join(5)
    return outcome


def _role(conn: psycopg.Connection[Any], team: Team, label: str) -> str | None:
    row = conn.execute("select role::text as role from public.memberships where org_id = %s and user_id = %s",
                       (team.org, team.users[label])).fetchone()
    return row["role"] if row else None


def test_an_owner_being_demoted_cannot_promote_a_viewer_to_owner(database_url: str, admin_conn: Any,
                                                                team: Team) -> None:
    outcome = race(database_url,
                   (_claims(team, "owner2"), "select public.set_member_role(%s, %s, 'admin')",
                    (team.org, team.users["owner1"])),
                   (_claims(team, "owner1"), "select public.set_member_role(%s, %s, 'owner')",
                    (team.org, team.users["viewer"])))
    assert (outcome.sqlstate, outcome.waited) == ("42501", True), outcome
    assert _role(admin_conn, team, "owner1") == "admin"
    assert _role(admin_conn, team, "viewer") == "viewer"


def test_a_removed_admin_cannot_remove_an_owner(database_url: str, admin_conn: Any, team: Team) -> None:
    outcome = race(database_url,
                   (_claims(team, "owner1"), "select public.remove_member(%s, %s)", (team.org, team.users["admin"])),
                   (_claims(team, "admin"), "select public.remove_member(%s, %s)", (team.org, team.users["owner2"])))
    assert (outcome.sqlstate, outcome.waited) == ("42501", True), outcome
    assert _role(admin_conn, team, "admin") is None
    assert _role(admin_conn, team, "owner2") == "owner"


def test_a_demoted_inviter_cannot_invite(database_url: str, admin_conn: Any, team: Team) -> None:
    outcome = race(database_url,
                   (_claims(team, "owner1"), "select public.set_member_role(%s, %s, 'viewer')",
                    (team.org, team.users["admin"])),
                   (_claims(team, "admin"), "select public.invite_member(%s, 'race-invitee-x@example.test', 'admin')",
                    (team.org,)))
    assert (outcome.sqlstate, outcome.waited) == ("42501", True), outcome
    assert admin_conn.execute("select count(*) from public.invitations where org_id = %s",
                              (team.org,)).fetchone()["count"] == 0


def test_an_invitation_accepted_while_its_sender_is_demoted_is_refused(database_url: str, admin_conn: Any,
                                                                       team: Team) -> None:
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        set_request_context(conn, "authenticated", _claims(team, "admin"))
        invite = conn.execute("select public.invite_member(%s, 'race-invitee-y@example.test', 'admin') as i",
                              (team.org,)).fetchone()["i"]
        conn.commit()
    invitee = uuid.uuid4()
    admin_conn.execute(INSERT_USER_SQL, gotrue_user(invitee, "race-invitee-y@example.test"))
    outcome = race(database_url,
                   (_claims(team, "owner1"), "select public.set_member_role(%s, %s, 'manager')",
                    (team.org, team.users["admin"])),
                   (user_claims(str(invitee), email="race-invitee-y@example.test"),
                    "select public.accept_invitation(%s)", (invite["token"],)))
    assert (outcome.sqlstate, outcome.waited) == ("22023", True), outcome
    assert admin_conn.execute("select count(*) from public.memberships where user_id = %s",
                              (invitee,)).fetchone()["count"] == 0
