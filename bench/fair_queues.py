"""fair_queues: a sync's defer -> start latency during a webhook flood against the same on an idle queue.

A real `arti worker --concurrency 4` process (its defaults otherwise: every queue on 4 slots plus
ARTI_WORKER_SYNC_CONCURRENCY = 2 slots kept for the sync queue; syncs at priority 10) runs against the
bench cluster. The benchmark creates its own organization (removed afterwards) with ACCOUNTS connected
accounts that are `revoked`: their sync job runs the real task, which finds the account inactive and
ends at once, so what is measured is the queue (enqueue_sync's job: queue `sync`, priority 10, its
locks) and not a provider. One sample = `private.enqueue_sync(account, 'manual')`, then wait until the
job has finished; latency = the job's `started` event minus its `deferred` event (database clock).

* Idle: the worker has nothing else to do.
* Flood: ENDPOINTS webhook endpoints on a loopback receiver that answers after RECEIVER_DELAY, and
  EVENTS events (member.invited) for them: ENDPOINTS x EVENTS deliveries, one drain job per endpoint,
  enough to keep the worker's 4 general slots busy during the whole block (checked: every sample is
  taken while 4 drains run, and deliveries are still pending at the end of the block); sampling
  starts SETTLE seconds after the drains fill the slots.
* Blocks alternate (idle, flood, idle, flood...: `--reps` blocks of each, SAMPLES samples in all per
  kind); the flood is created afresh for each block and removed after it.

Target: flood p95 <= 2x idle p95 (`webhooks.allow_loopback_http` is set for the run and restored).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from arti.settings import PROJECT_ROOT
from bench.report import Measurement, Result

NAME = "fair_queues"
TARGET = 2.0
CONCURRENCY = 4
ENDPOINTS = 8
EVENTS = {"full": 250, "small": 60}
SAMPLES = {"full": 100, "small": 40}
WARMUP_SAMPLES = 5
ACCOUNTS = 4
RECEIVER_DELAY = 0.5
SETTLE = 1.0


@contextmanager
def slow_receiver(delay: float) -> Iterator[tuple[int, list[float]]]:
    """A threaded HTTP server on 127.0.0.1 that answers every POST 200 after `delay`; yields (port, arrivals)."""
    arrivals: list[float] = []

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            arrivals.append(time.monotonic())
            time.sleep(delay)
            try:
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()
            except OSError:
                pass

        def log_message(self, *args: Any) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1]), arrivals
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def worker_process(url: str, folder: Path) -> Iterator[subprocess.Popen[bytes]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUPABASE_", "ARTI_"))}
    env.update(SUPABASE_DB_URL=url, PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT_ROOT),
                                                                            env.get("PYTHONPATH")])))
    with (folder / "worker.log").open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "arti.cli", "worker", "--concurrency", str(CONCURRENCY)],
                                cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)


def _setup(conn: psycopg.Connection[Any]) -> dict[str, Any]:
    tag = uuid.uuid4().hex[:8]
    org = conn.execute("insert into public.organizations (name, slug) values ('Bench fair queues', %s) "
                       "returning id", (f"bench-fair-{tag}",)).fetchone()["id"]
    artist = conn.execute("insert into public.artists (org_id, name) values (%s, 'Fair') returning id",
                          (org,)).fetchone()["id"]
    accounts = [conn.execute("insert into public.connected_accounts (org_id, artist_id, provider, external_id, status) "
                             "values (%s, %s, %s, %s, 'revoked') returning id",
                             (org, artist, provider, f"fair-{tag}-{provider}")).fetchone()["id"]
                for provider in ("spotify", "youtube", "instagram", "soundcloud")[:ACCOUNTS]]
    saved = conn.execute("select value from private.settings where key = 'webhooks.allow_loopback_http'").fetchone()
    conn.execute("insert into private.settings (key, value) values ('webhooks.allow_loopback_http', 'true') "
                 "on conflict (key) do update set value = excluded.value")
    return {"org": org, "accounts": accounts, "loopback_setting": saved["value"] if saved else None}


def _teardown(conn: psycopg.Connection[Any], world: dict[str, Any]) -> None:
    _remove_flood(conn, world)
    conn.execute("delete from procrastinate.procrastinate_jobs where args ->> 'sync_run_id' in "
                 "(select id::text from public.sync_runs where org_id = %s)", (world["org"],))
    conn.execute("delete from public.organizations where id = %s", (world["org"],))
    if world["loopback_setting"] is None:
        conn.execute("delete from private.settings where key = 'webhooks.allow_loopback_http'")
    else:
        conn.execute("update private.settings set value = %s where key = 'webhooks.allow_loopback_http'",
                     (world["loopback_setting"],))


def _remove_flood(conn: psycopg.Connection[Any], world: dict[str, Any]) -> None:
    """Endpoints go with their deliveries; waiting drains are deleted, running ones end after their request."""
    conn.execute("delete from procrastinate.procrastinate_jobs where status = 'todo' and queueing_lock in "
                 "(select 'webhook-endpoint:' || id from public.webhook_endpoints where org_id = %s)", (world["org"],))
    conn.execute("delete from public.webhook_endpoints where org_id = %s", (world["org"],))


def _drains_running(conn: psycopg.Connection[Any], org: Any) -> int:
    return int(conn.execute(
        "select count(*) as n from procrastinate.procrastinate_jobs as j join public.webhook_endpoints as e "
        "on j.queueing_lock = 'webhook-endpoint:' || e.id where e.org_id = %s and j.status = 'doing'",
        (org,)).fetchone()["n"])


def _wait(predicate: Callable[[], Any], timeout: float, what: str, every: float = 0.02) -> Any:
    """Poll `predicate` every `every` seconds until it returns something truthy (returned); RuntimeError after
    `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(every)
    raise RuntimeError(f"timed out waiting for {what}")


def _sample(conn: psycopg.Connection[Any], account: Any, check: Callable[[], None] | None = None) -> float:
    """Queue one sync, wait until its job has finished; its defer -> start latency in seconds."""
    if check:
        check()
    run = conn.execute("select private.enqueue_sync(%s, 'manual') as id", (account,)).fetchone()["id"]
    job = conn.execute("select id from procrastinate.procrastinate_jobs where args ->> 'sync_run_id' = %s",
                       (str(run),)).fetchone()["id"]
    _wait(lambda: conn.execute("select status::text not in ('todo', 'doing') as done "
                               "from procrastinate.procrastinate_jobs where id = %s", (job,)).fetchone()["done"],
          timeout=120, what="a sync job to finish")
    row = conn.execute("select extract(epoch from s.at - d.at)::float8 as seconds "
                       "from procrastinate.procrastinate_events as d join procrastinate.procrastinate_events as s "
                       "on s.job_id = d.job_id and s.type = 'started' where d.job_id = %s and d.type = 'deferred'",
                       (job,)).fetchone()
    if row is None:
        raise RuntimeError(f"job {job} has no started event")
    time.sleep(0.05)
    return float(row["seconds"])


def _start_flood(conn: psycopg.Connection[Any], world: dict[str, Any], port: int, events: int) -> None:
    for i in range(ENDPOINTS):
        _create_endpoint(conn, world["org"], f"http://127.0.0.1:{port}/hook-{i}")
    conn.execute("select private.emit_event(%s, 'member.invited', jsonb_build_object('email', "
                 "'x' || g || '@bench.test', 'role', 'viewer')) from generate_series(1, %s) as g",
                 (world["org"], events))
    _wait(lambda: _drains_running(conn, world["org"]) >= CONCURRENCY, timeout=60,
          what="the drains to fill the worker's general slots")
    time.sleep(SETTLE)  # past the drains' start-up: a flood in its steady state


def run(url: str, dataset: dict[str, Any], *, warmup: int, reps: int, log: Callable[[str], None] = print
        ) -> tuple[list[Result], dict[str, Any]]:
    size = "small" if dataset["spec"]["name"] == "small" else "full"
    samples, events = SAMPLES[size], EVENTS[size]
    blocks = max(1, min(reps, samples))
    per_block = [samples // blocks + (1 if b < samples % blocks else 0) for b in range(blocks)]
    idle, flood = Measurement(), Measurement()
    observed: dict[str, Any] = {"deliveries_per_flood": ENDPOINTS * events, "pending_after_block": [],
                                "requests_received": 0}
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn, \
            tempfile.TemporaryDirectory(prefix="arti-bench-fair-") as tmp:
        world = _setup(conn)
        accounts = world["accounts"]
        turn = iter(range(10**9))

        def sample(check: Callable[[], None] | None = None) -> float:
            return _sample(conn, accounts[next(turn) % len(accounts)], check)

        def busy() -> None:
            running = _drains_running(conn, world["org"])
            if running < CONCURRENCY:
                raise RuntimeError(f"only {running} drains running: the flood is too small for this sample")

        try:
            with slow_receiver(RECEIVER_DELAY) as (port, arrivals), worker_process(url, Path(tmp)) as proc:
                _wait(lambda: conn.execute("select count(*) >= 2 as up from procrastinate.procrastinate_workers "
                                           "where last_heartbeat > now() - interval '10 seconds'").fetchone()["up"],
                      timeout=30, what="the worker to start")
                for _ in range(WARMUP_SAMPLES * max(warmup, 1)):  # the worker's pool and plans warm up
                    sample()
                # Blocks alternate: idle samples, then the same number during a fresh flood, then the flood is
                # removed (endpoints and deliveries deleted; running drains end after their current request).
                for n in per_block:
                    idle.samples.extend(sample() for _ in range(n))
                    _start_flood(conn, world, port, events)
                    flood.samples.extend(sample(busy) for _ in range(n))
                    pending = int(conn.execute("select count(*) as n from public.webhook_deliveries "
                                               "where org_id = %s and status = 'pending'",
                                               (world["org"],)).fetchone()["n"])
                    if pending == 0:
                        raise RuntimeError("the flood was over before the block's last sample")
                    observed["pending_after_block"].append(pending)
                    _remove_flood(conn, world)
                    _wait(lambda: _drains_running(conn, world["org"]) == 0, timeout=60, what="the drains to end")
                observed["requests_received"] = len(arrivals)
                if proc.poll() is not None:
                    raise RuntimeError(f"the worker exited with {proc.returncode}")
        finally:
            _teardown(conn, world)
    params = {"worker": f"arti worker --concurrency {CONCURRENCY} (+ ARTI_WORKER_SYNC_CONCURRENCY default 2 for "
                        "the sync queue); LISTEN/NOTIFY, 1 s polling", "endpoints": ENDPOINTS,
              "events_per_flood": events, "receiver_delay_s": RECEIVER_DELAY, "samples": samples, "blocks": blocks,
              "p50_ms": round(flood.median * 1000, 2), "p95_ms": round(flood.p95 * 1000, 2),
              "baseline_p50_ms": round(idle.median * 1000, 2), "baseline_p95_ms": round(idle.p95 * 1000, 2),
              **observed}
    results = [Result(benchmark=NAME, name=f"{NAME}.sync_defer_to_start.flood_vs_idle", kind="time", measured=flood,
                      baseline_name="idle queue", baseline=idle, target_op="<=", target=TARGET, stat="p95",
                      params=params, note="sync defer -> start (deferred to started event) while webhook drains "
                                          "fill every general slot, against the same with nothing else queued; "
                                          "idle and flood blocks alternate")]
    log(f"  {NAME}: sync defer->start p50/p95 during floods of {ENDPOINTS * events} deliveries "
        f"{flood.median * 1000:.1f}/{flood.p95 * 1000:.1f} ms, idle {idle.median * 1000:.1f}/{idle.p95 * 1000:.1f} ms "
        f"({blocks} block(s) each)")
    return results, {"idle": idle.as_json(), "flood": flood.as_json(), **observed}


def _create_endpoint(conn: psycopg.Connection[Any], org: Any, url: str) -> None:
    """An endpoint written directly (the bench organization has no admin to call the RPC as)."""
    endpoint = conn.execute("insert into public.webhook_endpoints (org_id, url, events, secret_hint) "
                            "values (%s, %s, '{member.invited}', 'whsec_...bench') returning id", (org, url)).fetchone()
    conn.execute("insert into private.webhook_secrets (endpoint_id, secret) values (%s, %s)",
                 (endpoint["id"], "whsec_" + uuid.uuid4().hex + uuid.uuid4().hex))
