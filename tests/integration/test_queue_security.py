"""Procrastinate's schema is out of the API's reach, and request_sync is the only way in for users."""

from __future__ import annotations

import datetime as dt

import psycopg
import pytest

from tests.factories import build_world
from tests.harness import TestDB

ATTEMPTS = [
    "select count(*) from procrastinate.procrastinate_jobs",
    "select count(*) from procrastinate.procrastinate_workers",
    "insert into procrastinate.procrastinate_jobs (queue_name, task_name) values ('sync', 'sync_account')",
    "select procrastinate.procrastinate_defer_jobs_v1(array[row('sync', 'sync_account', 0, null, null, '{}', "
    "null)::procrastinate.procrastinate_job_to_defer_v1])",
    "select procrastinate_defer_jobs_v1(array[]::procrastinate.procrastinate_job_to_defer_v1[])",
    "select private.enqueue_due_syncs()",
    "select private.enqueue_sync(gen_random_uuid(), 'manual')",
    "select * from private.provider_tokens",
    "select * from private.oauth_states",
    "select * from private.job_failures",
    "select private.prune_job_failures()",
]


@pytest.mark.parametrize("persona", ["anon", "authenticated", "owner"])
@pytest.mark.parametrize("sql", ATTEMPTS)
def test_api_roles_cannot_reach_the_queue_or_private_tables(db: TestDB, persona: str, sql: str) -> None:
    world = build_world(db)
    context = db.as_anon() if persona == "anon" else db.as_user(
        world.users["outsider" if persona == "authenticated" else "owner"])
    with pytest.raises((psycopg.errors.InsufficientPrivilege, psycopg.errors.UndefinedFunction)), context:
        db.execute(sql)


def test_procrastinate_objects_live_outside_public(db: TestDB) -> None:
    assert db.value("select count(*) from pg_class where relname like 'procrastinate%%' "
                    "and relnamespace = 'public'::regnamespace") == 0
    assert db.value("select count(*) from pg_proc where proname like 'procrastinate%%' "
                    "and pronamespace = 'public'::regnamespace") == 0
    assert db.value("select count(*) from pg_class where relname = 'procrastinate_jobs' "
                    "and relnamespace = 'procrastinate'::regnamespace") == 1


def test_request_sync_queues_once_and_respects_the_cooldown(db: TestDB) -> None:
    world = build_world(db)
    params = world.params()
    with db.as_user(world.users["manager"]):
        run = db.value("select public.request_sync(%(account_a)s)", params)
        assert db.value("select public.request_sync(%(account_a)s)", params) == run
    job = db.one("select queue_name, task_name, queueing_lock, args from procrastinate.procrastinate_jobs "
                 "where args ->> 'sync_run_id' = %s", (str(run),))
    assert job == {"queue_name": "sync", "task_name": "sync_account", "queueing_lock": f"sync:{world.ids['account_a']}",
                   "args": {"sync_run_id": str(run)}}
    # The run finishes; an immediate new request is refused with HTTP 429 semantics.
    db.execute("update public.sync_runs set status = 'succeeded', finished_at = now() where id = %s", (run,))
    db.execute("delete from procrastinate.procrastinate_jobs where args ->> 'sync_run_id' = %s", (str(run),))
    with pytest.raises(psycopg.Error) as caught, db.as_user(world.users["manager"]):
        db.execute("select public.request_sync(%(account_a)s)", params)
    assert caught.value.sqlstate == "PT429"
    assert "try again in" in (caught.value.diag.message_primary or "")
    db.execute("update public.sync_runs set finished_at = %s where account_id = %s",
               (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1), world.ids["account_a"]))
    with db.as_user(world.users["manager"]):
        assert db.value("select public.request_sync(%(account_a)s)", params) != run


@pytest.mark.parametrize(("persona", "sqlstate"), [("viewer", "42501"), ("analyst", "42501"), ("outsider", "P0002"),
                                                   ("owner_b", "P0002"), ("platform_admin", "P0002")])
def test_request_sync_refuses_who_may_not_sync(db: TestDB, persona: str, sqlstate: str) -> None:
    world = build_world(db)
    with pytest.raises(psycopg.Error) as caught, db.as_user(world.users[persona]):
        db.execute("select public.request_sync(%(account_a)s)", world.params())
    assert caught.value.sqlstate == sqlstate


def test_request_sync_of_an_account_needing_reauth_says_reconnect(db: TestDB) -> None:
    world = build_world(db)
    db.execute("update public.connected_accounts set status = 'needs_reauth' where id = %(account_a)s", world.params())
    with pytest.raises(psycopg.Error) as caught, db.as_user(world.users["manager"]):
        db.execute("select public.request_sync(%(account_a)s)", world.params())
    assert caught.value.sqlstate == "22023" and "reconnect" in (caught.value.diag.message_primary or "")


def test_enqueue_due_syncs_dedupes_and_skips_inactive(db: TestDB) -> None:
    world = build_world(db)
    db.execute("update public.connected_accounts set next_sync_at = now() - interval '1 hour'")
    db.execute("update public.connected_accounts set status = 'revoked' where id = %(account_b)s", world.params())
    assert db.value("select private.enqueue_due_syncs()") == 1
    assert db.value("select private.enqueue_due_syncs()") == 1  # returns the queued run again, no new job
    assert db.value("select count(*) from procrastinate.procrastinate_jobs where queueing_lock = %s",
                    (f"sync:{world.ids['account_a']}",)) == 1
    # The factory's run had no job: it is closed as lost, and exactly one queued run remains.
    assert db.value("select count(*) from public.sync_runs where account_id = %(account_a)s "
                    "and status = 'queued'", world.params()) == 1
    assert db.value("select error from public.sync_runs where id = %(sync_a)s", world.params()).startswith("superseded")


def test_a_run_finished_while_its_job_closes_is_not_handed_out_as_pending(db: TestDB) -> None:
    """The task marks its run finished before Procrastinate marks the job done: a request in between gets a new run."""
    world = build_world(db)
    account = world.ids["account_a"]
    run = db.value("select private.enqueue_sync(%s, 'schedule')", (account,))
    db.execute("update procrastinate.procrastinate_jobs set status = 'doing' where args ->> 'sync_run_id' = %s",
               (str(run),))
    db.execute("update public.sync_runs set status = 'running', started_at = now() where id = %s", (run,))
    # Still running: the same run is pending.
    assert db.value("select private.enqueue_sync(%s, 'manual')", (account,)) == run
    # The task has written its result; its job is still 'doing' for a moment.
    db.execute("update public.sync_runs set status = 'succeeded', finished_at = now() where id = %s", (run,))
    again = db.value("select private.enqueue_sync(%s, 'schedule')", (account,))
    assert again != run
    assert db.value("select status::text from public.sync_runs where id = %s", (run,)) == "succeeded"
    assert db.one("select status::text as status, lock, queueing_lock from procrastinate.procrastinate_jobs "
                  "where args ->> 'sync_run_id' = %s", (str(again),)) == {
        "status": "todo", "lock": f"account:{account}", "queueing_lock": f"sync:{account}"}
    # And the new run is now the pending one.
    assert db.value("select private.enqueue_sync(%s, 'manual')", (account,)) == again


def test_daily_schedule_is_registered_with_pg_cron(db: TestDB) -> None:
    job = db.one("select schedule, command from cron.job where jobname = 'arti-daily-sync'")
    assert job == {"schedule": "0 2 * * *", "command": "select private.enqueue_due_syncs()"}
    db.execute("select private.set_sync_schedule('30 4 * * *')")
    assert db.value("select schedule from cron.job where jobname = 'arti-daily-sync'") == "30 4 * * *"
