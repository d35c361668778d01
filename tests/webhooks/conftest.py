"""Fixtures for the webhook tests: a real HTTP receiver on loopback, committed orgs, settings, workers."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from arti.db import as_role, user_claims
from arti.settings import PROJECT_ROOT
from arti.users import INSERT_USER_SQL
from tests.harness import child_env, gotrue_user

# -- the receiver -----------------------------------------------------------------------------------


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    body: bytes = b'{"ok":true}'


class Receiver:
    """A threaded HTTP server on 127.0.0.1 recording every POST; replies are planned per path."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.plans: dict[str, list[Reply]] = {}
        self.default: dict[str, Reply] = {}
        self.lock = threading.Lock()
        self.arrived = threading.Condition(self.lock)
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length)
                with receiver.lock:
                    receiver.requests.append(Received(self.path, {k.lower(): v for k, v in self.headers.items()},
                                                      body, time.monotonic()))
                    queue = receiver.plans.get(self.path) or []
                    reply = queue.pop(0) if queue else receiver.default.get(self.path, Reply())
                    receiver.arrived.notify_all()
                if reply.delay:
                    time.sleep(reply.delay)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except OSError:
                    pass  # the client went away (the worker was killed)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def plan(self, path: str, *replies: Reply, default: Reply | None = None) -> None:
        with self.lock:
            self.plans[path] = list(replies)
            if default is not None:
                self.default[path] = default

    def on(self, path: str) -> list[Received]:
        with self.lock:
            return [r for r in self.requests if r.path == path]

    def wait_for(self, path: str, count: int = 1, timeout: float = 20.0) -> list[Received]:
        deadline = time.monotonic() + timeout
        with self.lock:
            while len([r for r in self.requests if r.path == path]) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"timed out waiting for {count} request(s) on {path}; "
                                         f"got {len([r for r in self.requests if r.path == path])}")
                self.arrived.wait(left)
            return [r for r in self.requests if r.path == path]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    server = Receiver()
    server.thread.start()
    try:
        yield server
    finally:
        server.server.shutdown()
        server.server.server_close()


# -- the documented verification recipe (docs/webhooks.md), written from the docs --------------------


def verify_signature(secret: str, received: Received, *, tolerance: int = 300) -> bool:
    """Recompute v1 = hex(HMAC-SHA256(secret, f"{timestamp}.{raw body}")) and compare with any v1= given."""
    timestamp = received.headers.get("x-arti-timestamp", "")
    header = received.headers.get("x-arti-signature", "")
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > tolerance:
        return False
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + received.body, hashlib.sha256).hexdigest()
    candidates = [part.strip()[3:] for part in header.split(",") if part.strip().startswith("v1=")]
    return any(hmac.compare_digest(expected, candidate) for candidate in candidates)


# -- database -----------------------------------------------------------------------------------------


@pytest.fixture
async def aconn(database_url: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """An async autocommit connection, like the delivery job's: resolve_destination asks SQL's rule on it."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True, row_factory=dict_row) as c:
        yield c


@pytest.fixture
def settings(conn: psycopg.Connection[Any]) -> Iterator[Callable[..., None]]:
    """set(**{"retry_horizon_seconds": "3"}) commits webhooks.* settings; the old values come back afterwards."""
    saved: dict[str, str | None] = {}

    def put(**values: str) -> None:
        for name, value in values.items():
            key = f"webhooks.{name}"
            if key not in saved:
                row = conn.execute("select value from private.settings where key = %s", (key,)).fetchone()
                saved[key] = row["value"] if row else None
            conn.execute("insert into private.settings (key, value) values (%s, %s) "
                         "on conflict (key) do update set value = excluded.value", (key, value))

    put(allow_loopback_http="true", retry_horizon_seconds="20", retry_base_seconds="0.5",
        retry_max_interval_seconds="2", timeout_seconds="3")
    yield put
    for key, value in saved.items():
        if value is None:
            conn.execute("delete from private.settings where key = %s", (key,))
        else:
            conn.execute("update private.settings set value = %s where key = %s", (value, key))


@dataclass
class Org:
    id: uuid.UUID
    owner: uuid.UUID
    admin: uuid.UUID
    manager: uuid.UUID
    viewer: uuid.UUID
    artist: uuid.UUID
    account: uuid.UUID
    conn: psycopg.Connection[Any]

    def as_user(self, user: uuid.UUID) -> Any:
        return as_role(self.conn, "authenticated", user_claims(str(user)))

    def create_endpoint(self, url: str, events: list[str], description: str | None = None) -> dict[str, Any]:
        with self.as_user(self.admin):
            row = self.conn.execute("select public.create_webhook_endpoint(%s, %s, %s, %s) as e",
                                    (self.id, url, events, description)).fetchone()
        assert row is not None
        return row["e"]

    def fail_sync(self, error: str = "provider unavailable") -> uuid.UUID:
        """A committed sync run that fails: the event every delivery test sends."""
        run = self.conn.execute("insert into public.sync_runs (org_id, account_id, trigger) values (%s, %s, "
                                "'schedule') returning id", (self.id, self.account)).fetchone()["id"]
        self.conn.execute("update public.sync_runs set status = 'failed', error = %s, finished_at = now() "
                          "where id = %s", (error, run))
        return run

    def deliveries(self, endpoint_id: Any) -> list[dict[str, Any]]:
        return self.conn.execute(
            "select id, event_id, event_type, status::text as status, attempts, last_status_code, last_error, "
            "next_attempt_at, delivered_at from public.webhook_deliveries where endpoint_id = %s order by created_at",
            (endpoint_id,)).fetchall()

    def attempts(self, delivery_id: Any) -> list[dict[str, Any]]:
        return self.conn.execute(
            "select attempt, status_code, outcome, error from public.webhook_delivery_attempts "
            "where delivery_id = %s order by attempt", (delivery_id,)).fetchall()


def _user(conn: psycopg.Connection[Any], label: str) -> uuid.UUID:
    user = uuid.uuid4()
    conn.execute(INSERT_USER_SQL, gotrue_user(user, f"{label}-{user.hex[:8]}@example.test"))
    return user


@pytest.fixture
def make_org(conn: psycopg.Connection[Any]) -> Iterator[Callable[[], Org]]:
    """Committed organizations (owner, admin, manager, viewer, an artist and an account), removed afterwards
    with their webhook jobs."""
    created: list[Org] = []

    def make() -> Org:
        users = {role: _user(conn, role) for role in ("owner", "admin", "manager", "viewer")}
        org = conn.execute("insert into public.organizations (name, slug) values ('Hooks', %s) returning id",
                           (f"hooks-{uuid.uuid4().hex[:10]}",)).fetchone()["id"]
        for role, user in users.items():
            conn.execute("insert into public.memberships (org_id, user_id, role) values (%s, %s, %s)",
                         (org, user, role))
        artist = conn.execute("insert into public.artists (org_id, name) values (%s, 'Hook Artist') returning id",
                              (org,)).fetchone()["id"]
        account = conn.execute("insert into public.connected_accounts (org_id, artist_id, provider, external_id) "
                               "values (%s, %s, 'spotify', %s) returning id",
                               (org, artist, uuid.uuid4().hex[:12])).fetchone()["id"]
        made = Org(org, users["owner"], users["admin"], users["manager"], users["viewer"], artist, account, conn)
        created.append(made)
        return made

    yield make
    for org in created:
        conn.execute("delete from procrastinate.procrastinate_jobs where queueing_lock in "
                     "(select 'webhook-endpoint:' || id::text from public.webhook_endpoints where org_id = %s)",
                     (org.id,))
        conn.execute("delete from public.organizations where id = %s", (org.id,))
        conn.execute("delete from auth.users where id = any(%s)", ([org.owner, org.admin, org.manager, org.viewer],))


# -- workers ----------------------------------------------------------------------------------------


@pytest.fixture
def start_worker(database_url: str, tmp_path: Path) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Real `arti worker` processes on the webhooks queue (output in tmp_path, shown when a test fails)."""
    started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start() -> subprocess.Popen[bytes]:
        env = child_env(SUPABASE_DB_URL=database_url, ARTI_STALLED_WORKER_SECONDS="3")
        log = tmp_path / f"worker-{len(started)}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "arti.cli", "worker", "--concurrency", "4",
                                     "--queue", "webhooks"], cwd=PROJECT_ROOT, env=env, stdout=out,
                                    stderr=subprocess.STDOUT)
        started.append((proc, log))
        return proc

    yield start
    for proc, log in started:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if os.environ.get("ARTI_SHOW_WORKER_LOGS"):
            sys.stderr.write(log.read_text(errors="replace"))


