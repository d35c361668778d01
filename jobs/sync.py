"""The sync job: fetch one account's metrics from its provider and store them.

sync_runs moves queued -> running -> succeeded/failed (Realtime subscribers see every step).
Every provider call passes the account's quota gate (arti.quotas.QuotaGate, shared by every worker
through Postgres): pacing of the provider's rolling windows, its daily budgets, and the blocks a
provider announced. A sync that cannot spend what it needs now is *deferred*, not failed: its run
goes back to queued with the reason (sync_runs.deferred_until / deferred_reason) and a job is
scheduled for when it may go on. That covers a budget without room, YouTube's quotaExceeded (every
worker stops calling YouTube until midnight Pacific), a 429's Retry-After and Instagram's per-account
limits. 5xx and network errors back off exponentially; a refused token marks the account
needs_reauth and is not retried; an account the provider no longer has fails its run.

A provider whose daily flow is the change since its previous snapshot (TikTok's views summed over recent
videos: each video's view count minus the one stored the day before) gets that stored point back from
public.metric_snapshots (`ProviderClient.previous_point_metric`).

Public data a provider serves for many accounts at once (YouTube channel statistics, Spotify artists,
50 ids per call) is fetched once per batch the planner made (private.sync_batches): the first sync of
a batch to run claims the call and stores every member's answer, the others read theirs. A job re-run
after a crash re-fetches and upserts, so it never writes duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import time
import uuid
from typing import Any

import procrastinate
import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from arti.crypto import KeySettingError, TokenCipher
from arti.http import provider_http_client
from arti.metrics_store import UPSERT_SQL, MetricRow, upsert_params
from arti.providers import get_provider
from arti.providers.base import (
    UNFETCHED,
    MetricPoint,
    PreviousPoint,
    ProviderAccountGone,
    ProviderAuthError,
    ProviderClient,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
)
from arti.quotas import QuotaDeferred, QuotaGate, ensure_specs_async
from arti.settings import Settings, get_settings
from arti.tokens import mark_needs_reauth, valid_access_token
from jobs.app import app

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
SYNC_PRIORITY = 10
"""Syncs are fetched before other jobs (priority 0) by a worker serving several queues; private.enqueue_sync
defers them with the same priority."""
BACKOFF_BASE_SECONDS = 15
SYNC_POOL_MAX = 64
"""Connections a worker process keeps for its sync jobs at most (one per running sync)."""
BATCH_FRESH_SECONDS = 12 * 3600
"""A batch's answer serves its members this long; a sync deferred past it fetches its own."""
BATCH_CLAIM_WAIT_SECONDS = 30.0
"""How long a member waits for the sync that claimed its batch's call (then takes the claim over or goes alone)."""


class SyncRetry(procrastinate.BaseRetryStrategy):
    """Retry decisions by error kind: Retry-After for 429, exponential backoff for transient errors."""

    def get_retry_decision(self, *, exception: BaseException, job: procrastinate.jobs.Job) -> Any:
        if job.attempts + 1 >= MAX_ATTEMPTS:
            return None
        if isinstance(exception, ProviderRateLimited):
            wait = exception.retry_after_seconds or BACKOFF_BASE_SECONDS
            return procrastinate.RetryDecision(retry_in={"seconds": max(1, int(wait))})
        if isinstance(exception, ProviderUnavailable | psycopg.OperationalError | OSError):
            return procrastinate.RetryDecision(retry_in={"seconds": BACKOFF_BASE_SECONDS * 2 ** job.attempts})
        return None


def _will_retry(exc: BaseException, attempts: int) -> bool:
    return attempts + 1 < MAX_ATTEMPTS and isinstance(
        exc, ProviderRateLimited | ProviderUnavailable | psycopg.OperationalError | OSError
    )


async def _connect(settings: Settings) -> psycopg.AsyncConnection[Any]:
    return await psycopg.AsyncConnection.connect(settings.database_url(), autocommit=True, row_factory=dict_row)


def _window(last_synced_at: dt.datetime | None, backfill_days: int, client: ProviderClient) -> tuple[dt.date, dt.date]:
    end = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    start = end - dt.timedelta(days=backfill_days - 1) if last_synced_at is None else last_synced_at.date()
    return client.sync_window(min(start, end), end)


_pools: dict[tuple[int, str], AsyncConnectionPool[Any]] = {}


async def _worker_pool(settings: Settings) -> AsyncConnectionPool[Any]:
    """The worker process's connections for sync jobs, reused from job to job (one per event loop and database).

    A new connection per job cost more than the job's own queries: a backend started, a TLS handshake and a
    SCRAM exchange, for every one of a day's 10,000 syncs. Connections are opened as jobs need them and
    checked at checkout (a server restart leaves none broken for a job).
    """
    key = (id(asyncio.get_running_loop()), settings.database_url())
    pool = _pools.get(key)
    if pool is None:
        pool = AsyncConnectionPool(settings.database_url(), min_size=1, max_size=SYNC_POOL_MAX, open=False,
                                   kwargs={"autocommit": True, "row_factory": dict_row},
                                   check=AsyncConnectionPool.check_connection, max_idle=300, name="arti-sync")
        _pools[key] = pool
        await pool.open(wait=False)
    return pool


async def run_sync(sync_run_id: str, *, attempts: int = 0, settings: Settings | None = None,
                   http: Any = None, pooled: bool = False) -> dict[str, Any]:
    """Do one sync run. Raises retryable errors after recording them on the run.

    `pooled`: take the connection from the worker process's pool (the task does); otherwise a connection of its own.
    """
    settings = settings or get_settings()
    if pooled:
        async with (await _worker_pool(settings)).connection() as conn:
            return await _run_closing(conn, sync_run_id, attempts, settings, http)
    conn = await _connect(settings)
    try:
        return await _run_closing(conn, sync_run_id, attempts, settings, http)
    finally:
        await conn.close()


async def _run_closing(conn: psycopg.AsyncConnection[Any], sync_run_id: str, attempts: int, settings: Settings,
                       http: Any) -> dict[str, Any]:
    try:
        return await _run(conn, sync_run_id, attempts, settings, http)
    except BaseException as exc:
        # Whatever went wrong, a run this attempt left `running` is closed, never left to look alive (a
        # retryable error has already set it back to `queued`). The error still propagates: the worker
        # records the failed attempt in private.job_failures.
        if not conn.closed:
            with contextlib.suppress(psycopg.Error):
                await conn.execute(
                    "update public.sync_runs set status = 'failed', finished_at = now(), error = %s "
                    "where id = %s and status = 'running'",
                    (f"internal error ({type(exc).__name__}); see `arti jobs --failed`", sync_run_id))
        raise


START_SQL = """
with run as (
    update public.sync_runs set status = 'running', started_at = now(), attempts = attempts + 1, error = null
    where id = %(run)s and status in ('queued', 'running') returning account_id, org_id
)
select r.account_id as run_account, a.id, a.org_id, a.provider::text as provider, a.external_id,
       a.status::text as status, a.last_synced_at,
       (select s.value::int from private.settings as s where s.key = 'sync.backfill_days') as backfill,
       case when a.status = 'active' then private.begin_sync_quota(a.provider, a.id) end as quota
from run as r left join public.connected_accounts as a on a.id = r.account_id
"""


async def _run(conn: psycopg.AsyncConnection[Any], sync_run_id: str, attempts: int, settings: Settings,
               http: Any) -> dict[str, Any]:
    # One round trip: the run starts, the account is read, and its daily quota reserved (private.begin_sync_quota).
    await ensure_specs_async(conn)
    cur = await conn.execute(START_SQL, {"run": sync_run_id})
    account = await cur.fetchone()
    if account is None:
        return {"skipped": "run already finished or unknown"}
    if account["id"] is None or account["status"] != "active":
        reason = "account is not active; reconnect it" if account["id"] else "account was deleted"
        await _fail(conn, sync_run_id, reason)
        return {"failed": reason}
    http_client = http or provider_http_client(settings.provider_gateway)
    try:
        cipher = TokenCipher.from_setting(settings.encryption_keys)
        client = get_provider(account["provider"], settings, http_client)
    except (KeySettingError, ValueError) as exc:
        if http is None:
            await http_client.aclose()
        # Configuration, not the provider: retrying cannot help until an operator acts, so fail now and say what.
        upper = account["provider"].upper()
        reason = (f"{account['provider']} is not configured on this worker: set {upper}_CLIENT_ID and "
                  f"{upper}_CLIENT_SECRET" if not isinstance(exc, KeySettingError)
                  else "ARTI_ENCRYPTION_KEYS is missing or invalid on this worker: tokens cannot be read")
        await _fail(conn, sync_run_id, reason, account_id=account["id"])
        return {"failed": reason}
    gate: QuotaGate | None = None
    if client.quota is not None:
        gate = QuotaGate(conn, client.quota, account["id"])
        client.observer = gate
    try:
        if gate is not None:
            gate.accept(account["quota"])
        points = await _fetch(conn, client, cipher, account)
        days = len({p.day for p in points})
        written = await _store(conn, account, sync_run_id, points, days, gate)
    except QuotaDeferred as deferred:
        return await _defer(conn, sync_run_id, deferred, gate)
    except ProviderRateLimited as exc:
        # The provider said stop: every worker stops calling it (or this account) until the time it gave.
        reason = f"{client.name} asked us to wait: {exc.provider_message or exc}"
        if gate is None:
            wait = exc.retry_after_seconds or BACKOFF_BASE_SECONDS
            deferred = QuotaDeferred(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=wait), reason)
        else:
            deferred = await gate.announce(exc.retry_after_seconds, reason, applies_to=exc.applies_to, scope=exc.scope)
        return await _defer(conn, sync_run_id, deferred, gate)
    except ProviderAuthError as exc:
        await mark_needs_reauth(conn, account["id"], f"{client.name} refused our access: {exc.provider_message or exc}")
        await _fail(conn, sync_run_id, f"needs re-authentication: {exc}", gate=gate)
        return {"failed": "needs_reauth"}
    except ProviderAccountGone as exc:
        await _fail(conn, sync_run_id, str(exc), gate=gate, account_id=account["id"])
        return {"failed": "gone"}
    except (ProviderError, psycopg.OperationalError, OSError) as exc:
        if _will_retry(exc, attempts):
            await conn.execute("update public.sync_runs set status = 'queued', error = %s where id = %s",
                               (f"will retry: {exc}", sync_run_id))
            raise
        await _fail(conn, sync_run_id, str(exc), gate=gate, account_id=account["id"])
        return {"failed": str(exc)}
    finally:
        if http is None:
            await http_client.aclose()
    if written:
        await _defer_insights(str(account["id"]))
    return {"succeeded": True, "metrics_written": written, "days": days}


async def _defer(conn: psycopg.AsyncConnection[Any], sync_run_id: str, deferred: QuotaDeferred,
                 gate: QuotaGate | None = None) -> dict[str, Any]:
    """The run waits in the queue until `deferred.until` (a job is scheduled then), with the reason; never failed."""
    await conn.execute("select private.defer_sync_run(%s, %s, %s)", (sync_run_id, deferred.until, deferred.reason))
    await _flush(conn, gate)
    return {"deferred": deferred.reason, "until": deferred.until.isoformat()}


async def _flush(conn: psycopg.AsyncConnection[Any], gate: QuotaGate | None) -> None:
    params = gate.flush_params() if gate is not None else None
    if params is not None:
        await conn.execute("select private.record_provider_calls(%s, %s)", params)


async def _defer_insights(account_id: str) -> None:
    """Anomalies and chunks follow in their own job, never in the sync's request path."""
    from jobs.insights import refresh_insights

    with contextlib.suppress(procrastinate.exceptions.AlreadyEnqueued):
        await refresh_insights.configure(queueing_lock=f"insights:{account_id}").defer_async(account_id=account_id)


PREVIOUS_POINT_SQL = """
select (p.point ->> 'day')::date as day, s.fetched_at as taken_at, p.point -> 'raw' as raw
from public.metric_snapshots as s
cross join lateral jsonb_array_elements(s.payload -> 'points') as p (point)
where s.account_id = %s and s.endpoint = 'fetch_metrics' and p.point ->> 'metric' = %s
  and (p.point ->> 'day')::date < %s
order by s.fetched_at desc
limit 1
"""
"""The latest stored point of a metric before a day (newest snapshots first: the account's index serves it)."""


async def _previous_point(conn: psycopg.AsyncConnection[Any], account_id: Any, metric: str,
                          before: dt.date) -> PreviousPoint | None:
    cur = await conn.execute(PREVIOUS_POINT_SQL, (account_id, metric, before))
    row = await cur.fetchone()
    if row is None or not isinstance(row["raw"], dict):
        return None
    return PreviousPoint(day=row["day"], taken_at=row["taken_at"], raw=row["raw"])


async def _fetch(conn: psycopg.AsyncConnection[Any], client: ProviderClient, cipher: TokenCipher,
                 account: dict[str, Any]) -> list[MetricPoint]:
    start, end = _window(account["last_synced_at"], account["backfill"] or 28, client)
    extra: dict[str, Any] = {}
    if client.previous_point_metric:
        # A client whose daily flow is the change since its last snapshot (TikTok's views) gets that point back.
        extra["previous"] = await _previous_point(conn, account["id"], client.previous_point_metric, end)

    async def attempt(token: str) -> list[MetricPoint]:
        public = await _public_data(conn, client, token, account) if client.public_batch_size > 1 else UNFETCHED
        return await client.fetch_metrics(token, account["external_id"], start, end, public=public, **extra)

    token = await valid_access_token(conn, cipher, client, account["id"])
    try:
        return await attempt(token)
    except ProviderAuthError:
        # The token may have been revoked early: refresh once, then try again.
        token = await valid_access_token(conn, cipher, client, account["id"], force_refresh=True)
        return await attempt(token)


BATCH_ITEM_SQL = """
select b.id as batch_id, b.fetched_at > now() - make_interval(secs => %s) as fresh, b.fetched_at, b.error,
       i.found, i.payload
from private.sync_batch_items as i join private.sync_batches as b on b.id = i.batch_id
where i.account_id = %s and b.created_at > now() - interval '1 day'
order by b.created_at desc limit 1
"""
CLAIM_BATCH_SQL = """
update private.sync_batches set claimed_at = now()
where id = %s and fetched_at is null and error is null
  and (claimed_at is null or claimed_at < now() - make_interval(secs => %s))
returning id
"""
BATCH_MEMBERS_SQL = """
select i.external_id from private.sync_batch_items as i
join public.connected_accounts as a on a.id = i.account_id
where i.batch_id = %s and a.status = 'active' order by i.external_id
"""
STORE_BATCH_SQL = """
with answered as (
    update private.sync_batch_items as i
    set found = d.payload <> 'null'::jsonb, payload = nullif(d.payload, 'null'::jsonb)
    from jsonb_each(%s::jsonb) as d (external_id, payload)
    where i.batch_id = %s and i.external_id = d.external_id
)
update private.sync_batches set fetched_at = now(), error = null where id = %s
"""


async def _public_data(conn: psycopg.AsyncConnection[Any], client: ProviderClient, token: str,
                       account: dict[str, Any]) -> Any:
    """This account's public data: from its batch's call (made now if this sync is the batch's first), or alone."""
    external_id = account["external_id"]
    deadline = time.monotonic() + BATCH_CLAIM_WAIT_SECONDS
    while True:
        cur = await conn.execute(BATCH_ITEM_SQL, (BATCH_FRESH_SECONDS, account["id"]))
        item = await cur.fetchone()
        if item is None or item["error"] or (item["fetched_at"] is not None and not item["fresh"]):
            break
        if item["fetched_at"] is not None:
            return item["payload"] if item["found"] else None
        cur = await conn.execute(CLAIM_BATCH_SQL, (item["batch_id"], BATCH_CLAIM_WAIT_SECONDS))
        if await cur.fetchone():
            return await _fetch_batch(conn, client, token, item["batch_id"], external_id)
        if time.monotonic() > deadline:
            break
        await asyncio.sleep(0.1)  # another sync of the batch is making the call
    found = await client.fetch_public(token, [external_id])
    return found.get(external_id)


async def _fetch_batch(conn: psycopg.AsyncConnection[Any], client: ProviderClient, token: str, batch_id: Any,
                       external_id: str) -> Any:
    cur = await conn.execute(BATCH_MEMBERS_SQL, (batch_id,))
    members = [row["external_id"] for row in await cur.fetchall()]
    if external_id not in members:
        members.append(external_id)
    try:
        found = await client.fetch_public(token, members)
    except (ProviderAuthError, ProviderRateLimited, ProviderUnavailable, QuotaDeferred, OSError):
        # Not the batch's fault: another member (its own token, later) takes the call over.
        await conn.execute("update private.sync_batches set claimed_at = null where id = %s", (batch_id,))
        raise
    except ProviderError as exc:
        await conn.execute("update private.sync_batches set error = %s, claimed_at = null where id = %s",
                           (str(exc)[:500], batch_id))
        raise
    await conn.execute(STORE_BATCH_SQL, (json.dumps(found), batch_id, batch_id))
    return found.get(external_id)


STORE_SQL = f"""
with written as (
    {UPSERT_SQL} returning 1
),
snapshot as (
    insert into public.metric_snapshots (org_id, account_id, sync_run_id, endpoint, payload)
    values (%s, %s, %s, 'fetch_metrics', %s)
),
finished as (
    update public.sync_runs set status = 'succeeded', finished_at = now(), error = null, days_fetched = %s,
        metrics_written = (select count(*) from written)
    where id = %s
),
account as (
    update public.connected_accounts set last_synced_at = now(), last_error = null,
        next_sync_at = date_trunc('day', now()) + interval '1 day 2 hours'
    where id = %s
),
counted as (
    select private.record_provider_calls(%s::public.provider, %s::jsonb)
)
select (select count(*) from written) as written, (select count(*) from counted) as counted
"""


async def _store(conn: psycopg.AsyncConnection[Any], account: dict[str, Any], sync_run_id: str,
                 points: list[MetricPoint], days: int, gate: QuotaGate | None) -> int:
    """Metrics, the raw snapshot, the run's end, the account's next sync and the calls counted: one statement."""
    run_id = uuid.UUID(sync_run_id)
    rows = [MetricRow(account["id"], p.metric, p.day, account["org_id"], p.value, p.note, run_id) for p in points]
    snapshot = json.dumps({"points": [{"metric": p.metric, "day": p.day.isoformat(), "raw": p.raw} for p in points]},
                          default=str)
    tally = gate.flush_params() if gate is not None else None
    cur = await conn.execute(STORE_SQL, (
        *upsert_params(rows), account["org_id"], account["id"], sync_run_id, snapshot, days, sync_run_id,
        account["id"], account["provider"], tally[1] if tally else "{}"))
    row = await cur.fetchone()
    return int(row["written"]) if row else 0


async def _fail(conn: psycopg.AsyncConnection[Any], sync_run_id: str, error: str, *, gate: QuotaGate | None = None,
                account_id: Any = None) -> None:
    """The run failed with `error`, which the account also keeps as last_error when `account_id` is given; the calls
    the gate only counted are recorded. (A run that succeeds ends in STORE_SQL.)"""
    await conn.execute(
        "update public.sync_runs set status = 'failed', finished_at = now(), error = %s, days_fetched = 0, "
        "metrics_written = 0 where id = %s",
        (error, sync_run_id),
    )
    await _flush(conn, gate)
    if account_id is not None:
        await conn.execute("update public.connected_accounts set last_error = %s where id = %s", (error, account_id))


@app.task(name="sync_account", queue="sync", priority=SYNC_PRIORITY, retry=SyncRetry(), pass_context=True)
async def sync_account(context: procrastinate.JobContext, sync_run_id: str) -> dict[str, Any]:
    """Procrastinate entry point: one sync run."""
    attempts = context.job.attempts if context.job else 0
    result = await run_sync(sync_run_id, attempts=attempts, pooled=True)
    logger.info("sync run %s: %s", sync_run_id, result)
    return result
