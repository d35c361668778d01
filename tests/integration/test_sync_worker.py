"""End to end: pg_cron's SQL enqueues, a real worker process syncs, metrics land; crash and SIGTERM."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest

from arti.crypto import TokenCipher, generate_key_setting
from arti.providers.base import TokenSet
from arti.settings import PROJECT_ROOT
from arti.tokens import SAVE_SQL, token_params
from arti.users import INSERT_USER_SQL
from tests.fake_providers import FakeProviders
from tests.harness import child_env, gotrue_user, wait_until
from tests.unit.providers import payloads

KEYS = generate_key_setting("k1")


@pytest.fixture
def account(conn: psycopg.Connection[Any]) -> Iterator[dict[str, Any]]:
    """A committed org/artist/Spotify account with encrypted tokens; removed afterwards."""
    user = uuid.uuid4()
    conn.execute(INSERT_USER_SQL, gotrue_user(user, f"{user.hex[:8]}@example.test"))
    org = conn.execute("insert into public.organizations (name, slug) values ('E2E', %s) returning id",
                       (f"e2e-{user.hex[:8]}",)).fetchone()["id"]
    conn.execute("insert into public.memberships (org_id, user_id, role) values (%s, %s, 'owner')", (org, user))
    artist = conn.execute("insert into public.artists (org_id, name) values (%s, 'E2E Artist') returning id",
                          (org,)).fetchone()["id"]
    acc = conn.execute(
        "insert into public.connected_accounts (org_id, artist_id, provider, external_id) "
        "values (%s, %s, 'spotify', %s) returning id", (org, artist, payloads.SPOTIFY_ARTIST_ID)).fetchone()["id"]
    tokens = TokenSet(access_token="BQDspotify-access-0", refresh_token="AQDspotify-refresh-0")
    conn.execute(SAVE_SQL, token_params(TokenCipher.from_setting(KEYS), acc, tokens))
    try:
        yield {"org": org, "account": acc, "user": user}
    finally:
        conn.execute("delete from procrastinate.procrastinate_jobs where args ->> 'sync_run_id' in "
                     "(select id::text from public.sync_runs where account_id = %s)", (acc,))
        conn.execute("delete from public.organizations where id = %s", (org,))
        conn.execute("delete from auth.users where id = %s", (user,))


@pytest.fixture
def fake() -> Iterator[FakeProviders]:
    with FakeProviders() as server:
        yield server


@pytest.fixture
def start_worker(database_url: str, fake: FakeProviders) -> Iterator[Callable[..., subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []

    def start(*extra: str) -> subprocess.Popen[str]:
        env = child_env(SUPABASE_DB_URL=database_url, ARTI_ENCRYPTION_KEYS=KEYS, ARTI_PROVIDER_GATEWAY=fake.url,
                        SPOTIFY_CLIENT_ID="spotify-client", SPOTIFY_CLIENT_SECRET="spotify-secret",
                        ARTI_STALLED_WORKER_SECONDS="3")
        proc = subprocess.Popen([sys.executable, "-m", "arti.cli", "worker", "--concurrency", "2", *extra],
                                cwd=PROJECT_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def run_status(conn: psycopg.Connection[Any], run_id: uuid.UUID) -> dict[str, Any]:
    return conn.execute("select status::text as status, metrics_written, error, attempts from public.sync_runs "
                        "where id = %s", (run_id,)).fetchone()


def enqueue_due(conn: psycopg.Connection[Any], account: uuid.UUID) -> uuid.UUID:
    assert conn.execute("select private.enqueue_due_syncs() as n").fetchone()["n"] >= 1
    return conn.execute("select id from public.sync_runs where account_id = %s order by queued_at desc limit 1",
                        (account,)).fetchone()["id"]


def metric_rows(conn: psycopg.Connection[Any], account: uuid.UUID) -> list[dict[str, Any]]:
    return conn.execute("select metric, day, value, note from public.metrics where account_id = %s order by metric",
                        (account,)).fetchall()


def test_scheduled_sync_runs_in_a_worker_and_is_idempotent(conn: psycopg.Connection[Any], account: dict[str, Any],
                                                           fake: FakeProviders, start_worker: Any) -> None:
    start_worker()
    run = enqueue_due(conn, account["account"])
    # A second enqueue while the first waits returns the same run (queueing lock), not a duplicate.
    duplicate = conn.execute("select private.enqueue_sync(%s, 'manual') as id", (account["account"],)).fetchone()
    assert duplicate["id"] == run
    wait_until(lambda: run_status(conn, run)["status"] == "succeeded", timeout=30, what="the sync to succeed")
    rows = metric_rows(conn, account["account"])
    assert {r["metric"]: r["value"] for r in rows} == {"followers": 10245, "popularity": 57, "releases": 3}
    assert run_status(conn, run)["metrics_written"] == 3
    snapshot = conn.execute("select payload from public.metric_snapshots where sync_run_id = %s", (run,)).fetchone()
    assert snapshot and snapshot["payload"]["points"]
    token_row = conn.execute("select access_token_encrypted from private.provider_tokens where account_id = %s",
                             (account["account"],)).fetchone()
    assert "BQD" not in token_row["access_token_encrypted"]

    # The same day again: nothing duplicated, nothing rewritten.
    conn.execute("update public.connected_accounts set next_sync_at = now() - interval '1 minute', "
                 "last_synced_at = null where id = %s", (account["account"],))
    again = enqueue_due(conn, account["account"])
    assert again != run
    wait_until(lambda: run_status(conn, again)["status"] == "succeeded", timeout=30, what="the second sync")
    assert len(metric_rows(conn, account["account"])) == 3
    assert run_status(conn, again)["metrics_written"] == 0


def test_worker_killed_mid_job_is_rerun_without_duplicates(conn: psycopg.Connection[Any], account: dict[str, Any],
                                                           fake: FakeProviders, start_worker: Any) -> None:
    fake.delay = 4.0
    first = start_worker()
    run = enqueue_due(conn, account["account"])
    wait_until(fake.in_artist_call.is_set, timeout=30, what="the worker to reach the provider")
    assert run_status(conn, run)["status"] == "running"
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    fake.delay = 0.0
    time.sleep(3.5)  # the dead worker's heartbeat goes stale
    start_worker()
    wait_until(lambda: run_status(conn, run)["status"] == "succeeded", timeout=40, what="the re-run to succeed")
    assert len(metric_rows(conn, account["account"])) == 3
    assert run_status(conn, run)["attempts"] == 2


def test_sigterm_lets_the_running_job_finish(conn: psycopg.Connection[Any], account: dict[str, Any],
                                             fake: FakeProviders, start_worker: Any) -> None:
    fake.delay = 2.0
    worker = start_worker()
    run = enqueue_due(conn, account["account"])
    wait_until(fake.in_artist_call.is_set, timeout=30, what="the worker to reach the provider")
    worker.send_signal(signal.SIGTERM)
    code = worker.wait(timeout=30)
    assert code == 0
    assert run_status(conn, run)["status"] == "succeeded"
    assert len(metric_rows(conn, account["account"])) == 3


def test_provider_refusal_marks_needs_reauth_and_keeps_tokens(conn: psycopg.Connection[Any], account: dict[str, Any],
                                                              fake: FakeProviders, start_worker: Any) -> None:
    fake.artist_status = 401
    start_worker()
    run = enqueue_due(conn, account["account"])
    wait_until(lambda: run_status(conn, run)["status"] == "failed", timeout=30, what="the sync to fail")
    assert "re-authentication" in run_status(conn, run)["error"]
    status = conn.execute("select status::text from public.connected_accounts where id = %s",
                          (account["account"],)).fetchone()["status"]
    assert status == "needs_reauth"
    assert conn.execute("select count(*) as n from private.provider_tokens where account_id = %s",
                        (account["account"],)).fetchone()["n"] == 1
    notified = conn.execute("select count(*) as n from public.notifications where kind = 'account.needs_reauth' "
                            "and user_id = %s", (account["user"],)).fetchone()["n"]
    assert notified == 1
    # 401 → refresh → retry happened before giving up.
    assert any(url.endswith("/api/token") for _, url in fake.requests)
