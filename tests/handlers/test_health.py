"""/functions/v1/health: 200 only when the database, migrations and a worker are all fine; 503 otherwise."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from arti.settings import PROJECT_ROOT
from tests.handlers.conftest import bearer, make_settings, running


@pytest.fixture
def no_workers(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """No worker rows at all (tests run one at a time, so no live worker is harmed)."""
    conn.execute("delete from procrastinate.procrastinate_workers")
    yield
    conn.execute("delete from procrastinate.procrastinate_workers")


@pytest.fixture
def fresh_worker(conn: psycopg.Connection[Any], no_workers: None) -> Iterator[int]:
    row = conn.execute("insert into procrastinate.procrastinate_workers default values returning id").fetchone()
    assert row is not None
    yield row["id"]


async def test_healthy_with_a_fresh_heartbeat(client: httpx.AsyncClient, fresh_worker: int,
                                              conn: psycopg.Connection[Any]) -> None:
    todo = conn.execute("select count(*) as n from procrastinate.procrastinate_jobs where status = 'todo'").fetchone()
    response = await client.get("/functions/v1/health")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "ok"
    checks = body["checks"]
    assert {name: c["status"] for name, c in checks.items()} == {
        "database": "ok", "migrations": "ok", "worker": "ok", "queue": "ok", "quota": "ok"}
    assert checks["worker"]["alive"] == 1 and checks["worker"]["last_heartbeat_age_seconds"] < 5
    assert checks["queue"]["todo"] == (todo["n"] if todo else 0)
    assert checks["migrations"]["applied"] == len(list((PROJECT_ROOT / "supabase" / "migrations").glob("*.sql")))


async def test_no_worker_is_degraded(client: httpx.AsyncClient, no_workers: None) -> None:
    response = await client.get("/functions/v1/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["worker"]["status"] == "error"
    assert body["checks"]["worker"]["message"].startswith("no worker")
    assert body["checks"]["database"]["status"] == "ok"


async def test_stale_heartbeat_is_no_worker(client: httpx.AsyncClient, fresh_worker: int,
                                            conn: psycopg.Connection[Any]) -> None:
    conn.execute("update procrastinate.procrastinate_workers set last_heartbeat = now() - interval '5 minutes' "
                 "where id = %s", (fresh_worker,))
    response = await client.get("/functions/v1/health")
    assert response.status_code == 503
    worker = response.json()["checks"]["worker"]
    assert worker["alive"] == 0 and worker["last_heartbeat_age_seconds"] >= 300


async def test_queue_depth_counts_waiting_jobs(client: httpx.AsyncClient, fresh_worker: int,
                                               conn: psycopg.Connection[Any]) -> None:
    before = (await client.get("/functions/v1/health")).json()["checks"]["queue"]
    ids = [conn.execute("insert into procrastinate.procrastinate_jobs (queue_name, task_name, args) "
                        "values ('health-test', 'noop', '{}') returning id").fetchone()["id"]  # type: ignore[index]
           for _ in range(3)]
    try:
        after = (await client.get("/functions/v1/health")).json()["checks"]["queue"]
    finally:
        conn.execute("delete from procrastinate.procrastinate_jobs where id = any(%s)", (ids,))
    assert after["todo"] == before["todo"] + 3


async def test_queue_check_counts_the_last_hours_failed_attempts(client: httpx.AsyncClient, fresh_worker: int,
                                                                  conn: psycopg.Connection[Any]) -> None:
    before = (await client.get("/functions/v1/health")).json()["checks"]["queue"]
    ids = [conn.execute("insert into private.job_failures (job_id, queue_name, task_name, attempt, will_retry, "
                        "error_type, error_message, failed_at) values (%s, 'sync', 'sync_account', 1, %s, 'E', "
                        "'health test', now() - %s::interval) returning id", (job, retry, age)).fetchone()["id"]
           for job, retry, age in ((-1, True, "1 minute"), (-2, False, "2 minutes"), (-3, False, "2 hours"))]
    try:
        response = await client.get("/functions/v1/health")
    finally:
        conn.execute("delete from private.job_failures where id = any(%s)", (ids,))
    after = response.json()["checks"]["queue"]
    assert after["failed_attempts_last_hour"] == before["failed_attempts_last_hour"] + 2
    assert after["gave_up_last_hour"] == before["gave_up_last_hour"] + 1
    assert response.status_code == 200 and after["status"] == "ok"


async def test_pending_migrations_are_degraded(database_url: str, tmp_path: Path, fresh_worker: int) -> None:
    migrations = tmp_path / "migrations"
    shutil.copytree(PROJECT_ROOT / "supabase" / "migrations", migrations)
    (migrations / "29990101000000_not_yet.sql").write_text("select 1;\n")
    async with running(make_settings(database_url, migrations_dir=migrations)) as client:
        response = await client.get("/functions/v1/health")
    assert response.status_code == 503
    check = response.json()["checks"]["migrations"]
    assert check["status"] == "error" and check["pending"] == ["29990101000000_not_yet.sql"]


async def test_database_unreachable(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://postgres:very-secret-pw@127.0.0.1:{port}/postgres"
    async with running(make_settings(url, db_timeout=1.0)) as client:
        response = await client.get("/functions/v1/health")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "unavailable"
    assert body["checks"]["database"]["status"] == "error"
    assert body["checks"]["database"]["message"].startswith("database unreachable")
    assert "refused" in body["checks"]["database"]["message"].lower(), "the cause is named"
    assert "very-secret-pw" not in response.text and "Traceback" not in response.text


async def test_other_endpoints_answer_503_when_the_database_is_down(tmp_path: Path) -> None:
    some_id = "7b1f8a2e-6c0d-4f4e-9a53-0d6f2b9c1e11"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"postgresql://postgres:very-secret-pw@127.0.0.1:{port}/postgres"
    async with running(make_settings(url, db_timeout=1.0)) as client:
        response = await client.get("/functions/v1/oauth/youtube/start", headers=bearer(some_id),
                                    params={"org_id": some_id, "artist_id": some_id})
    assert response.status_code == 503
    assert response.json()["error"] == "database_unavailable"
    assert "very-secret-pw" not in response.text


async def test_liveness_needs_nothing(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with running(make_settings(f"postgresql://postgres:x@127.0.0.1:{port}/postgres")) as client:
        response = await client.get("/functions/v1/health/live")
    assert response.status_code == 200 and response.json()["status"] == "ok"


async def test_the_quota_figures_are_information(client: httpx.AsyncClient, fresh_worker: int,
                                                 conn: psycopg.Connection[Any]) -> None:
    """Per provider: what the next daily sync needs against its quotas; a block never makes the platform unhealthy."""
    conn.execute("select private.block_provider_quota('youtube', now() + interval '1 hour', 'quotaExceeded (test)', "
                 "'data_api_daily')")
    try:
        response = await client.get("/functions/v1/health")
    finally:
        conn.execute("update private.provider_quota_state set blocked_until = null, blocked_reason = null")
        conn.execute("delete from private.provider_quota_usage where provider = 'youtube'")
    assert response.status_code == 200, response.text
    quota = response.json()["checks"]["quota"]
    assert quota["status"] == "ok" and quota["next_daily_sync"]
    assert {"spotify", "youtube", "instagram", "soundcloud"} <= set(quota["providers"])
    youtube = quota["providers"]["youtube"]
    assert {"accounts", "calls_needed", "fit", "will_wait"} <= set(youtube)
    assert youtube["blocked_reason"] == "quotaExceeded (test)" and youtube["blocked_until"]
    data_api = youtube["limits"]["data_api_daily"]
    assert data_api["limit"] == 10_000 and data_api["unit"] == "units" and data_api["window"] == "daily"
    assert data_api["spent_today"] == 10_000  # YouTube said the day's quota is spent: counted as spent
    assert quota["providers"]["spotify"]["limits"]["rolling_30s"]["window"] == "30 s rolling"
