"""The fan-out bound (issue 14, item 4): a flood of events queues one job per endpoint, not one per delivery.

200 answers (insight.created) against 7 endpoints: 1,400 deliveries, written by 4 concurrent writers while a
real worker drains them into a loopback receiver. At every moment at most one drain job per endpoint waits
(queueing lock webhook-endpoint:<id>) and at most one runs (its lock): never more than 14 live jobs, where the
former design queued 1,400. Every delivery still arrives, signed, once per endpoint.
"""

from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import psycopg
from psycopg.rows import dict_row

from arti.db import as_role, user_claims
from arti.users import INSERT_USER_SQL
from tests.harness import gotrue_user, wait_until
from tests.webhooks.conftest import Receiver, verify_signature

ENDPOINTS = 7
EVENTS = 200
WRITERS = 4


def live_jobs(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """Waiting and running jobs of the webhooks queue, whatever their task (the periodic sweep aside)."""
    rows = conn.execute(
        "select status::text as status, count(*) as n from procrastinate.procrastinate_jobs "
        "where queue_name = 'webhooks' and task_name <> 'sweep_webhook_deliveries' and status in ('todo', 'doing') "
        "group by status").fetchall()
    return {r["status"]: r["n"] for r in rows}


def test_200_answers_to_7_endpoints_queue_at_most_one_job_per_endpoint_and_all_arrive(
        make_org: Any, receiver: Receiver, settings: Any, start_worker: Any, database_url: str,
        conn: psycopg.Connection[Any]) -> None:
    org = make_org()
    endpoints = [org.create_endpoint(receiver.url(f"/flood-{i}"), ["insight.created"]) for i in range(ENDPOINTS)]
    ids = [e["id"] for e in endpoints]
    analyst = uuid.uuid4()
    conn.execute(INSERT_USER_SQL, gotrue_user(analyst, f"analyst-{analyst.hex[:8]}@x.test"))
    conn.execute("insert into public.memberships (org_id, user_id, role) values (%s, %s, 'analyst')",
                 (org.id, analyst))
    start_worker()

    most = {"todo": 0, "doing": 0, "total": 0}
    done = threading.Event()

    def watch() -> None:
        with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as own:
            while not done.is_set():
                jobs = live_jobs(own)
                most["todo"] = max(most["todo"], jobs.get("todo", 0))
                most["doing"] = max(most["doing"], jobs.get("doing", 0))
                most["total"] = max(most["total"], sum(jobs.values()))
                time.sleep(0.01)

    def ask(n: int) -> None:
        with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as own, \
                as_role(own, "authenticated", user_claims(str(analyst))):
            own.execute("select private.record_answer(%s, null, %s, 'It grew.', '[]', 'extractive', '{}')",
                        (org.id, f"How did it grow? {n}"))

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        with ThreadPoolExecutor(WRITERS) as writers:
            list(writers.map(ask, range(EVENTS)))
        assert conn.execute("select count(*) as n from public.webhook_deliveries where org_id = %s",
                            (org.id,)).fetchone()["n"] == ENDPOINTS * EVENTS
        wait_until(lambda: conn.execute(
            "select count(*) filter (where status = 'delivered') = count(*) as all_done "
            "from public.webhook_deliveries where org_id = %s", (org.id,)).fetchone()["all_done"],
            timeout=240, what="all 1,400 deliveries to be delivered")
    finally:
        done.set()
        watcher.join(timeout=5)

    # The bound: never more than one waiting and one running drain per endpoint.
    assert most["todo"] <= ENDPOINTS and most["doing"] <= ENDPOINTS and most["total"] <= 2 * ENDPOINTS, most
    assert most["total"] >= 1  # the watcher did see the queue
    wait_until(lambda: not live_jobs(conn), timeout=20, what="the drains to finish")
    created = conn.execute("select count(*) as n from procrastinate.procrastinate_jobs where queueing_lock = any(%s)",
                           ([f"webhook-endpoint:{e}" for e in ids],)).fetchone()["n"]
    assert created < ENDPOINTS * EVENTS / 4, created  # jobs follow the drains, not the deliveries
    print(f"live drain jobs at most: {most}; drain jobs created in all: {created}")
    assert conn.execute("select count(*) as n from procrastinate.procrastinate_jobs where task_name = "
                        "'deliver_webhook'").fetchone()["n"] == 0

    events = {r["id"] for r in conn.execute("select id::text from private.outbox where org_id = %s "
                                            "and type = 'insight.created'", (org.id,)).fetchall()}
    assert len(events) == EVENTS
    for endpoint in endpoints:
        received = receiver.on(f"/flood-{endpoints.index(endpoint)}")
        assert sorted(r.headers["x-arti-event-id"] for r in received) == sorted(events)  # each once, none lost
        assert all(verify_signature(endpoint["secret"], r) for r in received[:5])
    attempts = conn.execute("select count(*) as n, count(*) filter (where outcome = 'delivered') as ok "
                            "from public.webhook_delivery_attempts where org_id = %s", (org.id,)).fetchone()
    assert attempts == {"n": ENDPOINTS * EVENTS, "ok": ENDPOINTS * EVENTS}
    # Answers notify nobody (the asker has the answer): no 800 notifications.
    assert conn.execute("select count(*) as n from public.notifications where org_id = %s "
                        "and kind = 'insight.created'", (org.id,)).fetchone()["n"] == 0
