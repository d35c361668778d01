"""Syncs never wait behind webhook or insight jobs (issue 14, item 4): a real `arti worker` under a webhook flood.

The attack left a manual sync `todo` for over 60 s behind 1,400 webhook jobs. Here 1,200 deliveries to 8
endpoints of a slow receiver (0.5 s an answer) keep every general job slot of the worker busy for minutes;
syncs deferred in the middle of it must start at once: `arti worker` keeps job slots for the sync queue
(ARTI_WORKER_SYNC_CONCURRENCY, 2) next to its general ones, and syncs carry priority 10.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from arti.crypto import TokenCipher, generate_key_setting
from arti.db import as_role, user_claims
from arti.providers.base import TokenSet
from arti.settings import PROJECT_ROOT, Settings
from arti.tokens import SAVE_SQL, token_params
from arti.users import INSERT_USER_SQL
from jobs.worker import plan
from tests.fake_providers import FakeProviders
from tests.harness import child_env, gotrue_user, wait_until
from tests.unit.providers import payloads
from tests.webhooks.conftest import Receiver, Reply

KEYS = generate_key_setting("kq")
ENDPOINTS = 8
EVENTS = 150
RECEIVER_DELAY = 0.5
SYNCS = 3
MAX_START_SECONDS = 3.0


@pytest.fixture
def world(conn: psycopg.Connection[Any]) -> Iterator[dict[str, Any]]:
    """A committed org with an owner and a Spotify account holding tokens; removed with its jobs afterwards."""
    owner = uuid.uuid4()
    conn.execute(INSERT_USER_SQL, gotrue_user(owner, f"{owner.hex[:8]}@example.test"))
    org = conn.execute("insert into public.organizations (name, slug) values ('Fair', %s) returning id",
                       (f"fair-{owner.hex[:8]}",)).fetchone()["id"]
    conn.execute("insert into public.memberships (org_id, user_id, role) values (%s, %s, 'owner')", (org, owner))
    artist = conn.execute("insert into public.artists (org_id, name) values (%s, 'Fair Artist') returning id",
                          (org,)).fetchone()["id"]
    account = conn.execute(
        "insert into public.connected_accounts (org_id, artist_id, provider, external_id) "
        "values (%s, %s, 'spotify', %s) returning id", (org, artist, payloads.SPOTIFY_ARTIST_ID)).fetchone()["id"]
    conn.execute(SAVE_SQL, token_params(TokenCipher.from_setting(KEYS), account,
                                        TokenSet(access_token="BQDfair-access", refresh_token="AQDfair-refresh")))
    saved = conn.execute("select key, value from private.settings where key like 'webhooks.%%'").fetchall()
    conn.execute("insert into private.settings (key, value) values ('webhooks.allow_loopback_http', 'true'), "
                 "('webhooks.timeout_seconds', '5') on conflict (key) do update set value = excluded.value")
    try:
        yield {"org": org, "owner": owner, "account": account}
    finally:
        conn.execute("delete from private.settings where key like 'webhooks.%%'")
        for row in saved:
            conn.execute("insert into private.settings (key, value) values (%s, %s)", (row["key"], row["value"]))
        conn.execute("delete from procrastinate.procrastinate_jobs where queueing_lock in "
                     "(select 'webhook-endpoint:' || id from public.webhook_endpoints where org_id = %s) "
                     "or args ->> 'sync_run_id' in (select id::text from public.sync_runs where org_id = %s) "
                     "or queueing_lock = 'insights:' || %s", (org, org, str(account)))
        conn.execute("delete from public.organizations where id = %s", (org,))
        conn.execute("delete from auth.users where id = %s", (owner,))


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


@pytest.fixture
def worker(database_url: str, tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen[bytes]]]:
    """`arti worker --concurrency 4` with its defaults otherwise (a real process; log in tmp_path)."""
    started: list[subprocess.Popen[bytes]] = []
    fake = FakeProviders()
    fake.__enter__()

    def start(*extra: str) -> subprocess.Popen[bytes]:
        env = child_env(SUPABASE_DB_URL=database_url, ARTI_ENCRYPTION_KEYS=KEYS, ARTI_PROVIDER_GATEWAY=fake.url,
                        SPOTIFY_CLIENT_ID="spotify-client", SPOTIFY_CLIENT_SECRET="spotify-secret",
                        ARTI_STALLED_WORKER_SECONDS="5")
        with (tmp_path / f"worker-{len(started)}.log").open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "arti.cli", "worker", "--concurrency", "4", *extra],
                                    cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        started.append(proc)
        return proc

    try:
        yield start
    finally:
        for proc in started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
        fake.__exit__(None, None, None)


def defer_to_start(conn: psycopg.Connection[Any], run: Any) -> float:
    row = conn.execute(
        "select extract(epoch from s.at - d.at)::float8 as seconds, j.priority "
        "from procrastinate.procrastinate_jobs as j "
        "join procrastinate.procrastinate_events as d on d.job_id = j.id and d.type = 'deferred' "
        "join procrastinate.procrastinate_events as s on s.job_id = j.id and s.type = 'started' "
        "where j.args ->> 'sync_run_id' = %s", (str(run),)).fetchone()
    assert row is not None and row["priority"] == 10
    return float(row["seconds"])


def test_syncs_start_at_once_while_webhook_drains_fill_every_general_slot(
        conn: psycopg.Connection[Any], world: dict[str, Any], receiver: Receiver,
        worker: Callable[..., subprocess.Popen[bytes]]) -> None:
    org = world["org"]
    for i in range(ENDPOINTS):
        receiver.plan(f"/slow-{i}", default=Reply(200, delay=RECEIVER_DELAY))
    with as_role(conn, "authenticated", user_claims(str(world["owner"]))):
        for i in range(ENDPOINTS):
            conn.execute("select public.create_webhook_endpoint(%s, %s, '{member.invited}')",
                         (org, receiver.url(f"/slow-{i}")))
    # The flood: 150 events x 8 endpoints = 1,200 deliveries, committed at once.
    conn.execute("select private.emit_event(%s, 'member.invited', jsonb_build_object('email', 'x' || g || '@x.test', "
                 "'role', 'viewer')) from generate_series(1, %s) as g", (org, EVENTS))
    worker()

    def drains_running() -> int:  # webhook jobs running, whatever their task
        return conn.execute("select count(*) as n from procrastinate.procrastinate_jobs where status = 'doing' "
                            "and queue_name = 'webhooks'").fetchone()["n"]

    wait_until(lambda: drains_running() == 4 and len(receiver.requests) >= 8, timeout=30,
               what="the webhook drains to fill the worker's 4 general slots")
    latencies = []
    for _ in range(SYNCS):
        assert drains_running() == 4  # every general slot is still busy
        run = conn.execute("select private.enqueue_sync(%s, 'manual') as id", (world["account"],)).fetchone()["id"]
        wait_until(lambda r=run: conn.execute("select status::text as s from public.sync_runs where id = %s",
                                              (r,)).fetchone()["s"] in ("succeeded", "failed"),
                   timeout=60, what="the sync to finish")
        assert conn.execute("select status::text as s from public.sync_runs where id = %s",
                            (run,)).fetchone()["s"] == "succeeded"
        latencies.append(defer_to_start(conn, run))
    pending = conn.execute("select count(*) as n from public.webhook_deliveries where org_id = %s "
                           "and status = 'pending'", (org,)).fetchone()["n"]
    assert pending > ENDPOINTS * EVENTS / 2, pending  # measured in the middle of the flood
    print("sync defer->start", latencies)
    assert max(latencies) < MAX_START_SECONDS, latencies


def test_arti_worker_serves_every_queue_and_keeps_slots_for_syncs_by_default() -> None:
    from arti.cli import build_parser

    args = build_parser().parse_args(["worker"])
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.worker_sync_concurrency == 2
    assert args.queue is None and args.sync_concurrency is None
    assert plan(4, None, settings.worker_sync_concurrency) == [
        {"name": None, "queues": None, "concurrency": 4},
        {"name": "sync", "queues": ["sync"], "concurrency": 2}]
    # Explicit queues, or no reserved slots: one worker exactly as asked.
    assert plan(4, ["webhooks"], 2) == [{"name": None, "queues": ["webhooks"], "concurrency": 4}]
    assert plan(3, None, 0) == [{"name": None, "queues": None, "concurrency": 3}]
