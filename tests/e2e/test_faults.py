"""Faults against the real platform: Postgres restarted mid-sync and mid-delivery, processes killed with -9, a
webhook receiver down then up.

One platform for the module (`arti platform start` in its own data folder and cluster, free HTTP ports, providers
faked on loopback through ARTI_PROVIDER_GATEWAY, an organization of its own with an admin and a Spotify account),
stopped at the end with nothing left listening.
Every test checks that no row is lost or duplicated (sync_runs, Procrastinate jobs, metrics, webhook_deliveries)
and that /health is green again within HEALTH_BOUND seconds of the fault's end.

Settings in force: ARTI_STALLED_WORKER_SECONDS=4 (a worker silent 4 s is dead: its jobs are re-queued),
ARTI_HEALTH_HEARTBEAT_MAX_AGE=8 (/health degrades 8 s after the last worker heartbeat, so a worker that is gone
shows), webhooks: loopback allowed, retries from 0.5 s doubling to at most 2 s, horizon 10 minutes.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from arti.crypto import TokenCipher, generate_key_setting
from arti.db import as_role, user_claims
from arti.localdb import missing_system_packages, port_owner
from arti.providers.base import TokenSet
from arti.settings import DEFAULT_PORTS, PROJECT_ROOT, embedded_url
from arti.tokens import SAVE_SQL, token_params
from arti.users import INSERT_USER_SQL
from tests.edge_stack import free_port
from tests.fake_providers import FakeProviders
from tests.harness import child_env, gotrue_user, wait_until
from tests.unit.providers import payloads

pytestmark = pytest.mark.skipif(bool(missing_system_packages()), reason="the embedded Postgres is not installed")

DATA_DIR = PROJECT_ROOT / ".arti" / "e2e-faults"
DB_PORT = DEFAULT_PORTS["e2e_faults_database"]
KEYS = generate_key_setting("faults")
HEALTH_BOUND = 30.0
"""Seconds from the end of a fault (Postgres accepting connections again, a process killed) to /health 200."""
SETTINGS = {"ARTI_STALLED_WORKER_SECONDS": "4", "ARTI_HEALTH_HEARTBEAT_MAX_AGE": "8"}
ORG = "00000000-0000-4000-8000-00000000fa01"
ADMIN = "00000000-0000-4000-8000-00000000fa02"
ACCOUNT = "00000000-0000-4000-8000-00000000fa03"  # the organization's Spotify account
SUPERVISED = ("handlers", "worker", "caddy")


class Platform:
    """The running platform and the commands a person would type against it."""

    def __init__(self, env: dict[str, str], fake: FakeProviders) -> None:
        self.env = env
        self.fake = fake
        self.http = f"http://127.0.0.1:{env['ARTI_HTTP_PORT']}"
        self.url = embedded_url(DB_PORT)

    def arti(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "arti.cli", *args], cwd=PROJECT_ROOT, env=self.env,
                              capture_output=True, text=True, timeout=timeout)

    def status(self) -> dict[str, Any]:
        done = self.arti("platform", "status", "--json", timeout=60)
        assert done.returncode in (0, 3), done.stdout + done.stderr
        state: dict[str, Any] = json.loads(done.stdout)
        return state

    def processes(self) -> dict[str, dict[str, Any]]:
        processes: dict[str, dict[str, Any]] = self.status()["processes"]
        return processes

    def health(self) -> tuple[int, Any]:
        try:
            with urllib.request.urlopen(f"{self.http}/health", timeout=5) as response:  # noqa: S310 (loopback)
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read() or b"null")
        except (urllib.error.URLError, OSError, ValueError):
            return 0, None

    def wait_healthy(self, bound: float = HEALTH_BOUND) -> float:
        """Seconds until /health answers 200 with a worker heartbeat written since this call (a heartbeat from
        before the fault does not count); fails after `bound`."""
        t0 = time.monotonic()
        code, body = 0, None
        while time.monotonic() - t0 < bound:
            code, body = self.health()
            age = ((body or {}).get("checks", {}).get("worker", {}).get("last_heartbeat_age_seconds")
                   if isinstance(body, dict) else None)
            if code == 200 and age is not None and age < time.monotonic() - t0:
                return time.monotonic() - t0
            time.sleep(0.25)
        raise AssertionError(f"/health not green {bound:.0f} s after the fault: {code} {json.dumps(body)}\n"
                             f"{self.logs('worker')}")

    def logs(self, name: str, tail: int = 60) -> str:
        path = DATA_DIR / "logs" / f"{name}.log"
        lines = path.read_text(errors="replace").splitlines() if path.exists() else []
        return f"--- {name}.log (last {tail} lines)\n" + "\n".join(lines[-tail:])

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.url, autocommit=True, row_factory=dict_row)

    def query(self, sql: str, params: Any = None) -> list[dict[str, Any]]:
        for attempt in range(40):  # the database may be coming back
            try:
                with self.connect() as conn:
                    return conn.execute(sql, params).fetchall()
            except psycopg.OperationalError:
                if attempt == 39:
                    raise
                time.sleep(0.25)
        raise AssertionError("unreachable")

    def restart_postgres(self, down_for: float = 1.0) -> tuple[str, str]:
        """`arti db stop`, a pause, `arti db start`, as a person would; their outputs."""
        stopped = self.arti("db", "stop")
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        time.sleep(down_for)
        started = self.arti("db", "start")
        assert started.returncode == 0, started.stdout + started.stderr
        return stopped.stdout, started.stdout


@pytest.fixture(scope="module")
def platform() -> Iterator[Platform]:
    shutil.rmtree(DATA_DIR, ignore_errors=True)  # a fresh cluster: these tests count rows
    ports = {"ARTI_HTTP_PORT": str(free_port()), "ARTI_HANDLERS_PORT": str(free_port()),
             "ARTI_STUDIO_PORT": str(free_port()), "ARTI_DB_PORT": str(DB_PORT)}
    with FakeProviders() as fake:
        env = child_env(**ports, **SETTINGS, ARTI_DATA_DIR=str(DATA_DIR), ARTI_ENCRYPTION_KEYS=KEYS,
                        ARTI_PROVIDER_GATEWAY=fake.url, SPOTIFY_CLIENT_ID="faults-client",
                        SPOTIFY_CLIENT_SECRET="faults-secret")
        running = Platform(env, fake)
        try:
            started = running.arti("platform", "start", timeout=300)
            assert started.returncode == 0, started.stdout + started.stderr
            with running.connect() as conn:
                make_world(conn)
            yield running
        finally:
            stopped = subprocess.run(["./stop-platform.sh"], cwd=PROJECT_ROOT, env=env, capture_output=True,
                                     text=True, timeout=180)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr
    for name, port in ports.items():
        assert port_owner(int(port)) is None, f"{name} {port} still has a listener after ./stop-platform.sh"


def make_world(conn: psycopg.Connection[Any]) -> None:
    """The organization the tests work in (an admin, an artist, a Spotify account with tokens) and the webhook
    settings of the module docstring, committed."""
    conn.execute(INSERT_USER_SQL, gotrue_user(uuid.UUID(ADMIN), "admin@faults.test"))
    conn.execute("insert into public.organizations (id, name, slug) values (%s, 'Faults', 'faults')", (ORG,))
    conn.execute("insert into public.memberships (org_id, user_id, role) values (%s, %s, 'admin')", (ORG, ADMIN))
    artist = conn.execute("insert into public.artists (org_id, name) values (%s, 'Fault Artist') returning id",
                          (ORG,)).fetchone()["id"]
    conn.execute("insert into public.connected_accounts (id, org_id, artist_id, provider, external_id) "
                 "values (%s, %s, %s, 'spotify', %s)", (ACCOUNT, ORG, artist, payloads.SPOTIFY_ARTIST_ID))
    conn.execute(SAVE_SQL, token_params(TokenCipher.from_setting(KEYS), ACCOUNT,
                                        TokenSet(access_token="BQD-faults", refresh_token="AQD-faults")))
    for key, value in {"allow_loopback_http": "true", "retry_base_seconds": "0.5",
                       "retry_max_interval_seconds": "2", "retry_horizon_seconds": "600",
                       "timeout_seconds": "10"}.items():
        conn.execute("insert into private.settings (key, value) values (%s, %s) on conflict (key) "
                     "do update set value = excluded.value", (f"webhooks.{key}", value))


# -- syncs ------------------------------------------------------------------------------------------------


def start_slow_sync(platform: Platform, delay: float) -> str:
    """A manual sync of the demo account whose provider call takes `delay` seconds; returns once the call is in
    flight. The fake answers a follower count of its own, so the run changes metric rows."""
    platform.fake.delay = delay
    platform.fake.followers = 10_000 + uuid.uuid4().int % 50_000
    platform.fake.in_artist_call.clear()
    (row,) = platform.query("select private.enqueue_sync(%s, 'manual') as id", (ACCOUNT,))
    run = str(row["id"])
    assert platform.fake.in_artist_call.wait(30), "the worker never called the provider\n" + platform.logs("worker")
    return run


def assert_sync_done_once(platform: Platform, run: str, timeout: float) -> dict[str, Any]:
    """The run succeeded, through exactly one job; its metric rows are there once, with the fake's numbers."""
    def finished() -> dict[str, Any] | None:
        rows = platform.query("select status::text as status, attempts, metrics_written, error from "
                              "public.sync_runs where id = %s", (run,))
        return rows[0] if rows and rows[0]["status"] in ("succeeded", "failed") else None

    result = wait_until(finished, timeout, f"sync run {run} to finish", every=0.25,
                        logs=lambda: platform.logs("worker"))
    assert result["status"] == "succeeded", result
    jobs = platform.query("select id, status::text as status, attempts from procrastinate.procrastinate_jobs "
                          "where task_name = 'sync_account' and args ->> 'sync_run_id' = %s", (run,))
    assert [j["status"] for j in jobs] == ["succeeded"], f"one job for the run, succeeded: {jobs}"
    runs = platform.query("select count(*) as n from public.sync_runs where id = %s", (run,))
    assert runs[0]["n"] == 1
    written = platform.query("select metric, day, value, count(*) over (partition by metric, day) as copies "
                             "from public.metrics where account_id = %s and sync_run_id = %s", (ACCOUNT, run))
    assert len(written) == result["metrics_written"] > 0, (written, result)
    assert all(r["copies"] == 1 for r in written)
    followers = [r for r in written if r["metric"] == "followers"]
    assert followers and all(float(r["value"]) == platform.fake.followers for r in followers), followers
    return result


def test_status_shows_every_process_postgres_included(platform: Platform) -> None:
    processes = platform.processes()
    assert list(processes) == ["postgres", "supervisor", *SUPERVISED]
    for name, entry in processes.items():
        assert entry["state"] == "running" and entry["pid"], (name, entry)
    for name in ("postgres", *SUPERVISED):
        assert processes[name]["restarts"] == 0 and processes[name]["last_exit"] is None, (name, processes[name])
    text = platform.arti("platform", "status")
    assert text.returncode == 0, text.stdout + text.stderr
    lines = text.stdout.splitlines()
    assert "restarts" in lines[0] and "last exit" in lines[0], lines[0]
    for name in ("postgres", "supervisor", *SUPERVISED):
        assert any(line.split()[:1] == [name] and str(processes[name]["pid"]) in line for line in lines), text.stdout
    assert any(line.split()[:2] == ["health", "200"] for line in lines), text.stdout


def test_postgres_restart_in_the_middle_of_a_sync(platform: Platform) -> None:
    before = platform.processes()
    run = start_slow_sync(platform, delay=5.0)
    stopped, _ = platform.restart_postgres()
    took = platform.wait_healthy()
    platform.fake.delay = 0.0
    result = assert_sync_done_once(platform, run, timeout=90)
    assert "platform processes:" in stopped and "reconnect" in stopped, stopped
    assert result["attempts"] >= 2, "the attempt cut by the restart was retried"
    after = platform.processes()
    for name in ("handlers", "worker"):  # reconnected by themselves: same process, no restart
        assert after[name]["pid"] == before[name]["pid"], (name, after[name])
        assert after[name]["restarts"] == before[name]["restarts"], (name, after[name])
    assert after["postgres"]["pid"] != before["postgres"]["pid"]
    assert after["postgres"]["restarts"] == before["postgres"]["restarts"] + 1
    assert after["postgres"]["last_exit"]["how"] == "stopped"
    print(f"/health green {took:.1f} s after Postgres came back")


def test_worker_and_handlers_killed_with_9_come_back(platform: Platform) -> None:
    before = platform.processes()
    run = start_slow_sync(platform, delay=3.0)
    for name in ("worker", "handlers"):
        os.kill(before[name]["pid"], signal.SIGKILL)
    platform.fake.delay = 0.0

    def restarted() -> dict[str, dict[str, Any]] | None:
        now = platform.processes()
        back = all(now[n]["state"] == "running" and now[n]["pid"] not in (None, before[n]["pid"])
                   for n in ("worker", "handlers"))
        return now if back else None

    after = wait_until(restarted, 30, "the supervisor to restart the worker and the handlers", every=0.25,
                       logs=lambda: platform.logs("supervisor"))
    took = platform.wait_healthy()
    for name in ("worker", "handlers"):
        assert after[name]["restarts"] == before[name]["restarts"] + 1, after[name]
        assert after[name]["last_exit"]["signal"] == "SIGKILL", after[name]
    assert after["caddy"]["pid"] == before["caddy"]["pid"] and after["caddy"]["restarts"] == before["caddy"]["restarts"]
    # The killed worker's sync is re-queued once its heartbeat is stale (ARTI_STALLED_WORKER_SECONDS) and re-run.
    assert_sync_done_once(platform, run, timeout=60)
    print(f"/health green {took:.1f} s after the restarts")


# -- webhooks ---------------------------------------------------------------------------------------------


class Receiver:
    """A webhook receiver on 127.0.0.1:`port` that answers 200 after `delay` seconds and records every request."""

    def __init__(self, port: int = 0, delay: float = 0.0) -> None:
        self.delay = delay
        self.requests: list[dict[str, Any]] = []
        self.in_flight = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append({"event_id": self.headers.get("X-Arti-Event-Id"),
                                          "attempt": self.headers.get("X-Arti-Attempt"), "body": body})
                receiver.in_flight.set()
                time.sleep(receiver.delay)
                with contextlib.suppress(OSError):
                    self.send_response(200)
                    self.send_header("Content-Length", "0")
                    self.end_headers()

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@contextlib.contextmanager
def endpoint(platform: Platform, url: str) -> Iterator[str]:
    """An endpoint of the demo organization for sync.failed, created and deleted by its admin."""
    with platform.connect() as conn:
        with as_role(conn, "authenticated", user_claims(ADMIN)):
            created = conn.execute("select public.create_webhook_endpoint(%s, %s, %s, %s) as e",
                                   (ORG, url, ["sync.failed"], "fault test")).fetchone()
        assert created is not None
        endpoint_id = str(created["e"]["id"])
    try:
        yield endpoint_id
    finally:
        with platform.connect() as conn, as_role(conn, "authenticated", user_claims(ADMIN)):
            conn.execute("select public.delete_webhook_endpoint(%s)", (endpoint_id,))


def emit_events(platform: Platform, count: int) -> list[str]:
    """`count` sync.failed events (a failed run each), committed; their outbox ids."""
    runs = []
    with platform.connect() as conn:
        for i in range(count):
            run = conn.execute("insert into public.sync_runs (org_id, account_id, trigger) values (%s, %s, "
                               "'schedule') returning id", (ORG, ACCOUNT)).fetchone()["id"]
            conn.execute("update public.sync_runs set status = 'failed', error = %s, finished_at = now() "
                         "where id = %s", (f"fault test {i}", run))
            runs.append(str(run))
    rows = platform.query("select id from private.outbox where type = 'sync.failed' and payload ->> 'sync_run_id' "
                          "= any(%s)", (runs,))
    assert len(rows) == count, rows
    return [str(r["id"]) for r in rows]


def deliveries(platform: Platform, endpoint_id: str) -> list[dict[str, Any]]:
    return platform.query("select id, event_id::text as event_id, status::text as status, attempts from "
                          "public.webhook_deliveries where endpoint_id = %s order by created_at", (endpoint_id,))


def assert_delivered_once_each(platform: Platform, endpoint_id: str, events: list[str], receiver: Receiver,
                               timeout: float, extra_sends: int) -> list[dict[str, Any]]:
    """One delivery row per event, all delivered; the receiver got every event, at most `extra_sends` twice."""
    def done() -> list[dict[str, Any]] | None:
        rows = deliveries(platform, endpoint_id)
        return rows if rows and all(r["status"] == "delivered" for r in rows) else None

    rows = wait_until(done, timeout, "every delivery delivered", every=0.25, logs=lambda: platform.logs("worker"))
    assert sorted(r["event_id"] for r in rows) == sorted(events), "one delivery row per event, none lost"
    received = [r["event_id"] for r in receiver.requests]
    assert set(received) == set(events), "every event reached the receiver"
    repeated = [e for e in set(received) if received.count(e) > 1]
    assert len(received) - len(events) <= extra_sends and len(repeated) <= extra_sends, \
        f"sent again: {repeated} ({len(received)} requests for {len(events)} events)"
    return rows


def test_postgres_restart_in_the_middle_of_a_webhook_delivery(platform: Platform) -> None:
    before = platform.processes()
    receiver = Receiver(delay=4.0)
    try:
        with endpoint(platform, f"http://127.0.0.1:{receiver.port}/hook") as endpoint_id:
            events = emit_events(platform, 4)
            assert receiver.in_flight.wait(30), "no delivery started\n" + platform.logs("worker")
            platform.restart_postgres()
            took = platform.wait_healthy()
            receiver.delay = 0.0
            # The delivery in flight when Postgres stopped may reach the receiver twice (same X-Arti-Event-Id:
            # at least once, as documented); its row is one row, delivered.
            assert_delivered_once_each(platform, endpoint_id, events, receiver, timeout=90, extra_sends=1)
    finally:
        receiver.close()
    after = platform.processes()
    assert after["worker"]["pid"] == before["worker"]["pid"], "the worker reconnected by itself"
    print(f"/health green {took:.1f} s after Postgres came back")


def test_receiver_down_then_up_gets_every_delivery(platform: Platform) -> None:
    port = free_port()  # nothing listens there yet: connections are refused
    with endpoint(platform, f"http://127.0.0.1:{port}/down-then-up") as endpoint_id:
        events = emit_events(platform, 5)
        wait_until(lambda: any(r["attempts"] >= 3 for r in deliveries(platform, endpoint_id)), 60,
                   "three refused attempts", every=0.25, logs=lambda: platform.logs("worker"))
        assert all(r["status"] == "pending" for r in deliveries(platform, endpoint_id))
        code, body = platform.health()
        assert code == 200, body  # a receiver's outage is not the platform's
        receiver = Receiver(port=port)
        try:
            up = time.monotonic()
            rows = assert_delivered_once_each(platform, endpoint_id, events, receiver, timeout=30, extra_sends=0)
            took = time.monotonic() - up
        finally:
            receiver.close()
        head = max(rows, key=lambda r: r["attempts"])
        attempts = platform.query("select outcome from public.webhook_delivery_attempts where delivery_id = %s "
                                  "order by attempt", (head["id"],))
    assert [a["outcome"] for a in attempts][-1] == "delivered" and len(attempts) >= 3, attempts
    assert all(a["outcome"] == "retry" for a in attempts[:-1]), attempts
    print(f"every delivery arrived {took:.1f} s after the receiver came up (retries at most 2 s apart)")


def test_db_reset_with_the_platform_running(platform: Platform) -> None:
    """Last (it replaces the database): the running processes reconnect to the new one and work on it."""
    before = platform.processes()
    reset = platform.arti("db", "reset", "--no-seed", timeout=300)
    assert reset.returncode == 0, reset.stdout + reset.stderr
    assert "platform processes:" in reset.stdout and "reconnect" in reset.stdout, reset.stdout
    took = platform.wait_healthy()
    with platform.connect() as conn:  # an empty database again: the tests' organization, afresh
        make_world(conn)
    run = start_slow_sync(platform, delay=0.0)
    assert_sync_done_once(platform, run, timeout=60)
    after = platform.processes()
    for name in ("handlers", "worker"):
        assert after[name]["pid"] == before[name]["pid"], (name, after[name])
        assert after[name]["restarts"] == before[name]["restarts"], (name, after[name])
    print(f"/health green {took:.1f} s after the reset")
