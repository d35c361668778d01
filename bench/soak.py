"""soak: the handlers and the worker under a steady, bounded load for minutes: errors, memory and connections.

Information, not a race: nothing here is timed against a target. Two real processes, started exactly as
`arti platform start` starts them (`python -m handlers --host 127.0.0.1 --port P`, `python -m arti.cli worker`
with its defaults: concurrency 4 plus 2 sync slots, a pool of 7), in embedded mode against the bench cluster,
loopback only. For DURATION seconds (5 minutes full, 20 s with --small; ARTI_SOAK_SECONDS overrides; --reps
and --warmup do not apply: one run) the load is, at fixed rates:

* HTTP: HTTP_PER_S requests a second to the handlers, alternating GET /functions/v1/health (a pooled database
  connection: migrations, worker heartbeat, queue depth and failures) and /functions/v1/health/live;
* jobs: SYNCS_PER_S syncs a second (`private.enqueue_sync` on ACCOUNTS revoked accounts of the benchmark's own
  organization: the real task claims the run, finds the account inactive and closes it, as in fair_queues), and
  EVENTS_PER_S events a second (`member.invited`) for one webhook endpoint on a loopback receiver answering 200
  at once: one delivery each, sent by the endpoint's drain jobs.

Every SAMPLE seconds: each process's resident memory (VmRSS) and its open database connections
(pg_stat_activity by application_name, set through PGAPPNAME). At the end, after the queue has drained, errors =
HTTP answers other than 200 (and failed requests) + failed jobs and failed attempts (private.job_failures) +
deliveries not delivered. Results (the first WARMUP_SHARE of the run is warm-up; "early" is the next fifth,
"late" the last fifth):

* `soak.success_rate` (score, target >= 1.000): 1 - errors / operations (requests + sync jobs + deliveries);
  the error count by kind is in the params;
* `soak.handlers_rss` / `soak.worker_rss` (score, target <= 1.10): median RSS late / early;
* `soak.db_connections` (score, target <= 1.0): most long-lived connections (open 10 s or more: the pools and
  the LISTEN connections, where a leak would accumulate) late / early, handlers + worker; the peaks of all
  connections (a sync or a drain also holds one of its own while it runs) are in the params;
* `soak.http_latency` (time, p95, no target): request latency late against early.

The measurements attached to the score rows are latencies (HTTP requests for the handlers rows, webhook
deliveries' created -> delivered for the worker rows), late against early. Server settings are in the params.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psycopg
from psycopg.rows import dict_row

from arti.settings import PROJECT_ROOT
from bench.fair_queues import _setup, _teardown, _wait, slow_receiver
from bench.handlers_http import free_port
from bench.report import Measurement, Result

NAME = "soak"
DURATION = {"full": 300.0, "small": 20.0}
SAMPLE = {"full": 5.0, "small": 1.0}
HTTP_PER_S = 40
SYNCS_PER_S = 4
EVENTS_PER_S = 10
ACCOUNTS = 4
WARMUP_SHARE = 0.2
RSS_TARGET = 1.10
CONNECTIONS_TARGET = 1.0
DRAIN_TIMEOUT = 120.0
LONG_LIVED = 10.0
"""Seconds after which a connection counts as long-lived (at most half the warm-up, for short runs)."""
APPS = {"handlers": "arti-soak-handlers", "worker": "arti-soak-worker"}


def _env(url: str, app: str, folder: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUPABASE_", "ARTI_", "PG"))}
    env.update(ARTI_DB_PORT=str(urlsplit(url).port or 5432), ARTI_DATA_DIR=str(folder), PGAPPNAME=app,
               PYTHONPATH=os.pathsep.join(filter(None, [str(PROJECT_ROOT), env.get("PYTHONPATH")])))
    return env


@contextmanager
def _process(name: str, argv: list[str], env: dict[str, str], folder: Path) -> Iterator[subprocess.Popen[bytes]]:
    with (folder / f"{name}.log").open("wb") as out:
        proc = subprocess.Popen(argv, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def _connections(conn: psycopg.Connection[Any], long_lived: float) -> dict[str, dict[str, int]]:
    """Per process: every open connection, and the long-lived ones (open for `long_lived` seconds: the pools and
    the LISTEN connections, where a leak would pile up; a job's own connection lasts as long as the job)."""
    rows = conn.execute("select application_name as app, count(*) as n, count(*) filter (where backend_start < "
                        "now() - make_interval(secs => %s)) as long_lived from pg_stat_activity "
                        "where application_name = any(%s) group by 1", (long_lived, list(APPS.values()))).fetchall()
    found = {r["app"]: {"all": int(r["n"]), "long_lived": int(r["long_lived"])} for r in rows}
    return {name: found.get(app, {"all": 0, "long_lived": 0}) for name, app in APPS.items()}


class HttpLoad(threading.Thread):
    """HTTP_PER_S requests a second on one keep-alive connection, paced; latencies and failures recorded."""

    def __init__(self, base: str, stop: threading.Event, started: float) -> None:
        super().__init__(daemon=True)
        self.base, self.stop, self.started = base, stop, started
        self.samples: list[tuple[float, float]] = []  # (offset from start, seconds)
        self.failures: dict[str, int] = {}

    def run(self) -> None:
        paths = ["/functions/v1/health", "/functions/v1/health/live"]
        interval = 1.0 / HTTP_PER_S
        with httpx.Client(base_url=self.base, timeout=10.0) as client:
            n = 0
            next_at = time.monotonic()
            while not self.stop.is_set():
                t0 = time.perf_counter()
                try:
                    status = client.get(paths[n % 2]).status_code
                except httpx.HTTPError as exc:
                    status = type(exc).__name__
                self.samples.append((time.monotonic() - self.started, time.perf_counter() - t0))
                if status != 200:
                    self.failures[str(status)] = self.failures.get(str(status), 0) + 1
                n += 1
                next_at += interval
                time.sleep(max(0.0, next_at - time.monotonic()))


class JobLoad(threading.Thread):
    """SYNCS_PER_S syncs and EVENTS_PER_S webhook events a second, paced."""

    def __init__(self, url: str, world: dict[str, Any], stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.url, self.world, self.stop = url, world, stop
        self.runs: list[Any] = []
        self.events = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        tick = 0.1
        per_tick = {"syncs": SYNCS_PER_S * tick, "events": EVENTS_PER_S * tick}
        owed = {"syncs": 0.0, "events": 0.0}
        try:
            with psycopg.connect(self.url, autocommit=True, row_factory=dict_row) as conn:
                next_at = time.monotonic()
                while not self.stop.is_set():
                    for kind in owed:
                        owed[kind] += per_tick[kind]
                    while owed["syncs"] >= 1:
                        account = self.world["accounts"][len(self.runs) % len(self.world["accounts"])]
                        self.runs.append(conn.execute("select private.enqueue_sync(%s, 'manual') as id",
                                                      (account,)).fetchone()["id"])
                        owed["syncs"] -= 1
                    while owed["events"] >= 1:
                        conn.execute("select private.emit_event(%s, 'member.invited', jsonb_build_object("
                                     "'email', %s::text, 'role', 'viewer'))",
                                     (self.world["org"], f"soak{self.events}@bench.test"))
                        self.events += 1
                        owed["events"] -= 1
                    next_at += tick
                    time.sleep(max(0.0, next_at - time.monotonic()))
        except BaseException as exc:  # reported by run(): the load must not stop silently
            self.error = exc


def _windows(duration: float) -> tuple[tuple[float, float], tuple[float, float]]:
    early = (duration * WARMUP_SHARE, duration * (WARMUP_SHARE + 0.2))
    late = (duration * 0.8, duration + 1e-9)
    return early, late


def _within(points: list[tuple[float, float]], window: tuple[float, float]) -> list[float]:
    return [value for at, value in points if window[0] <= at < window[1]]


def _server_settings(conn: psycopg.Connection[Any]) -> dict[str, str]:
    rows = conn.execute("select name, setting, unit from pg_settings where name = any(%s)",
                        (["max_connections", "shared_buffers", "work_mem", "synchronous_commit"],)).fetchall()
    return {r["name"]: f"{r['setting']}{' x ' + r['unit'] if r['unit'] else ''}" for r in rows}


def run(url: str, dataset: dict[str, Any], *, warmup: int, reps: int, log: Callable[[str], None] = print
        ) -> tuple[list[Result], dict[str, Any]]:
    size = "small" if dataset["spec"]["name"] == "small" else "full"
    duration = float(os.environ.get("ARTI_SOAK_SECONDS") or DURATION[size])
    every = SAMPLE[size]
    long_lived = min(LONG_LIVED, duration * WARMUP_SHARE / 2)
    samples: list[dict[str, Any]] = []
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn, \
            tempfile.TemporaryDirectory(prefix="arti-bench-soak-") as tmp:
        folder = Path(tmp)
        world = _setup(conn)
        settings = _server_settings(conn)
        try:
            with slow_receiver(0.0) as (receiver_port, arrivals):
                endpoint = conn.execute(
                    "insert into public.webhook_endpoints (org_id, url, events, secret_hint) values (%s, %s, "
                    "'{member.invited}', 'whsec_...soak') returning id",
                    (world["org"], f"http://127.0.0.1:{receiver_port}/soak")).fetchone()["id"]
                conn.execute("insert into private.webhook_secrets (endpoint_id, secret) values (%s, %s)",
                             (endpoint, "whsec_" + os.urandom(32).hex()))
                port = free_port()
                handlers_argv = [sys.executable, "-m", "handlers", "--host", "127.0.0.1", "--port", str(port)]
                worker_argv = [sys.executable, "-m", "arti.cli", "worker"]
                with _process("handlers", handlers_argv, _env(url, APPS["handlers"], folder), folder) as handlers, \
                        _process("worker", worker_argv, _env(url, APPS["worker"], folder), folder) as worker:
                    base = f"http://127.0.0.1:{port}"
                    _wait(lambda: _healthy(base), 60, "the handlers and the worker to be up (/health 200)",
                          every=0.1)
                    stop = threading.Event()
                    started = time.monotonic()
                    load = [HttpLoad(base, stop, started), JobLoad(url, world, stop)]
                    for thread in load:
                        thread.start()
                    try:
                        while (elapsed := time.monotonic() - started) < duration:
                            for name, proc in (("handlers", handlers), ("worker", worker)):
                                if proc.poll() is not None:
                                    raise RuntimeError(f"the {name} exited with {proc.returncode} during the soak; "
                                                       f"see {folder / name}.log")
                            samples.append({"t": round(elapsed, 1), "rss_kib": {"handlers": rss_kib(handlers.pid),
                                                                                "worker": rss_kib(worker.pid)},
                                            "connections": _connections(conn, long_lived)})
                            time.sleep(max(0.0, every - (time.monotonic() - started - elapsed)))
                    finally:
                        stop.set()
                        for thread in load:
                            thread.join(timeout=30)
                    http_load, job_load = load
                    assert isinstance(http_load, HttpLoad) and isinstance(job_load, JobLoad)
                    if job_load.error is not None:
                        raise RuntimeError(f"the job load failed: {job_load.error}")
                    outcome = _drained(conn, world, endpoint, job_load)
                    outcome["requests_received"] = len(arrivals)
        finally:
            _teardown(conn, world)
    return _report(duration, every, long_lived, samples, http_load, outcome, settings, log)


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/functions/v1/health", timeout=2.0).status_code == 200
    except httpx.HTTPError:
        return False


def _drained(conn: psycopg.Connection[Any], world: dict[str, Any], endpoint: Any, load: JobLoad) -> dict[str, Any]:
    """Wait until every sync and delivery of the soak has finished; what became of them."""
    def pending() -> bool:
        row = conn.execute(
            "select (select count(*) from procrastinate.procrastinate_jobs where status in ('todo', 'doing') and "
            "  args ->> 'sync_run_id' in (select id::text from public.sync_runs where org_id = %(org)s)) "
            "+ (select count(*) from public.webhook_deliveries where endpoint_id = %(e)s and status = 'pending') "
            "as n", {"org": world["org"], "e": endpoint}).fetchone()
        return int(row["n"]) == 0

    _wait(pending, DRAIN_TIMEOUT, "the soak's jobs and deliveries to finish", every=0.1)
    jobs = conn.execute(
        "select status::text as status, count(*) as n from procrastinate.procrastinate_jobs where args ->> "
        "'sync_run_id' in (select id::text from public.sync_runs where org_id = %s) group by 1",
        (world["org"],)).fetchall()
    deliveries = conn.execute("select status::text as status, count(*) as n from public.webhook_deliveries "
                              "where endpoint_id = %s group by 1", (endpoint,)).fetchall()
    latencies = conn.execute(
        "select extract(epoch from created_at - min(created_at) over ())::float8 as at, "
        "extract(epoch from delivered_at - created_at)::float8 as seconds from public.webhook_deliveries "
        "where endpoint_id = %s and status = 'delivered'", (endpoint,)).fetchall()
    failures = conn.execute(
        "select count(*) as n from private.job_failures where task_args ->> 'endpoint_id' = %s or task_args ->> "
        "'sync_run_id' in (select id::text from public.sync_runs where org_id = %s)",
        (str(endpoint), world["org"])).fetchone()
    return {"syncs_queued": len(set(load.runs)), "events": load.events,
            "jobs": {r["status"]: int(r["n"]) for r in jobs},
            "deliveries": {r["status"]: int(r["n"]) for r in deliveries},
            "delivery_latency": [(float(r["at"]), float(r["seconds"])) for r in latencies],
            "failed_attempts": int(failures["n"]) if failures else 0}


def _report(duration: float, every: float, long_lived_after: float, samples: list[dict[str, Any]], http: HttpLoad,
            outcome: dict[str, Any], settings: dict[str, str], log: Callable[[str], None]
            ) -> tuple[list[Result], dict[str, Any]]:
    early, late = _windows(duration)

    def series(pick: Callable[[dict[str, Any]], float]) -> list[tuple[float, float]]:
        return [(s["t"], pick(s)) for s in samples]

    def ratio(values: list[tuple[float, float]], how: Callable[[list[float]], float]) -> float:
        first, last = _within(values, early), _within(values, late)
        return how(last) / how(first) if first and last and how(first) else float("nan")

    rss = {name: series(lambda s, n=name: s["rss_kib"][n]) for name in ("handlers", "worker")}
    long_lived = series(lambda s: sum(c["long_lived"] for c in s["connections"].values()))
    http_early, http_late = (Measurement(_within(http.samples, w)) for w in (early, late))
    delivery_early, delivery_late = (Measurement(_within(outcome["delivery_latency"], w)) for w in (early, late))
    errors = {"http": sum(http.failures.values()), "jobs_failed": outcome["jobs"].get("failed", 0),
              "failed_attempts": outcome["failed_attempts"],
              "deliveries_not_delivered": sum(n for s, n in outcome["deliveries"].items() if s != "delivered")}
    total_errors = sum(errors.values())
    operations = len(http.samples) + sum(outcome["jobs"].values()) + sum(outcome["deliveries"].values())
    success_rate = max(0.0, operations - total_errors) / operations if operations else 0.0
    peak = {name: max((s["connections"][name]["all"] for s in samples), default=0) for name in APPS}
    long_lived_peak = {name: max((s["connections"][name]["long_lived"] for s in samples), default=0)
                       for name in APPS}
    params = {"duration_s": duration, "sample_every_s": every, "http_per_s": HTTP_PER_S, "syncs_per_s": SYNCS_PER_S,
              "events_per_s": EVENTS_PER_S, "requests": len(http.samples), "errors": errors,
              "http_failures": http.failures, "syncs": outcome["syncs_queued"], "jobs": outcome["jobs"],
              "events": outcome["events"], "deliveries": outcome["deliveries"],
              "requests_received": outcome["requests_received"],
              "rss_kib": {name: {"early_median": _median(_within(v, early)), "late_median": _median(_within(v, late)),
                                 "max": max((x for _, x in v), default=0)} for name, v in rss.items()},
              "long_lived_after_s": long_lived_after, "connections_peak": peak,
              "long_lived_connections_peak": long_lived_peak,
              "connections_bound": {"handlers": "pool max 10", "worker": "pool 7 + 2 LISTEN + one per running "
                                                                           "sync or drain (6 slots)"},
              "windows_s": {"early": early, "late": late},
              "processes": "python -m handlers (uvicorn, 1 process, pool max 10); python -m arti.cli worker "
                           "(concurrency 4 + 2 sync slots, pool 7, 2 LISTEN connections)",
              "server_settings": settings}
    results = [
        Result(benchmark=NAME, name=f"{NAME}.success_rate", kind="score", measured=http_late,
               baseline_name="early window", baseline=http_early, target_op=">=", target=1.0, value=success_rate,
               params=params, note="score = 1 - errors / operations (requests, sync jobs, deliveries); errors = HTTP "
                                   "!= 200, failed jobs and attempts, undelivered webhooks; timings: HTTP latency"),
        Result(benchmark=NAME, name=f"{NAME}.handlers_rss", kind="score", measured=http_late,
               baseline_name="early window", baseline=http_early, target_op="<=", target=RSS_TARGET,
               value=ratio(rss["handlers"], statistics.median), params=params,
               note="score = handlers' median RSS late / early; timings: HTTP latency"),
        Result(benchmark=NAME, name=f"{NAME}.worker_rss", kind="score", measured=delivery_late,
               baseline_name="early window", baseline=delivery_early, target_op="<=", target=RSS_TARGET,
               value=ratio(rss["worker"], statistics.median), params=params,
               note="score = worker's median RSS late / early; timings: webhook created -> delivered"),
        Result(benchmark=NAME, name=f"{NAME}.db_connections", kind="score", measured=delivery_late,
               baseline_name="early window", baseline=delivery_early, target_op="<=", target=CONNECTIONS_TARGET,
               value=ratio(long_lived, max), params=params,
               note=f"score = most long-lived database connections (open {long_lived_after:g} s or more: pools and "
                    "LISTEN; handlers + worker) late / early"),
        Result(benchmark=NAME, name=f"{NAME}.http_latency", kind="time", measured=http_late,
               baseline_name="early window", baseline=http_early, target_op="<=", target=None, stat="p95",
               params=params, note="informational: request latency p95, late against early"),
    ]
    log(f"  {NAME}: {duration:.0f} s, {len(http.samples):,} requests, {outcome['syncs_queued']:,} syncs, "
        f"{outcome['events']:,} webhook events; {total_errors} errors {errors}; RSS late/early handlers "
        f"{results[1].ratio:.3f} worker {results[2].ratio:.3f}; connections late/early {results[3].ratio:.2f} "
        f"(long-lived peak {long_lived_peak}, all peak {peak})")
    details = {"samples": samples, "errors": errors, "outcome": {k: v for k, v in outcome.items()
                                                                 if k != "delivery_latency"}}
    return results, details


def _median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None
