"""End to end: committed events reach a real receiver through a real worker, signed, retried, dead-lettered."""

from __future__ import annotations

import argparse
import signal
import time
from typing import Any

import psycopg

from arti.settings import Settings
from tests.harness import wait_until
from tests.webhooks.conftest import Receiver, Reply, verify_signature


def test_a_committed_event_is_delivered_once_per_endpoint_signed(make_org: Any, receiver: Receiver, settings: Any,
                                                                  start_worker: Any) -> None:
    org = make_org()
    by_ip = org.create_endpoint(receiver.url("/a"), ["sync.failed", "anomaly.detected"], "n8n flow A")
    by_name = org.create_endpoint(receiver.url("/b", host="localhost"), ["sync.failed"])  # resolved by DNS
    other_events = org.create_endpoint(receiver.url("/c"), ["member.joined"])
    disabled = org.create_endpoint(receiver.url("/d"), ["sync.failed"])
    with org.as_user(org.admin):
        org.conn.execute("select public.update_webhook_endpoint(%s, active => false)", (disabled["id"],))
    other_org = make_org()
    other_org.create_endpoint(receiver.url("/e"), ["sync.failed"])
    start_worker()

    run = org.fail_sync("Spotify answered 503")
    first, second = receiver.wait_for("/a")[0], receiver.wait_for("/b")[0]
    wait_until(lambda: [d["status"] for d in org.deliveries(by_ip["id"]) + org.deliveries(by_name["id"])]
               == ["delivered", "delivered"], what="both deliveries to be recorded")
    time.sleep(1.5)  # anything extra would arrive now
    assert len(receiver.on("/a")) == 1 and len(receiver.on("/b")) == 1
    assert receiver.on("/c") == [] and receiver.on("/d") == [] and receiver.on("/e") == []

    for received, endpoint in ((first, by_ip), (second, by_name)):
        assert verify_signature(endpoint["secret"], received)
        assert not verify_signature(other_events["secret"], received)
        assert received.headers["content-type"] == "application/json"
        body = received.json()
        assert set(body) == {"id", "type", "created_at", "org_id", "data"}
        assert body["type"] == "sync.failed" and body["org_id"] == str(org.id)
        assert received.headers["x-arti-event-id"] == body["id"]
        assert body["data"]["sync_run_id"] == str(run) and body["data"]["error"] == "Spotify answered 503"
        assert body["data"]["provider"] == "spotify" and body["data"]["account_id"] == str(org.account)
    assert first.json()["id"] == second.json()["id"]  # one event, two endpoints
    assert second.headers["host"] == f"localhost:{receiver.port}"
    delivery = org.deliveries(by_ip["id"])[0]
    assert delivery["attempts"] == 1 and delivery["last_status_code"] == 200 and delivery["delivered_at"]
    assert [a["outcome"] for a in org.attempts(delivery["id"])] == ["delivered"]


def test_a_rolled_back_change_emits_nothing(make_org: Any, receiver: Receiver, settings: Any,
                                            start_worker: Any, database_url: str) -> None:
    org = make_org()
    endpoint = org.create_endpoint(receiver.url("/rb"), ["sync.failed", "member.role_changed"])
    start_worker()
    run = org.conn.execute("insert into public.sync_runs (org_id, account_id, trigger) values (%s, %s, 'manual') "
                           "returning id", (org.id, org.account)).fetchone()["id"]
    outbox_before = org.conn.execute("select count(*) as n from private.outbox").fetchone()["n"]
    jobs_before = org.conn.execute("select count(*) as n from procrastinate.procrastinate_jobs "
                                   "where task_name = 'drain_webhook_endpoint'").fetchone()["n"]
    with psycopg.connect(database_url) as tx:
        tx.execute("update public.sync_runs set status = 'failed', error = 'boom' where id = %s", (run,))
        tx.execute("update public.memberships set role = 'admin' where org_id = %s and user_id = %s",
                   (org.id, org.viewer))
        # Inside the transaction, the events, deliveries and jobs exist...
        assert tx.execute("select count(*) from public.webhook_deliveries where endpoint_id = %s",
                          (endpoint["id"],)).fetchone() == (2,)
        tx.rollback()
    # ...and after the rollback nothing is left and nothing is sent.
    time.sleep(2.0)
    assert org.conn.execute("select count(*) as n from private.outbox").fetchone()["n"] == outbox_before
    assert org.conn.execute("select count(*) as n from procrastinate.procrastinate_jobs "
                            "where task_name = 'drain_webhook_endpoint'").fetchone()["n"] == jobs_before
    assert org.deliveries(endpoint["id"]) == []
    assert receiver.on("/rb") == []
    # The same change committed is delivered (the worker was listening all along).
    org.conn.execute("update public.sync_runs set status = 'failed', error = 'boom' where id = %s", (run,))
    assert receiver.wait_for("/rb")[0].json()["data"]["sync_run_id"] == str(run)


def test_500_then_200_is_retried_and_delivered(make_org: Any, receiver: Receiver, settings: Any,
                                               start_worker: Any) -> None:
    org = make_org()
    endpoint = org.create_endpoint(receiver.url("/flaky"), ["sync.failed"])
    receiver.plan("/flaky", Reply(500, body=b"upstream broke"), Reply(200))
    start_worker()
    org.fail_sync()
    first, second = receiver.wait_for("/flaky", 2, timeout=20)
    assert first.json()["id"] == second.json()["id"]
    assert first.headers["x-arti-event-id"] == second.headers["x-arti-event-id"]
    assert verify_signature(endpoint["secret"], second)
    delivery = wait_until(lambda: next((d for d in org.deliveries(endpoint["id"]) if d["status"] == "delivered"),
                                       None), what="the delivery to be delivered")
    assert delivery["attempts"] == 2 and delivery["last_error"] is None
    attempts = org.attempts(delivery["id"])
    assert [(a["status_code"], a["outcome"]) for a in attempts] == [(500, "retry"), (200, "delivered")]


def test_429_and_404_are_retried_and_other_4xx_fail_without_retry(make_org: Any, receiver: Receiver, settings: Any,
                                                             start_worker: Any) -> None:
    org = make_org()
    limited = org.create_endpoint(receiver.url("/limited"), ["sync.failed"])
    refusing = org.create_endpoint(receiver.url("/refusing"), ["sync.failed"])
    receiver.plan("/limited", Reply(429, headers={"Retry-After": "2"}), Reply(200))
    starting = org.create_endpoint(receiver.url("/starting"), ["sync.failed"])
    # A receiver starting up (n8n) answers 404 before its routes exist: retried like a 5xx, then delivered.
    receiver.plan("/starting", Reply(404, body=b"Cannot POST /webhook/arti-events"), Reply(200))
    receiver.plan("/refusing", default=Reply(410, body=b"gone"))
    start_worker()
    org.fail_sync()
    first, second = receiver.wait_for("/limited", 2, timeout=20)
    assert second.at - first.at >= 1.9
    wait_until(lambda: org.deliveries(limited["id"])[0]["status"] == "delivered", what="the 429 delivery")
    refused = wait_until(lambda: next((d for d in org.deliveries(refusing["id"]) if d["status"] == "failed"), None),
                         what="the 410 delivery to fail")
    assert refused["attempts"] == 1 and refused["last_status_code"] == 410 and refused["next_attempt_at"] is None
    assert len(receiver.on("/refusing")) == 1
    assert org.attempts(refused["id"])[0]["outcome"] == "failed"
    started = wait_until(lambda: next((d for d in org.deliveries(starting["id"]) if d["status"] == "delivered"),
                                      None), what="the delivery first answered 404 to be delivered")
    assert [(a["status_code"], a["outcome"]) for a in org.attempts(started["id"])] == \
        [(404, "retry"), (200, "delivered")]


def test_a_dead_endpoint_is_dead_after_the_horizon_with_attempts_logged(make_org: Any, receiver: Receiver,
                                                                        settings: Any, start_worker: Any) -> None:
    settings(retry_horizon_seconds="3", retry_base_seconds="0.5")
    org = make_org()
    failing = org.create_endpoint(receiver.url("/down"), ["sync.failed"])
    receiver.plan("/down", default=Reply(500))
    closed = Receiver()  # bound then closed: nothing listens on its port
    closed.server.server_close()
    refused = org.create_endpoint(closed.url("/nobody"), ["sync.failed"])
    start_worker()
    org.fail_sync()
    for endpoint in (failing, refused):
        dead = wait_until(lambda e=endpoint: next((d for d in org.deliveries(e["id"]) if d["status"] == "dead"),
                                                  None), timeout=25, what="the delivery to be dead")
        assert dead["attempts"] >= 2 and "gave up after" in dead["last_error"]
        assert dead["next_attempt_at"] is None
        attempts = org.attempts(dead["id"])
        assert len(attempts) == dead["attempts"]
        assert [a["outcome"] for a in attempts] == ["retry"] * (len(attempts) - 1) + ["dead"]
    assert all(a["status_code"] == 500 for a in org.attempts(org.deliveries(failing["id"])[0]["id"]))
    assert "connection failed" in org.deliveries(refused["id"])[0]["last_error"]
    assert len(receiver.on("/down")) == org.deliveries(failing["id"])[0]["attempts"]


def test_worker_killed_mid_delivery_delivers_after_restart(make_org: Any, receiver: Receiver, settings: Any,
                                                           start_worker: Any) -> None:
    org = make_org()
    endpoint = org.create_endpoint(receiver.url("/slow"), ["sync.failed"])
    receiver.plan("/slow", Reply(200, delay=30), Reply(200))
    first_worker = start_worker()
    org.fail_sync()
    receiver.wait_for("/slow", 1)
    first_worker.send_signal(signal.SIGKILL)
    first_worker.wait(timeout=10)
    time.sleep(3.5)  # the dead worker's heartbeat goes stale
    start_worker()
    first, second = receiver.wait_for("/slow", 2, timeout=30)
    assert first.headers["x-arti-event-id"] == second.headers["x-arti-event-id"]
    assert verify_signature(endpoint["secret"], second)
    delivery = wait_until(lambda: next((d for d in org.deliveries(endpoint["id"]) if d["status"] == "delivered"),
                                       None), what="the delivery to be recorded")
    assert delivery["attempts"] == 2
    assert [a["outcome"] for a in org.attempts(delivery["id"])] == ["interrupted", "delivered"]


def test_replay_from_the_cli_sends_the_same_event_again(make_org: Any, receiver: Receiver, settings: Any,
                                                        start_worker: Any, database_url: str,
                                                        capsys: Any) -> None:
    from arti.cli_webhooks import add_commands

    org = make_org()
    endpoint = org.create_endpoint(receiver.url("/replay"), ["sync.failed"])
    start_worker()
    org.fail_sync()
    original = receiver.wait_for("/replay")[0]
    delivery = wait_until(lambda: next((d for d in org.deliveries(endpoint["id"]) if d["status"] == "delivered"),
                                       None), what="the first delivery")

    parser = argparse.ArgumentParser(prog="arti")
    add_commands(parser.add_subparsers(dest="command", required=True))
    config = Settings(SUPABASE_DB_URL=database_url)
    args = parser.parse_args(["webhooks", "list", "--org", str(org.id)])
    assert args.func(config, args) == 0
    assert str(delivery["id"]) in capsys.readouterr().out
    args = parser.parse_args(["webhooks", "replay", str(delivery["id"])])
    assert args.func(config, args) == 0
    assert "queued" in capsys.readouterr().out

    replayed = receiver.wait_for("/replay", 2)[1]
    assert replayed.headers["x-arti-event-id"] == original.headers["x-arti-event-id"]
    assert replayed.json() == original.json()
    assert verify_signature(endpoint["secret"], replayed)
    wait_until(lambda: org.deliveries(endpoint["id"])[0]["attempts"] == 2
               and org.deliveries(endpoint["id"])[0]["status"] == "delivered", what="the replay to be recorded")


def test_delivery_time_guard_refuses_a_host_that_became_loopback_only(make_org: Any, receiver: Receiver,
                                                                      settings: Any, start_worker: Any) -> None:
    org = make_org()
    endpoint = org.create_endpoint(receiver.url("/guarded", host="localhost"), ["sync.failed"])
    settings(allow_loopback_http="false")  # e.g. a production database restored from development
    start_worker()
    org.fail_sync()
    failed = wait_until(lambda: next((d for d in org.deliveries(endpoint["id"]) if d["status"] == "failed"), None),
                        what="the delivery to be refused")
    assert "refused" in failed["last_error"] and "loopback" in failed["last_error"]
    assert org.attempts(failed["id"])[0]["outcome"] == "refused"
    assert receiver.on("/guarded") == []

