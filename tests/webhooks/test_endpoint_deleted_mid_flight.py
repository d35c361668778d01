"""An endpoint deleted while its delivery is in flight: the job ends cleanly, nothing fails or retries.

delete_webhook_endpoint removes the endpoint with its delivery log; the worker's attempt then finds no
delivery to record its outcome on. That was an AssertionError (job failed, recorded in job_failures);
now the attempt ends as cancelled, whatever the receiver answered (200, or a 500 that would be retried).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from tests.harness import wait_until
from tests.webhooks.conftest import Receiver, Reply


def jobs_about(org: Any, ids: list[str]) -> list[dict[str, Any]]:
    """The Procrastinate jobs whose arguments name one of these deliveries or endpoints."""
    return org.conn.execute(
        "select id, status::text as status, attempts, task_name from procrastinate.procrastinate_jobs "
        "where queue_name = 'webhooks' and exists (select 1 from unnest(%s::text[]) as i(x) "
        "where args::text like '%%' || i.x || '%%') order by id", (ids,)).fetchall()


def failures_about(org: Any, ids: list[str]) -> list[dict[str, Any]]:
    return org.conn.execute(
        "select task_name, error_type, error_message from private.job_failures where exists "
        "(select 1 from unnest(%s::text[]) as i(x) where task_args::text like '%%' || i.x || '%%')", (ids,)).fetchall()


def test_deleting_the_endpoint_during_a_delivery_ends_it_cleanly(make_org: Any, receiver: Receiver, settings: Any,
                                                                 start_worker: Any, tmp_path: Path) -> None:
    org = make_org()
    answered = org.create_endpoint(receiver.url("/gone-ok"), ["sync.failed"])
    failing = org.create_endpoint(receiver.url("/gone-500"), ["sync.failed"])
    receiver.plan("/gone-ok", default=Reply(200, delay=3))
    receiver.plan("/gone-500", default=Reply(500, delay=3))  # would be retried, were the delivery still there
    start_worker()
    org.fail_sync()
    receiver.wait_for("/gone-ok")
    receiver.wait_for("/gone-500")
    ids = [str(d["id"]) for e in (answered, failing) for d in org.deliveries(e["id"])] + \
        [str(answered["id"]), str(failing["id"])]
    assert len(ids) == 4
    with org.as_user(org.admin):  # both requests are still waiting for their answers
        for endpoint in (answered, failing):
            org.conn.execute("select public.delete_webhook_endpoint(%s)", (endpoint["id"],))
    assert org.deliveries(answered["id"]) == [] and org.deliveries(failing["id"]) == []

    jobs = wait_until(lambda: (found := jobs_about(org, ids)) and all(j["status"] not in ("todo", "doing")
                                                                       for j in found) and found,
                      timeout=30, what="the delivery jobs to end")
    try:
        assert {j["status"] for j in jobs} == {"succeeded"}, jobs
        assert failures_about(org, ids) == []
        time.sleep(2)  # a retry, had one been scheduled, would arrive now
        assert len(receiver.on("/gone-ok")) == 1 and len(receiver.on("/gone-500")) == 1
        assert all(j["status"] == "succeeded" for j in jobs_about(org, ids))
        logs = "".join(p.read_text(errors="replace") for p in tmp_path.glob("worker-*.log"))
        assert "AssertionError" not in logs
        assert "cancelled" in logs
    finally:
        org.conn.execute("delete from procrastinate.procrastinate_jobs where id = any(%s)", ([j["id"] for j in jobs],))
