"""In-app notifications from the same events, and the RPCs that mark them read."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from tests.factories import World, add_member, build_world
from tests.harness import TestDB


def recipients(db: TestDB, world: World, kind: str) -> set[str]:
    """Personas of org A notified with this kind in the test's transaction."""
    by_id = {v: k for k, v in world.users.items()}
    rows = db.execute("select user_id from public.notifications where org_id = %(org_a)s and kind = %(kind)s "
                      "and data ? 'event_id'",
                      {**world.params(), "kind": kind})
    names = [by_id.get(r["user_id"], "someone else") for r in rows]
    assert len(names) == len(set(names)), f"duplicate {kind} notifications: {names}"
    return set(names)


def test_sync_failures_and_reauth_go_to_who_can_reconnect(db: TestDB) -> None:
    world = build_world(db)
    db.execute("update public.sync_runs set status = 'failed', error = 'HTTP 503' where id = %(sync_a)s",
               world.params())
    db.execute("update public.connected_accounts set status = 'needs_reauth', last_error = 'invalid_grant' "
               "where id = %(account_a)s", world.params())
    assert recipients(db, world, "sync.failed") == {"manager", "admin", "owner"}
    assert recipients(db, world, "account.needs_reauth") == {"manager", "admin", "owner"}
    note = db.one("select title, body, data from public.notifications where kind = 'sync.failed' and user_id = %s",
                  (world.users["manager"],))
    assert note["title"] == "Sync failed: spotify for Artist A" and note["body"] == "HTTP 503"
    assert note["data"]["sync_run_id"] == str(world.ids["sync_a"]) and note["data"]["event_id"]


def test_the_sync_jobs_own_reauth_notice_is_not_repeated(db: TestDB) -> None:
    """arti.tokens.mark_needs_reauth notifies too; the outbox's notification already says it."""
    world = build_world(db)
    db.execute("update public.connected_accounts set status = 'needs_reauth' where id = %(account_a)s",
               world.params())
    db.execute(
        "insert into public.notifications (user_id, org_id, kind, title, body, data) "
        "select m.user_id, a.org_id, 'account.needs_reauth', 'Reconnect', 'x', jsonb_build_object('account_id', a.id) "
        "from public.connected_accounts a join public.memberships m on m.org_id = a.org_id "
        "join public.role_permissions rp on rp.role = m.role and rp.permission = 'accounts.connect' "
        "where a.id = %(account_a)s", world.params())
    assert recipients(db, world, "account.needs_reauth") == {"manager", "admin", "owner"}


def test_anomalies_go_to_every_member_and_answers_to_nobody(db: TestDB) -> None:
    """An answer is the asker's (returned to them); it is still an event for webhooks, not a notification."""
    world = build_world(db)
    everyone = {"viewer", "analyst", "manager", "admin", "owner", "extra"}
    assert recipients(db, world, "anomaly.detected") == everyone  # the factory's anomaly
    with db.as_user(world.users["analyst"]):
        db.execute("select private.record_answer(%(org_a)s, null, 'How did we grow?', 'It grew.', '[]', "
                   "'extractive', '{}')", world.params())
    assert db.value("select count(*) from private.outbox where org_id = %(org_a)s and type = 'insight.created'",
                    world.params()) == 1
    assert recipients(db, world, "insight.created") == set()


def test_membership_events_go_to_admins_and_the_member_concerned(db: TestDB) -> None:
    world = build_world(db)
    # The factory's invitation was sent by the admin: the owner hears of it.
    assert recipients(db, world, "member.invited") == {"owner"}
    newcomer = db.create_user("newcomer@example.test", full_name="New Comer")
    add_member(db, world.ids["org_a"], newcomer, "viewer")
    assert "New Comer joined as viewer" in db.value(
        "select title from public.notifications where kind = 'member.joined' and user_id = %s "
        "and data ->> 'user_id' = %s", (world.users["owner"], str(newcomer)))
    with db.as_user(world.users["admin"]):
        db.execute("select public.set_member_role(%(org_a)s, %(user_extra)s, 'analyst')", world.params())
    assert recipients(db, world, "member.role_changed") == {"owner", "extra"}
    title = db.value("select title from public.notifications where kind = 'member.role_changed' and user_id = %s",
                     (world.users["extra"],))
    assert title.endswith("is now analyst (was viewer)")


def test_mark_read_rpcs_count_and_stay_within_the_callers_rows(db: TestDB) -> None:
    world = build_world(db)
    db.execute("update public.sync_runs set status = 'failed' where id = %(sync_a)s", world.params())
    manager = world.users["manager"]
    mine = db.value("select id from public.notifications where user_id = %s and kind = 'sync.failed'", (manager,))
    unread = db.value("select count(*) from public.notifications where user_id = %s and read_at is null", (manager,))
    assert unread >= 2
    with db.as_user(manager):
        assert db.value("select public.mark_notification_read(%s)", (mine,)) == 1
        assert db.value("select public.mark_notification_read(%s)", (mine,)) == 0
        assert db.value("select public.mark_all_notifications_read()") == unread - 1
        assert db.value("select public.mark_all_notifications_read()") == 0
    others_unread = db.value("select count(*) from public.notifications where user_id <> %s and read_at is null",
                             (manager,))
    assert others_unread > 0
    for target in (world.ids["notification"], "00000000-0000-0000-0000-000000000000"):
        with pytest.raises(psycopg.Error) as caught, db.as_user(manager):
            db.execute("select public.mark_notification_read(%s)", (target,))
        assert caught.value.sqlstate == "P0002"
    assert db.value("select read_at from public.notifications where id = %(notification)s", world.params()) is None
    assert db.value("select count(*) from public.notifications where user_id <> %s and read_at is null",
                    (manager,)) == others_unread


def test_events_never_notify_another_organization(db: TestDB) -> None:
    world = build_world(db)
    db.execute("update public.sync_runs set status = 'failed' where id = %(sync_a)s", world.params())
    rows: list[dict[str, Any]] = db.execute(
        "select n.user_id from public.notifications n where n.org_id = %(org_a)s and not exists "
        "(select 1 from public.memberships m where m.org_id = n.org_id and m.user_id = n.user_id)", world.params())
    assert rows == []
    assert db.value("select count(*) from public.notifications where user_id = %(user_owner_b)s",
                    world.params()) == 0
