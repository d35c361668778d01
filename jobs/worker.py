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
* heartbeats every 5 s; the `retry_stalled_jobs` periodic task re-queues jobs of dead workers, and every
  process also sweeps for them every ARTI_STALLED_WORKER_SECONDS / 2, so a worker killed with -9 has its
  jobs re-run within about 1.5 x ARTI_STALLED_WORKER_SECONDS;
* every failed attempt is recorded in private.job_failures (jobs/failures.py);
* the database may go away (a restart, `arti db stop`, `arti db reset`): Procrastinate then stops its workers
  (the LISTEN connection or a heartbeat fails). This process waits, running jobs finish or fail, and when the
  database answers again with every migration applied (probed with backoff, up to RECONNECT_MAX seconds apart;
  during `arti db reset` that is once the new database is migrated) it starts a new session: the
  previous session's worker rows are unregistered, so any job whose end could not be recorded while the
  database was away goes back to the queue at once (`requeue_stalled`), and new workers start on the same
  pool (psycopg_pool replaces the dead connections). Jobs are idempotent (a sync re-fetches and upserts; a
  webhook is sent again with the same event id), so nothing is lost and no row is duplicated. Only another kind
  of error ends the process (the supervisor then restarts it);
* expected retries (a webhook delivery waiting for its next attempt, a provider's 429 or 5xx) are logged as one
  line; any other error keeps its traceback.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Any

import procrastinate
import psycopg
from procrastinate.worker import Worker

from arti.migrate import discover_migrations
from arti.providers.base import ProviderRateLimited, ProviderUnavailable
from arti.settings import Settings
from jobs.app import app, make_connector, make_pool
from jobs.failures import record_failures
from jobs.maintenance import requeue_stalled
from jobs.webhooks import RetryLater

POLLING_FALLBACK_SECONDS = 1.0
SYNC_QUEUE = "sync"
RECONNECT_FIRST = 0.5
RECONNECT_MAX = 5.0
EXPECTED_RETRIES: tuple[type[BaseException], ...] = (RetryLater, ProviderRateLimited, ProviderUnavailable)
"""Exceptions a task raises to be tried again later by design: logged as one line, no traceback."""

log = logging.getLogger("arti.worker")


def plan(concurrency: int, queues: list[str] | None, sync_concurrency: int) -> list[dict[str, Any]]:
    """The workers of one `arti worker` process: name suffix (None for the main one), queues (None = all) and
    concurrency of each."""
    if queues or sync_concurrency <= 0:
        return [{"name": None, "queues": queues or None, "concurrency": concurrency}]
    return [{"name": None, "queues": None, "concurrency": concurrency},
            {"name": SYNC_QUEUE, "queues": [SYNC_QUEUE], "concurrency": sync_concurrency}]


SCHEMA_IN_FLUX = (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedFunction, psycopg.errors.InvalidSchemaName)
"""Errors of a session that reconnected to a database being rebuilt (`arti db reset`: dropped, then migrated)."""
RECONNECTABLE: tuple[type[BaseException], ...] = (psycopg.OperationalError, OSError, *SCHEMA_IN_FLUX)


def connection_lost(exc: BaseException) -> bool:
    """True when `exc` (or what caused it) says the database could not be reached, dropped the connection, or is
    being rebuilt; such a session is replaced once the database is ready again."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, RECONNECTABLE):
            return True
        current = current.__cause__ or current.__context__
    return False


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    cause = exc.__cause__ or exc.__context__
    if isinstance(exc, procrastinate.exceptions.ConnectorException) and cause is not None:
        text = " ".join(str(cause).split()) or type(cause).__name__
    return text[:300]


class DatabaseNotReady(Exception):
    """The database answers but is not the one this code expects yet (migrations pending, e.g. during a reset)."""


async def _probe(url: str, migrations_dir: Path) -> None:
    """Raise unless the database answers and every migration of this code is applied (a connection of its own)."""
    async with await psycopg.AsyncConnection.connect(url, connect_timeout=5, autocommit=True) as probe:
        cur = await probe.execute("select to_regclass('supabase_migrations.schema_migrations') is not null")
        row = await cur.fetchone()
        applied: set[str] = set()
        if row and row[0]:
            cur = await probe.execute("select version from supabase_migrations.schema_migrations")
            applied = {r[0] for r in await cur.fetchall()}
    pending = [m.path.name for m in discover_migrations(migrations_dir) if m.version not in applied]
    if pending:
        raise DatabaseNotReady(f"{len(pending)} migration(s) not applied yet ({pending[0]}...); "
                               "`arti db migrate` applies them")


async def wait_for_database(url: str, migrations_dir: Path, stop: asyncio.Event) -> bool:
    """Wait until the database answers with every migration applied; False when asked to stop meanwhile."""
    delay = RECONNECT_FIRST
    told = False
    while not stop.is_set():
        try:
            await _probe(url, migrations_dir)
            if told:
                log.info("database reachable again")
            return True
        except Exception as exc:  # any failure means "not yet": said once, retried
            if not told:
                log.warning("waiting for the database (%s); retrying every %.1f-%.0f s", _one_line(exc),
                            RECONNECT_FIRST, RECONNECT_MAX)
                told = True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=delay)
        delay = min(RECONNECT_MAX, delay * 2)
    return False


async def recover(worker_app: procrastinate.App, previous: list[int], stalled: float) -> int:
    """Unregister a previous session's workers (their jobs lose their worker) and re-queue what nobody runs."""
    for worker_id in previous:
        await worker_app.job_manager.unregister_worker(worker_id)
    requeued = await requeue_stalled(worker_app, stalled)
    if previous:
        log.info("new session: unregistered the previous workers %s; %s job(s) re-queued", previous, requeued)
    return requeued


async def sweep_stalled(worker_app: procrastinate.App, stalled: float, stop: asyncio.Event) -> None:
    """Every `stalled` / 2 seconds, re-queue the jobs of workers silent for `stalled` seconds (a process killed
    with -9 leaves them `doing`); the periodic task does the same every two minutes, this makes it prompt."""
    interval = max(2.0, stalled / 2)
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
        if stop.is_set():
            return
        try:
            await requeue_stalled(worker_app, stalled)
        except Exception as exc:  # the database may be away: the next sweep tries again
            log.info("stalled-job sweep skipped: %s", _one_line(exc))


async def run_worker(settings: Settings, *, concurrency: int, queues: list[str] | None = None,
                     name: str | None = None, sync_concurrency: int | None = None) -> None:
    reserved = settings.worker_sync_concurrency if sync_concurrency is None else sync_concurrency
    workers_plan = plan(concurrency, queues, reserved)
    slots = sum(w["concurrency"] for w in workers_plan)
    stalled = settings.stalled_worker_seconds
    connector = make_connector(settings.database_url(), max_size=slots + 1)
    pool = make_pool(settings.database_url(), max_size=slots + 1)
    stop = asyncio.Event()
    current: list[Worker] = []
    loop = asyncio.get_running_loop()
    signals = (signal.SIGINT, signal.SIGTERM)

    def stop_all() -> None:
        for sig in signals:  # a second signal gets the default action
            loop.remove_signal_handler(sig)
        stop.set()
        for worker in current:
            worker.stop()

    for sig in signals:
        loop.add_signal_handler(sig, stop_all)
    try:
        await pool.open(wait=False)  # the database may be down: the process waits for it instead of failing
        with app.replace_connector(connector) as worker_app:
            await connector.open_async(pool=pool)
            try:
                if not await wait_for_database(settings.database_url(), settings.migrations_dir, stop):
                    return
                worker_app.perform_import_paths()
                sweeper = asyncio.create_task(sweep_stalled(worker_app, stalled, stop), name="stalled-job sweep")
                try:
                    await _sessions(worker_app, settings, workers_plan, name, stop, current)
                finally:
                    stop.set()
                    await sweeper
            finally:
                await connector.close_async()
    finally:
        await pool.close()
        for sig in signals:
            loop.remove_signal_handler(sig)


async def _sessions(worker_app: procrastinate.App, settings: Settings, workers_plan: list[dict[str, Any]],
                    name: str | None, stop: asyncio.Event, current: list[Worker]) -> None:
    """Run sessions of workers (`current`, which a signal stops) until `stop`: a session that loses the database
    is replaced by a new one once the database is ready again."""
    stalled = settings.stalled_worker_seconds
    previous: list[int] = []
    while not stop.is_set():
        try:
            await recover(worker_app, previous, stalled)
            current[:] = [
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
            if stop.is_set():
                break
            await _run_together(current, stop)
            if not stop.is_set():
                log.warning("the workers stopped on their own (lost database connection); starting a new session")
        except Exception as exc:
            if not connection_lost(exc):
                raise
            log.warning("database connection lost (%s); reconnecting", _one_line(exc))
        previous = [w.worker_id for w in current if w.worker_id is not None]
        if not await wait_for_database(settings.database_url(), settings.migrations_dir, stop):
            break


async def _run_together(workers: list[Worker], stop: asyncio.Event) -> None:
    """Run the workers until one of them stops (a signal stops them all; see run_worker), then stop them all."""
    tasks = [asyncio.create_task(worker.run(), name=f"procrastinate worker {worker.worker_name or ''}")
             for worker in workers]
    try:
        await asyncio.sleep(0)  # Worker.run() forgets a stop() made before it started: repeat a signal's
        if stop.is_set():
            for worker in workers:
                worker.stop()
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for worker in workers:
            worker.stop()
        results = await asyncio.gather(*tasks, return_exceptions=True)
    for result in results:
        if isinstance(result, BaseException):
            raise result


class ExpectedRetriesOnOneLine(logging.Filter):
    """Procrastinate logs every failed attempt with its traceback. For an attempt that raised one of
    EXPECTED_RETRIES and will be retried, the record becomes one line naming the exception; anything else
    (a real error, or an expected one after which the job gives up) keeps its traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and getattr(record, "action", None) == "job_error_retry" \
                and isinstance(exc, EXPECTED_RETRIES):
            record.msg = f"{record.getMessage()} ({type(exc).__name__}: {' '.join(str(exc).split())[:300]})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True


def main(settings: Settings, *, concurrency: int, queues: list[str] | None = None,
         sync_concurrency: int | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for handler in logging.getLogger().handlers:
        handler.addFilter(ExpectedRetriesOnOneLine())
    reserved = settings.worker_sync_concurrency if sync_concurrency is None else sync_concurrency
    described = "; ".join(f"{w['name'] or 'main'}: queues {', '.join(w['queues']) if w['queues'] else 'all'}, "
                          f"concurrency {w['concurrency']}" for w in plan(concurrency, queues, reserved))
    logging.getLogger("arti").info("worker starting (%s)", described)
    asyncio.run(run_worker(settings, concurrency=concurrency, queues=queues, sync_concurrency=reserved))
    return 0
