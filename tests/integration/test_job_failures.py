"""Failed job attempts are recorded with their error (private.job_failures) and listed by `arti jobs --failed`."""

from __future__ import annotations

import argparse
import logging
import random
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import procrastinate
import psycopg
import pytest
from procrastinate.jobs import Job
from psycopg.types.json import Jsonb

import jobs.sync  # noqa: F401  (registers sync_account and its retry strategy on the app)
from arti.cli import build_parser
from arti.crypto import generate_key_setting
from arti.providers.base import ProviderUnavailable
from arti.settings import PROJECT_ROOT, Settings
from jobs.app import app, make_connector
from jobs.failures import MAX_MESSAGE_CHARS, record_failures
from tests.harness import TestDB, child_env, wait_until


@pytest.fixture
def job_ids(conn: psycopg.Connection[Any]) -> Iterator[list[int]]:
    """Job ids a test creates or invents; their jobs and failure records are removed afterwards."""
    ids: list[int] = []
    yield ids
    conn.execute("delete from private.job_failures where job_id = any(%s)", (ids,))
    conn.execute("delete from procrastinate.procrastinate_jobs where id = any(%s)", (ids,))


def failures_of(conn: psycopg.Connection[Any], job_id: int) -> list[dict[str, Any]]:
    return conn.execute("select queue_name, task_name, task_args, attempt, will_retry, error_type, error_message, "
                        "worker from private.job_failures where job_id = %s order by attempt",
                        (job_id,)).fetchall()


def defer(conn: psycopg.Connection[Any], queue: str, task: str, task_args: dict[str, Any],
          in_seconds: float | None = None) -> int:
    """A job deferred the way the project's SQL defers them (procrastinate_defer_jobs_v1); returns its id."""
    return conn.execute(
        "select unnest(procrastinate.procrastinate_defer_jobs_v1(array[row(%s, %s, 0, null, null, %s, "
        "now() + make_interval(secs => %s))::procrastinate.procrastinate_job_to_defer_v1])) as id",
        (queue, task, Jsonb(task_args), in_seconds)).fetchone()["id"]


def jobs_command(database_url: str, capsys: Any, *argv: str) -> str:
    args = build_parser().parse_args(["jobs", *argv])
    assert args.func(Settings(SUPABASE_DB_URL=database_url), args) == 0
    return capsys.readouterr().out


def test_a_job_failing_in_a_real_worker_is_recorded_and_listed(conn: psycopg.Connection[Any], database_url: str,
                                                               job_ids: list[int], capsys: Any) -> None:
    job_id = defer(conn, "insights", "refresh_insights", {"account_id": "not-an-account-id"})
    job_ids.append(job_id)
    env = child_env(SUPABASE_DB_URL=database_url, ARTI_ENCRYPTION_KEYS=generate_key_setting("k1"))
    worker = subprocess.Popen([sys.executable, "-m", "arti.cli", "worker", "--concurrency", "1", "--queue",
                               "insights"], cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    try:
        wait_until(lambda: conn.execute("select status::text as s from procrastinate.procrastinate_jobs "
                                        "where id = %s", (job_id,)).fetchone()["s"] == "failed",
                   timeout=30, what="the job to fail")
    finally:
        worker.terminate()
        worker.wait(timeout=20)
    [failure] = failures_of(conn, job_id)
    assert failure["queue_name"] == "insights" and failure["task_name"] == "refresh_insights"
    assert failure["task_args"] == {"account_id": "not-an-account-id"}
    assert failure["attempt"] == 1 and failure["will_retry"] is False  # refresh_insights has no retry strategy
    assert failure["error_type"] == "psycopg.errors.InvalidTextRepresentation"
    assert 'invalid input syntax for type uuid: "not-an-account-id"' in failure["error_message"]
    assert failure["worker"] == f"{socket.gethostname()}:{worker.pid}"

    listing = jobs_command(database_url, capsys, "--failed", "--limit", "50")
    line = next(li for li in listing.splitlines() if f"job {job_id} " in li)
    assert "refresh_insights" in line and "attempt 1 (gave up; job now failed)" in line and "not-an-account-id" in line
    assert "psycopg.errors.InvalidTextRepresentation: invalid input syntax for type uuid" in listing
    assert "failures: none recorded" not in listing


@pytest.fixture
async def open_app(database_url: str) -> Any:
    with app.replace_connector(make_connector(database_url, max_size=2)) as bound:
        async with bound.open_async():
            yield bound


def context_for(bound: procrastinate.App, job_id: int, attempts: int) -> procrastinate.JobContext:
    job = Job(id=job_id, queue="sync", lock=None, queueing_lock=None, task_name="sync_account",
              task_kwargs={"sync_run_id": "7a1f0d8e-0000-4000-8000-000000000001"}, attempts=attempts)
    return procrastinate.JobContext(app=bound, job=job, worker_name="test-worker", start_timestamp=time.time(),
                                    abort_reason=lambda: None)


async def test_each_failed_attempt_records_whether_the_retry_strategy_tries_again(
        open_app: procrastinate.App, conn: psycopg.Connection[Any], job_ids: list[int]) -> None:
    job_id = random.randint(10**12, 10**13)
    job_ids.append(job_id)

    async def provider_down() -> None:
        raise ProviderUnavailable("spotify", "HTTP 503 from Spotify " + "x" * 3000)

    # sync_account retries a 503 up to its sixth attempt, then gives up.
    for attempts in (0, 5):
        with pytest.raises(ProviderUnavailable):
            await record_failures(provider_down, context_for(open_app, job_id, attempts), None)
    async def url_with_a_token() -> None:
        raise RuntimeError("GET https://graph.instagram.com/me?fields=id&access_token=IGQVJ-secret-value failed")

    with pytest.raises(RuntimeError):
        await record_failures(url_with_a_token, context_for(open_app, job_id, 6), None)
    first, last, leaky = failures_of(conn, job_id)
    assert "IGQVJ-secret-value" not in leaky["error_message"]
    assert "access_token=[redacted]" in leaky["error_message"] and leaky["will_retry"] is False
    assert (first["attempt"], first["will_retry"]) == (1, True)
    assert (last["attempt"], last["will_retry"]) == (6, False)
    assert first["error_type"] == "arti.providers.base.ProviderUnavailable"
    assert first["error_message"].startswith("spotify: HTTP 503 from Spotify")
    assert len(first["error_message"]) == MAX_MESSAGE_CHARS and first["error_message"].endswith("…")
    assert first["task_args"] == {"sync_run_id": "7a1f0d8e-0000-4000-8000-000000000001"}


async def test_a_successful_job_records_nothing_and_returns_its_result(
        open_app: procrastinate.App, conn: psycopg.Connection[Any], job_ids: list[int]) -> None:
    job_id = random.randint(10**12, 10**13)
    job_ids.append(job_id)

    async def fine() -> dict[str, int]:
        return {"written": 3}

    assert await record_failures(fine, context_for(open_app, job_id, 0), None) == {"written": 3}
    assert failures_of(conn, job_id) == []


async def test_a_failure_that_cannot_be_recorded_still_raises_the_tasks_own_error(
        database_url: str, caplog: Any) -> None:
    # The connector is never opened: writing the record fails, as it would with the database gone.
    with app.replace_connector(make_connector(database_url)) as unopened:
        async def boom() -> None:
            raise ValueError("the task's own error")

        with caplog.at_level(logging.WARNING, logger="jobs.failures"), pytest.raises(ValueError, match="own error"):
            await record_failures(boom, context_for(unopened, 1, 0), None)
    assert "could not record the failure of job 1 (sync_account)" in caplog.text


def test_old_failure_records_are_pruned_daily(db: TestDB) -> None:
    db.execute("insert into private.job_failures (job_id, queue_name, task_name, attempt, will_retry, error_type, "
               "error_message, failed_at) values (1, 'sync', 'sync_account', 1, false, 'E', 'old', "
               "now() - interval '31 days'), (2, 'sync', 'sync_account', 1, false, 'E', 'recent', "
               "now() - interval '29 days')")
    assert db.value("select private.prune_job_failures()") == 1
    assert [r["error_message"] for r in db.execute("select error_message from private.job_failures "
                                                   "where job_id in (1, 2)")] == ["recent"]
    assert db.one("select schedule, command from cron.job where jobname = 'arti-prune-job-failures'") == {
        "schedule": "17 3 * * *", "command": "select private.prune_job_failures()"}


def test_jobs_command_counts_the_queue_and_refuses_a_bad_limit(conn: psycopg.Connection[Any], database_url: str,
                                                               job_ids: list[int], capsys: Any) -> None:
    before = jobs_command(database_url, capsys)
    queued = defer(conn, "arti-test-queue", "refresh_insights", {}, in_seconds=3600)
    job_ids.append(queued)
    after = jobs_command(database_url, capsys)
    assert "arti-test-queue" not in before
    assert any(li.split() == ["queue:", "arti-test-queue", "todo", "1"] for li in after.splitlines())
    assert after.splitlines()[0].startswith("workers:") and "stalled:" in after
    parser = build_parser()
    with pytest.raises(SystemExit):
        parser.parse_args(["jobs", "--failed", "--limit", "0"])
    assert "0 is not at least 1" in capsys.readouterr().err
    assert isinstance(parser.parse_args(["jobs"]), argparse.Namespace)
