"""`arti worker`: Procrastinate workers in one process, with job slots kept for syncs.

* By default the process runs two Procrastinate workers on one connection pool: the main one serves
  every queue with `concurrency` slots, and a second one serves only the `sync` queue with
  `sync_concurrency` more slots (ARTI_WORKER_SYNC_CONCURRENCY, 2 by default). However many webhook
  drains, insight refreshes or embeddings keep the main slots busy, a sync deferred now starts in a
  sync slot at once; syncs also carry priority 10 (others 0), so the main worker fetches them first
  when it has a free slot. `--queue Q` (or sync_concurrency 0) runs one worker on exactly the given
  queues, as before.
* pool sized for every slot plus one connection;
* LISTEN/NOTIFY wakes the workers as soon as a job is deferred, with polling every second as a
  fallback (jobs that become due later, a drain queued behind the one finishing);
* SIGTERM/SIGINT stop fetching new jobs and let the running ones finish (graceful); a second signal
  is the default action (stop now);
* heartbeats every 5 s; the `retry_stalled_jobs` periodic task re-queues jobs of dead workers;
* every failed attempt is recorded in private.job_failures (jobs/failures.py).
"""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from procrastinate.worker import Worker

from arti.settings import Settings
from jobs.app import app, make_connector
from jobs.failures import record_failures
from jobs.maintenance import requeue_stalled

POLLING_FALLBACK_SECONDS = 1.0
SYNC_QUEUE = "sync"


def plan(concurrency: int, queues: list[str] | None, sync_concurrency: int) -> list[dict[str, Any]]:
    """The workers of one `arti worker` process: name suffix (None for the main one), queues (None = all) and
    concurrency of each."""
    if queues or sync_concurrency <= 0:
        return [{"name": None, "queues": queues or None, "concurrency": concurrency}]
    return [{"name": None, "queues": None, "concurrency": concurrency},
            {"name": SYNC_QUEUE, "queues": [SYNC_QUEUE], "concurrency": sync_concurrency}]


async def run_worker(settings: Settings, *, concurrency: int, queues: list[str] | None = None,
                     name: str | None = None, sync_concurrency: int | None = None) -> None:
    reserved = settings.worker_sync_concurrency if sync_concurrency is None else sync_concurrency
    workers_plan = plan(concurrency, queues, reserved)
    slots = sum(w["concurrency"] for w in workers_plan)
    connector = make_connector(settings.database_url(), max_size=slots + 1)
    with app.replace_connector(connector) as worker_app:
        async with worker_app.open_async():
            stalled = settings.stalled_worker_seconds
            await requeue_stalled(worker_app, stalled)
            worker_app.perform_import_paths()
            workers = [
                Worker(
                    app=worker_app,
                    queues=w["queues"],
                    concurrency=w["concurrency"],
                    name="-".join(filter(None, (name, w["name"]))) or None,
                    listen_notify=True,
                    fetch_job_polling_interval=POLLING_FALLBACK_SECONDS,
                    install_signal_handlers=False,
                    shutdown_graceful_timeout=None,
                    update_heartbeat_interval=max(0.5, min(5.0, stalled / 3)),
                    stalled_worker_timeout=stalled,
                    worker_middleware=[record_failures],
                )
                for w in workers_plan
            ]
            await _run_together(workers)


async def _run_together(workers: list[Worker]) -> None:
    """Run the workers until a signal (or one of them stopping) stops them all, gracefully."""
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)

    def stop_all() -> None:
        for sig in signals:  # a second signal gets the default action
            loop.remove_signal_handler(sig)
        for worker in workers:
            worker.stop()

    for sig in signals:
        loop.add_signal_handler(sig, stop_all)
    tasks = [asyncio.create_task(worker.run(), name=f"procrastinate worker {worker.worker_name or ''}")
             for worker in workers]
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        for worker in workers:
            worker.stop()
        await asyncio.gather(*tasks)
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)


def main(settings: Settings, *, concurrency: int, queues: list[str] | None = None,
         sync_concurrency: int | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    reserved = settings.worker_sync_concurrency if sync_concurrency is None else sync_concurrency
    described = "; ".join(f"{w['name'] or 'main'}: queues {', '.join(w['queues']) if w['queues'] else 'all'}, "
                          f"concurrency {w['concurrency']}" for w in plan(concurrency, queues, reserved))
    logging.getLogger("arti").info("worker starting (%s)", described)
    asyncio.run(run_worker(settings, concurrency=concurrency, queues=queues, sync_concurrency=reserved))
    return 0
