"""`arti worker`: a Procrastinate worker.

* pool sized concurrency + 1 (one connection per running job plus the LISTEN connection);
* LISTEN/NOTIFY wakes it as soon as a job is deferred, with polling as a fallback;
* SIGTERM/SIGINT stop fetching new jobs and let the running ones finish (graceful);
* heartbeats every 5 s; the `retry_stalled_jobs` periodic task re-queues jobs of dead workers;
* every failed attempt is recorded in private.job_failures (jobs/failures.py).
"""

from __future__ import annotations

import asyncio
import logging

from arti.settings import Settings
from jobs.app import app, make_connector
from jobs.failures import record_failures
from jobs.maintenance import requeue_stalled

POLLING_FALLBACK_SECONDS = 5.0


async def run_worker(settings: Settings, *, concurrency: int, queues: list[str] | None = None,
                     name: str | None = None) -> None:
    connector = make_connector(settings.database_url(), max_size=concurrency + 1)
    with app.replace_connector(connector) as worker_app:
        async with worker_app.open_async():
            stalled = settings.stalled_worker_seconds
            await requeue_stalled(worker_app, stalled)
            await worker_app.run_worker_async(
                concurrency=concurrency,
                queues=queues,
                name=name,
                listen_notify=True,
                fetch_job_polling_interval=POLLING_FALLBACK_SECONDS,
                install_signal_handlers=True,
                shutdown_graceful_timeout=None,
                update_heartbeat_interval=max(0.5, min(5.0, stalled / 3)),
                stalled_worker_timeout=stalled,
                worker_middleware=[record_failures],
            )


def main(settings: Settings, *, concurrency: int, queues: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("arti").info("worker starting: concurrency %s, queues %s", concurrency, queues or "all")
    asyncio.run(run_worker(settings, concurrency=concurrency, queues=queues))
    return 0
