"""Events are written by triggers in the transaction of the change, and fanned out there (rolled back here)."""

from __future__ import annotations

import uuid
from typing import Any

import psycopg
import pytest

from tests.factories import add_member, build_world
from tests.harness import TestDB

ENDPOINT_URL = "https://hooks.example.com/arti"
ALL_EVENTS = ["sync.failed", "account.needs_reauth", "anomaly.detected", "insight.created", "member.invited",
              "member.joined", "member.role_changed"]


def events_since(db: TestDB, org_id: Any, mark: Any) -> list[dict[str, Any]]:
    return db.execute("select id, type, payload, actor_id from private.outbox where org_id = %s and "
                      "created_at >= %s and id <> all(%s) order by created_at, type", (org_id, mark[0], mark[1]))


def mark(db: TestDB) -> tuple[Any, list[Any]]:
    """Outbox rows so far (the test's transaction shares one now(), so ids tell new rows apart)."""
    return db.value("select now()"), [r["id"] for r in db.execute("select id from private.outbox")]


def create_endpoint(db: TestDB, user: uuid.UUID, org_id: Any, url: str = ENDPOINT_URL,
                    events: list[str] | None = None) -> dict[str, Any]:
    with db.as_user(user):
        return db.value("select public.create_webhook_endpoint(%s, %s, %s)", (org_id, url, events or ALL_EVENTS))


def test_each_source_emits_its_event_with_ids_and_useful_fields(db: TestDB) -> None:
    world = build_world(db)
    p, users = world.params(), world.users
    before = mark(db)
    db.execute("update public.sync_runs set status = 'failed', error = 'HTTP 503', attempts = 3 "
               "where id = %(sync_a)s", p)
    db.execute("update public.sync_runs set error = 'still failed' where id = %(sync_a)s", p)  # no second event
    db.execute("update public.connected_accounts set status = 'needs_reauth', last_error = 'invalid_grant' "
               "where id = %(account_a)s", p)
    anomaly = db.value("insert into public.insights (org_id, artist_id, account_id, kind, metric, day, title, body, "
                       "evidence, dedupe_key) values (%(org_a)s, %(artist_a)s, %(account_a)s, 'anomaly', 'followers', "
                       "'2026-11-24', 'Followers +60%%', 'Far above usual.', '{\"z\": 4.2}', 'k-test') returning id", p)
    with db.as_user(users["analyst"]):
        answer = db.value("select private.record_answer(%(org_a)s, null, 'How did we grow?', 'It grew.', '[]', "
                          "'extractive', '{}')", p)
    with db.as_user(users["admin"]):
        invitation = db.value("select public.invite_member(%(org_a)s, 'guest@example.test', 'analyst') "
                              "->> 'invitation_id'", p)
        db.execute("select public.set_member_role(%(org_a)s, %(user_extra)s, 'analyst')", p)
    newcomer = db.create_user("newcomer@example.test")
    add_member(db, world.ids["org_a"], newcomer, "viewer")

    events = {e["type"]: e for e in events_since(db, world.ids["org_a"], before)}
    assert sorted(events) == sorted(ALL_EVENTS)
    assert len(events_since(db, world.ids["org_a"], before)) == len(ALL_EVENTS)
    assert events["sync.failed"]["payload"] == {
        "sync_run_id": str(world.ids["sync_a"]), "account_id": str(world.ids["account_a"]),
        "artist_id": str(world.ids["artist_a"]), "provider": "spotify", "trigger": "schedule", "error": "HTTP 503",
        "attempts": 3, "queued_at": events["sync.failed"]["payload"]["queued_at"]}
    assert events["account.needs_reauth"]["payload"] == {
        "account_id": str(world.ids["account_a"]), "artist_id": str(world.ids["artist_a"]), "provider": "spotify",
        "display_name": "spotify account", "reason": "invalid_grant"}
    assert events["anomaly.detected"]["payload"] == {
        "insight_id": str(anomaly), "artist_id": str(world.ids["artist_a"]), "account_id": str(world.ids["account_a"]),
        "metric": "followers", "day": "2026-11-24", "title": "Followers +60%", "body": "Far above usual.",
        "evidence": {"z": 4.2}}
    assert events["insight.created"]["payload"] == {
        "insight_id": str(answer), "title": "How did we grow?", "question": "How did we grow?",
        "answer_mode": "extractive", "created_by": str(users["analyst"])}
    assert events["insight.created"]["actor_id"] == users["analyst"]
    invited = events["member.invited"]["payload"]
    assert invited["invitation_id"] == invitation and invited["email"] == "guest@example.test"
    assert invited["role"] == "analyst" and invited["invited_by"] == str(users["admin"])
    assert "token" not in str(invited)
    assert events["member.role_changed"]["payload"] == {
        "user_id": str(users["extra"]), "email": db.value("select email from auth.users where id = %s",
                                                          (users["extra"],)),
        "old_role": "viewer", "new_role": "analyst", "changed_by": str(users["admin"])}
    assert events["member.joined"]["payload"] == {"user_id": str(newcomer), "email": "newcomer@example.test",
                                                  "role": "viewer"}


def test_fan_out_creates_one_delivery_per_subscribed_active_endpoint_and_one_job_per_endpoint(db: TestDB) -> None:
    world = build_world(db)
    p = world.params()
    subscribed = create_endpoint(db, world.users["admin"], world.ids["org_a"], events=["sync.failed"])
    also = create_endpoint(db, world.users["owner"], world.ids["org_a"], "https://n8n.example.com/webhook/x",
                           ["sync.failed", "member.joined"])
    create_endpoint(db, world.users["admin"], world.ids["org_a"], "https://other.example.com/", ["member.joined"])
    paused = create_endpoint(db, world.users["admin"], world.ids["org_a"], "https://paused.example.com/",
                             ["sync.failed"])
    with db.as_user(world.users["admin"]):
        db.execute("select public.update_webhook_endpoint(%s, active => false)", (paused["id"],))
    create_endpoint(db, world.users["owner_b"], world.ids["org_b"], "https://org-b.example.com/", ["sync.failed"])

    db.execute("update public.sync_runs set status = 'failed' where id = %(sync_a)s", p)
    event = db.one("select id from private.outbox where type = 'sync.failed' and org_id = %(org_a)s", p)
    deliveries = db.execute("select id, endpoint_id, event_type, status::text as status, attempts, retry_until > now() "
                            "as horizon_ahead from public.webhook_deliveries where event_id = %s order by endpoint_id",
                            (event["id"],))
    assert sorted(str(d["endpoint_id"]) for d in deliveries) == sorted([subscribed["id"], also["id"]])
    assert all(d["status"] == "pending" and d["attempts"] == 0 and d["horizon_ahead"] for d in deliveries)
    endpoints = [subscribed["id"], also["id"]]

    def drain_jobs() -> list[dict[str, Any]]:
        return db.execute("select queue_name, task_name, lock, queueing_lock, args, status::text as status, "
                          "priority, scheduled_at from procrastinate.procrastinate_jobs "
                          "where task_name = 'drain_webhook_endpoint' and args ->> 'endpoint_id' = any(%s)",
                          (endpoints,))

    jobs = drain_jobs()
    assert sorted(j["queueing_lock"] for j in jobs) == sorted(f"webhook-endpoint:{e}" for e in endpoints)
    assert all(j["queue_name"] == "webhooks" and j["status"] == "todo" and j["lock"] == j["queueing_lock"]
               and j["args"] == {"endpoint_id": j["queueing_lock"].removeprefix("webhook-endpoint:")}
               and j["priority"] == 0 and j["scheduled_at"] is None for j in jobs)
    # More events to the same endpoints add deliveries, never jobs.
    for _ in range(5):
        db.execute("select private.emit_event(%(org_a)s, 'sync.failed', '{}'::jsonb)", p)
    assert db.value("select count(*) from public.webhook_deliveries where endpoint_id = any(%s)", (endpoints,)) == 12
    assert drain_jobs() == jobs
    assert db.value("select count(*) from procrastinate.procrastinate_jobs where task_name = 'deliver_webhook'") == 0


def test_an_endpoint_waiting_for_a_retry_keeps_its_job_scheduled_until_then(db: TestDB) -> None:
    """The oldest pending delivery decides when the drain runs: a delivery in backoff pauses its endpoint."""
    world = build_world(db)
    p = world.params()
    endpoint = create_endpoint(db, world.users["admin"], world.ids["org_a"], events=["sync.failed"])
    lock = f"webhook-endpoint:{endpoint['id']}"
    db.execute("update public.sync_runs set status = 'failed' where id = %(sync_a)s", p)
    first = db.value("select id from public.webhook_deliveries where endpoint_id = %s", (endpoint["id"],))
    # Its first attempt failed: next attempt in an hour.
    db.execute("update public.webhook_deliveries set attempts = 1, next_attempt_at = now() + interval '1 hour', "
               "created_at = now() - interval '1 second' where id = %s", (first,))
    db.execute("select private.emit_event(%(org_a)s, 'sync.failed', '{}'::jsonb)", p)  # a new event meanwhile
    scheduled = db.value("select scheduled_at from procrastinate.procrastinate_jobs where queueing_lock = %s "
                         "and status = 'todo'", (lock,))
    assert scheduled == db.value("select next_attempt_at from public.webhook_deliveries where id = %s", (first,))
    # Replaying the delivery in backoff brings its endpoint's drain forward.
    with db.as_user(world.users["admin"]):
        db.execute("select public.replay_webhook_delivery(%s)", (first,))
    assert db.value("select scheduled_at from procrastinate.procrastinate_jobs where queueing_lock = %s "
                    "and status = 'todo'", (lock,)) is None
    assert db.value("select count(*) from procrastinate.procrastinate_jobs where queueing_lock = %s", (lock,)) == 1


def test_the_sweep_queues_endpoints_whose_drain_was_lost(db: TestDB) -> None:
    world = build_world(db)
    p = world.params()
    endpoint = create_endpoint(db, world.users["admin"], world.ids["org_a"], events=["sync.failed"])
    lock = f"webhook-endpoint:{endpoint['id']}"
    db.execute("update public.sync_runs set status = 'failed' where id = %(sync_a)s", p)
    db.execute("delete from procrastinate.procrastinate_jobs where queueing_lock = %s", (lock,))
    assert db.value("select private.sweep_webhook_deliveries()") == 0  # due for less than a minute
    db.execute("update public.webhook_deliveries set next_attempt_at = now() - interval '2 minutes' "
               "where endpoint_id = %s", (endpoint["id"],))
    assert db.value("select private.sweep_webhook_deliveries()") >= 1
    assert db.value("select count(*) from procrastinate.procrastinate_jobs where queueing_lock = %s "
                    "and status = 'todo'", (lock,)) == 1
    assert db.value("select private.sweep_webhook_deliveries()") == 0  # queued: nothing more to do


def test_events_of_organizations_without_endpoints_create_no_deliveries(db: TestDB) -> None:
    world = build_world(db)
    db.execute("update public.sync_runs set status = 'failed' where id = %(sync_a)s", world.params())
    assert db.value("select count(*) from private.outbox where org_id = %(org_a)s and type = 'sync.failed'",
                    world.params()) == 1
    assert db.value("select count(*) from public.webhook_deliveries where org_id = %(org_a)s", world.params()) == 0


def test_replay_rpc_requeues_with_the_same_event_and_refuses_others(db: TestDB) -> None:
    world = build_world(db)
    p = world.params()
    endpoint = create_endpoint(db, world.users["admin"], world.ids["org_a"], events=["sync.failed"])
    lock = f"webhook-endpoint:{endpoint['id']}"
    db.execute("update public.sync_runs set status = 'failed' where id = %(sync_a)s", p)
    delivery = db.one("select id, event_id from public.webhook_deliveries where org_id = %(org_a)s", p)
    db.execute("update public.webhook_deliveries set status = 'dead', next_attempt_at = null where id = %s",
               (delivery["id"],))
    db.execute("delete from procrastinate.procrastinate_jobs where queueing_lock = %s", (lock,))
    with db.as_user(world.users["admin"]):
        result = db.value("select public.replay_webhook_delivery(%s)", (delivery["id"],))
        again = db.value("select public.replay_webhook_delivery(%s)", (delivery["id"],))
    assert result["event_id"] == str(delivery["event_id"]) and result["previous_status"] == "dead"
    assert again["previous_status"] == "pending"
    assert db.value("select count(*) from procrastinate.procrastinate_jobs where queueing_lock = %s and "
                    "status = 'todo'", (lock,)) == 1
    assert db.value("select status::text from public.webhook_deliveries where id = %s", (delivery["id"],)) == "pending"
    for persona, sqlstate in (("manager", "42501"), ("owner_b", "P0002"), ("outsider", "P0002")):
        with pytest.raises(psycopg.Error) as caught, db.as_user(world.users[persona]):
            db.execute("select public.replay_webhook_delivery(%s)", (delivery["id"],))
        assert caught.value.sqlstate == sqlstate, persona


def test_replay_waits_for_a_running_attempt_but_not_for_a_job_being_closed(db: TestDB) -> None:
    """23505 while an attempt runs; once the attempt has recorded its result, the running drain is no obstacle."""
    world = build_world(db)
    p = world.params()
    endpoint = create_endpoint(db, world.users["admin"], world.ids["org_a"], events=["sync.failed"])
    db.execute("update public.sync_runs set status = 'failed' where id = %(sync_a)s", p)
    delivery = db.value("select id from public.webhook_deliveries where org_id = %(org_a)s", p)
    lock = f"webhook-endpoint:{endpoint['id']}"
    # The endpoint's drain runs and has opened an attempt of this delivery.
    db.execute("update procrastinate.procrastinate_jobs set status = 'doing' where queueing_lock = %s", (lock,))
    db.execute("update public.webhook_deliveries set attempts = 1 where id = %s", (delivery,))
    db.execute("insert into public.webhook_delivery_attempts (delivery_id, org_id, attempt) values (%s, %s, 1)",
               (delivery, world.ids["org_a"]))
    with pytest.raises(psycopg.Error) as caught, db.as_user(world.users["admin"]):
        db.execute("select public.replay_webhook_delivery(%s)", (delivery,))
    assert caught.value.sqlstate == "23505" and "in progress" in (caught.value.diag.message_primary or "")
    # The attempt has been recorded; the drain is still running (other deliveries, or closing).
    db.execute("update public.webhook_deliveries set status = 'delivered', delivered_at = now(), "
               "next_attempt_at = null where id = %s", (delivery,))
    db.execute("update public.webhook_delivery_attempts set outcome = 'delivered', finished_at = now() "
               "where delivery_id = %s", (delivery,))
    with db.as_user(world.users["admin"]):
        result = db.value("select public.replay_webhook_delivery(%s)", (delivery,))
    assert result["previous_status"] == "delivered" and result["status"] == "pending"
    jobs = db.execute("select status::text as status, lock from procrastinate.procrastinate_jobs "
                      "where queueing_lock = %s order by id", (lock,))
    assert jobs == [{"status": "doing", "lock": lock}, {"status": "todo", "lock": lock}]
