"""worker_throughput: Procrastinate jobs/s of a real worker at concurrency 16 against concurrency 1.

A bench-only Procrastinate app (`make_bench_app` below, not the project's) registers one task, `bench.noop`,
on its own queue `bench`, that only awaits `asyncio.sleep(JOB_SLEEP)` (5 ms). The sleep models an
I/O-bound job — the project's jobs spend their time waiting on provider APIs and Postgres — so
concurrency has something to overlap; a task that returns at once would measure only Procrastinate's
own fetch/finish round trips, which a 2-core machine serialises whatever the concurrency, and the
ratio would say nothing about how the worker scales the jobs it actually runs.

The worker is the real one, in process: `procrastinate.App(connector=jobs.app.make_connector(url,
max_size=concurrency + 1))` (exactly how jobs/worker.py sizes its pool) and `run_worker_async`, with
the project's schema (`procrastinate`, installed by arti.migrate; the connector sets the search_path).

* Throughput (target: concurrency 16 >= 4x the jobs/s of concurrency 1): each repetition defers N jobs
  (`batch_defer_async`, not timed), then times `run_worker_async(concurrency=c, wait=False)`, which
  returns once the queue is empty. Both connectors stay open across repetitions (the pools are warm
  after the warm-up repetitions, as a long-running worker's are); repetitions alternate 16 and 1.
* defer -> start latency (informational): a worker waiting with LISTEN/NOTIFY (as `arti worker` does)
  while jobs are deferred one at a time, LATENCY_INTERVAL apart (below both concurrencies' capacity),
  from another connector; latency = the job's `started` event minus its `deferred` event
  (procrastinate_events, both stamped by the database's clock), p50/p95 at each concurrency.

Jobs are deleted after each repetition, so the queue table stays small.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from typing import Any

import procrastinate
import psycopg
from psycopg.rows import dict_row

from bench.report import Measurement, Result
from jobs.app import make_connector

NAME = "worker_throughput"
QUEUE = "bench"
TASK_NAME = "bench.noop"
JOB_SLEEP = 0.005
CONCURRENCY = 16
TARGET = 4.0
JOBS = {"full": 600, "small": 60}
LATENCY_JOBS = {"full": 200, "small": 30}
LATENCY_INTERVAL = 0.02

async def noop() -> None:
    """A no-op job that waits like an I/O-bound one."""
    await asyncio.sleep(JOB_SLEEP)


def make_bench_app(url: str, *, max_size: int) -> procrastinate.App:
    """The bench-only app (not jobs.app.app): the project's connector, one task `bench.noop` on queue `bench`.

    A new App per connector rather than `with_connector` copies, whose tasks would keep deferring
    through the original app's connector.
    """
    app = procrastinate.App(connector=make_connector(url, max_size=max_size))
    app.task(name=TASK_NAME, queue=QUEUE)(noop)
    return app


def _cleanup(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("delete from procrastinate.procrastinate_jobs where queue_name = %s", (QUEUE,))
        conn.execute("delete from procrastinate.procrastinate_workers where last_heartbeat < now() - interval '1 hour'")


def _latencies(url: str, ids: list[int]) -> list[float]:
    with psycopg.connect(url, autocommit=True, row_factory=dict_row) as conn:
        rows = conn.execute(
            "select extract(epoch from s.at - d.at)::float8 as seconds "
            "from procrastinate.procrastinate_events as d "
            "inner join procrastinate.procrastinate_events as s on s.job_id = d.job_id and s.type = 'started' "
            "where d.type = 'deferred' and d.job_id = any(%s)",
            (ids,),
        ).fetchall()
    if len(rows) != len(ids):
        raise RuntimeError(f"found start events for {len(rows)} of {len(ids)} jobs")
    return [r["seconds"] for r in rows]


async def _wait_done(app: procrastinate.App, ids: list[int], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        rows = await app.connector.execute_query_all_async(
            "select count(*) as left from procrastinate_jobs where id = any(%(ids)s) and status <> 'succeeded'",
            ids=ids,
        )
        if rows[0]["left"] == 0:
            return
        await asyncio.sleep(0.05)
    raise RuntimeError(f"{len(ids)} jobs not done within {timeout:.0f} s")


async def _throughput(url: str, n_jobs: int, warmup: int, reps: int) -> dict[int, Measurement]:
    out = {c: Measurement(rows=n_jobs) for c in (CONCURRENCY, 1)}
    apps = {c: make_bench_app(url, max_size=c + 1) for c in out}
    for app in apps.values():
        await app.open_async()
    try:
        for i in range(warmup + reps):
            order = [CONCURRENCY, 1] if i % 2 == 0 else [1, CONCURRENCY]
            for c in order:
                app = apps[c]
                await app.tasks[TASK_NAME].batch_defer_async(*({} for _ in range(n_jobs)))
                t0 = time.perf_counter()
                await app.run_worker_async(concurrency=c, queues=[QUEUE], wait=False, listen_notify=False,
                                           install_signal_handlers=False, name=f"bench-c{c}")
                seconds = time.perf_counter() - t0
                left = await app.connector.execute_query_one_async(
                    "select count(*) as n from procrastinate_jobs where queue_name = %(q)s and status <> 'succeeded'",
                    q=QUEUE,
                )
                if left["n"]:
                    raise RuntimeError(f"concurrency {c}: {left['n']} jobs not succeeded")
                await app.connector.execute_query_async(
                    "delete from procrastinate_jobs where queue_name = %(q)s", q=QUEUE)
                if i >= warmup:
                    out[c].samples.append(seconds)
    finally:
        for app in apps.values():
            await app.close_async()
    return out


async def _latency(url: str, n_jobs: int, concurrency: int) -> list[int]:
    worker_app = make_bench_app(url, max_size=concurrency + 1)
    client_app = make_bench_app(url, max_size=2)
    await worker_app.open_async()
    await client_app.open_async()
    worker = None
    try:
        worker = asyncio.create_task(worker_app.run_worker_async(
            concurrency=concurrency, queues=[QUEUE], wait=True, listen_notify=True, fetch_job_polling_interval=5.0,
            install_signal_handlers=False, name=f"bench-latency-c{concurrency}"))
        await asyncio.sleep(0.5)  # registered and listening
        task = client_app.tasks[TASK_NAME]
        ids = []
        for _ in range(n_jobs):
            ids.append(await task.defer_async())
            await asyncio.sleep(LATENCY_INTERVAL)
        await _wait_done(client_app, ids, timeout=60 + n_jobs * JOB_SLEEP * 4)
        return ids
    finally:
        if worker is not None:
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker
        await client_app.close_async()
        await worker_app.close_async()


def run(url: str, dataset: dict[str, Any], *, warmup: int, reps: int, log: Callable[[str], None] = print
        ) -> tuple[list[Result], dict[str, Any]]:
    size = "small" if dataset["spec"]["name"] == "small" else "full"
    n_jobs, n_latency = JOBS[size], LATENCY_JOBS[size]
    _cleanup(url)
    try:
        measured = asyncio.run(_throughput(url, n_jobs, warmup, reps))
        latency: dict[int, Measurement] = {}
        for c in (CONCURRENCY, 1):
            ids = asyncio.run(_latency(url, n_latency, c))
            latency[c] = Measurement(_latencies(url, ids))
            _cleanup(url)
    finally:
        _cleanup(url)
    high, one = measured[CONCURRENCY], measured[1]
    params = {"jobs_per_repetition": n_jobs, "concurrency": CONCURRENCY, "baseline_concurrency": 1,
              "job": f"await asyncio.sleep({JOB_SLEEP})", "pool": "concurrency + 1 connections"}
    results = [
        Result(benchmark=NAME, name=f"{NAME}.jobs_per_s.c{CONCURRENCY}_vs_c1", kind="throughput",
               measured=high, baseline_name="concurrency 1", baseline=one, target_op=">=", target=TARGET,
               params=params, note="rows/s = jobs/s; each repetition drains N pre-deferred jobs (wait=False)"),
        Result(benchmark=NAME, name=f"{NAME}.defer_to_start.c{CONCURRENCY}_vs_c1", kind="time",
               measured=latency[CONCURRENCY], baseline_name="concurrency 1", baseline=latency[1], target_op="<=",
               target=None,
               params={"jobs": n_latency, "defer_interval_s": LATENCY_INTERVAL, "listen_notify": True,
                       "p50_ms": round(latency[CONCURRENCY].median * 1000, 2),
                       "p95_ms": round(latency[CONCURRENCY].p95 * 1000, 2),
                       "baseline_p50_ms": round(latency[1].median * 1000, 2),
                       "baseline_p95_ms": round(latency[1].p95 * 1000, 2)},
               note="informational: median = p50 of defer->start latency (deferred event to started event)"),
    ]
    log(f"  {NAME}: c{CONCURRENCY} {high.rows_per_s():,.0f} jobs/s, c1 {one.rows_per_s():,.0f} jobs/s; "
        f"defer->start p50/p95 c{CONCURRENCY} {latency[CONCURRENCY].median * 1000:.1f}/"
        f"{latency[CONCURRENCY].p95 * 1000:.1f} ms, c1 {latency[1].median * 1000:.1f}/{latency[1].p95 * 1000:.1f} ms")
    details = {"jobs_per_repetition": n_jobs, "job_sleep_s": JOB_SLEEP,
               "throughput": {f"c{c}": m.as_json() for c, m in measured.items()},
               "latency": {f"c{c}": m.as_json() for c, m in latency.items()}}
    return results, details
