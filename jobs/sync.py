"""The sync job: fetch one account's metrics from its provider and store them.

sync_runs moves queued -> running -> succeeded/failed (Realtime subscribers see every step).
Retries: 429 waits the provider's Retry-After (recorded for every worker through the shared
rate limiter); 5xx and network errors back off exponentially; a refused token marks the account
needs_reauth and is not retried. A job re-run after a crash re-fetches and upserts, so it
never writes duplicates.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import uuid
from typing import Any

import procrastinate
import psycopg
from psycopg.rows import dict_row

from arti.crypto import KeySettingError, TokenCipher
from arti.http import provider_http_client
from arti.metrics_store import MetricRow, upsert_metrics
from arti.providers import get_provider
from arti.providers.base import (
    MetricPoint,
    ProviderAuthError,
    ProviderClient,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
)
from arti.settings import Settings, get_settings
from arti.tokens import mark_needs_reauth, valid_access_token
from jobs.app import app

logger = logging.getLogger(__name__)

MAX_ATTEMPTS = 6
SYNC_PRIORITY = 10
"""Syncs are fetched before other jobs (priority 0) by a worker serving several queues; private.enqueue_sync
defers them with the same priority."""
BACKOFF_BASE_SECONDS = 15
MAX_RATE_LIMIT_WAIT = 30.0


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


async def _wait_for_rate_limit(conn: psycopg.AsyncConnection[Any], provider: str) -> None:
    waited = 0.0
    while True:
        cur = await conn.execute("select private.take_rate_limit_token(%s) as wait", (provider,))
        row = await cur.fetchone()
        wait = float(row["wait"]) if row else 0.0
        if wait <= 0:
            return
        if waited + wait > MAX_RATE_LIMIT_WAIT:
            raise ProviderRateLimited(provider, "provider rate limit budget exhausted", retry_after_seconds=wait)
        await asyncio.sleep(wait)
        waited += wait


def _window(last_synced_at: dt.datetime | None, backfill_days: int, client: ProviderClient) -> tuple[dt.date, dt.date]:
    end = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    start = end - dt.timedelta(days=backfill_days - 1) if last_synced_at is None else last_synced_at.date()
    return client.sync_window(min(start, end), end)


async def run_sync(sync_run_id: str, *, attempts: int = 0, settings: Settings | None = None,
                   http: Any = None) -> dict[str, Any]:
    """Do one sync run. Raises retryable errors after recording them on the run."""
    settings = settings or get_settings()
    conn = await _connect(settings)
    try:
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
    finally:
        await conn.close()


async def _run(conn: psycopg.AsyncConnection[Any], sync_run_id: str, attempts: int, settings: Settings,
               http: Any) -> dict[str, Any]:
    cur = await conn.execute(
        "update public.sync_runs set status = 'running', started_at = now(), attempts = attempts + 1, error = null "
        "where id = %s and status in ('queued', 'running') returning account_id, org_id", (sync_run_id,))
    run = await cur.fetchone()
    if run is None:
        return {"skipped": "run already finished or unknown"}
    cur = await conn.execute(
        "select a.id, a.org_id, a.provider::text as provider, a.external_id, a.status::text as status, "
        "a.last_synced_at, (select value::int from private.settings where key = 'sync.backfill_days') as backfill "
        "from public.connected_accounts a where a.id = %s", (run["account_id"],))
    account = await cur.fetchone()
    if account is None or account["status"] != "active":
        reason = "account is not active; reconnect it" if account else "account was deleted"
        await _finish(conn, sync_run_id, "failed", error=reason)
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
        await _finish(conn, sync_run_id, "failed", error=reason)
        await conn.execute("update public.connected_accounts set last_error = %s where id = %s",
                           (reason, account["id"]))
        return {"failed": reason}
    try:
        points = await _fetch(conn, client, cipher, account)
        written = await _store(conn, account, sync_run_id, points)
    except ProviderAuthError as exc:
        await mark_needs_reauth(conn, account["id"], f"{client.name} refused our access: {exc.provider_message or exc}")
        await _finish(conn, sync_run_id, "failed", error=f"needs re-authentication: {exc}")
        return {"failed": "needs_reauth"}
    except (ProviderError, psycopg.OperationalError, OSError) as exc:
        if isinstance(exc, ProviderRateLimited) and exc.retry_after_seconds:
            await conn.execute("select private.block_provider_until(%s, now() + make_interval(secs => %s))",
                               (client.name, exc.retry_after_seconds))
        if _will_retry(exc, attempts):
            await conn.execute("update public.sync_runs set status = 'queued', error = %s where id = %s",
                               (f"will retry: {exc}", sync_run_id))
            raise
        await _finish(conn, sync_run_id, "failed", error=str(exc))
        await conn.execute("update public.connected_accounts set last_error = %s where id = %s",
                           (str(exc), account["id"]))
        return {"failed": str(exc)}
    finally:
        if http is None:
            await http_client.aclose()
    days = len({p.day for p in points})
    await _finish(conn, sync_run_id, "succeeded", days=days, written=written)
    await conn.execute(
        "update public.connected_accounts set last_synced_at = now(), last_error = null, "
        "next_sync_at = date_trunc('day', now()) + interval '1 day 2 hours' where id = %s", (account["id"],))
    if written:
        await _defer_insights(str(account["id"]))
    return {"succeeded": True, "metrics_written": written, "days": days}


async def _defer_insights(account_id: str) -> None:
    """Anomalies and chunks follow in their own job, never in the sync's request path."""
    from jobs.insights import refresh_insights

    with contextlib.suppress(procrastinate.exceptions.AlreadyEnqueued):
        await refresh_insights.configure(queueing_lock=f"insights:{account_id}").defer_async(account_id=account_id)


async def _fetch(conn: psycopg.AsyncConnection[Any], client: ProviderClient, cipher: TokenCipher,
                 account: dict[str, Any]) -> list[MetricPoint]:
    start, end = _window(account["last_synced_at"], account["backfill"] or 28, client)
    token = await valid_access_token(conn, cipher, client, account["id"])
    await _wait_for_rate_limit(conn, client.name)
    try:
        return await client.fetch_metrics(token, account["external_id"], start, end)
    except ProviderAuthError:
        # The token may have been revoked early: refresh once, then try again.
        token = await valid_access_token(conn, cipher, client, account["id"], force_refresh=True)
        await _wait_for_rate_limit(conn, client.name)
        return await client.fetch_metrics(token, account["external_id"], start, end)


async def _store(conn: psycopg.AsyncConnection[Any], account: dict[str, Any], sync_run_id: str,
                 points: list[MetricPoint]) -> int:
    run_id = uuid.UUID(sync_run_id)
    rows = [MetricRow(account["id"], p.metric, p.day, account["org_id"], p.value, p.note, run_id) for p in points]
    async with conn.transaction():
        written = await upsert_metrics(conn, rows)
        await conn.execute(
            "insert into public.metric_snapshots (org_id, account_id, sync_run_id, endpoint, payload) "
            "values (%s, %s, %s, %s, %s)",
            (account["org_id"], account["id"], sync_run_id, "fetch_metrics",
             json.dumps({"points": [{"metric": p.metric, "day": p.day.isoformat(), "raw": p.raw} for p in points]},
                        default=str)),
        )
    return written


async def _finish(conn: psycopg.AsyncConnection[Any], sync_run_id: str, status: str, *, error: str | None = None,
                  days: int = 0, written: int = 0) -> None:
    await conn.execute(
        "update public.sync_runs set status = %s, finished_at = now(), error = %s, days_fetched = %s, "
        "metrics_written = %s where id = %s",
        (status, error, days, written, sync_run_id),
    )


@app.task(name="sync_account", queue="sync", priority=SYNC_PRIORITY, retry=SyncRetry(), pass_context=True)
async def sync_account(context: procrastinate.JobContext, sync_run_id: str) -> dict[str, Any]:
    """Procrastinate entry point: one sync run."""
    attempts = context.job.attempts if context.job else 0
    result = await run_sync(sync_run_id, attempts=attempts)
    logger.info("sync run %s: %s", sync_run_id, result)
    return result
