"""One drain job per webhook endpoint: sends the endpoint's due deliveries, oldest first.

An event still writes one `public.webhook_deliveries` row per subscribed endpoint in its own
transaction, but no longer one job per delivery: `private.ensure_webhook_drain(endpoint)` (called by
the fan-out trigger, replay and the sweep) keeps at most one waiting `drain_webhook_endpoint` job per
endpoint (queueing lock and lock `webhook-endpoint:<endpoint id>`, so Procrastinate never runs two
drains of one endpoint at once). A flood of events therefore queues as many jobs as there are
endpoints, not deliveries.

A drain:

* takes the endpoint's oldest pending delivery; if it is due, makes one attempt (`jobs.webhooks.deliver`:
  claim, SSRF check, signed POST, result recorded) and goes on with the next;
* stops when nothing is due, when the oldest pending delivery waits for its retry (a 5xx, 429 or
  network error pauses the whole endpoint until that delivery's next attempt: a failing receiver gets
  one request per backoff step, and a 429's Retry-After holds for every delivery), or after
  DRAIN_BATCH deliveries / DRAIN_SECONDS, so that other endpoints' drains and other jobs get their
  turn in the worker;
* then calls `ensure_webhook_drain(endpoint, closing => true)`, which queues the next drain when
  something is pending (at once, or when the pause ends) and, without waiting for anyone, covers a
  transaction that wrote a delivery while this drain was running (see the function's body).

At least once, as before: a worker killed mid-attempt leaves the delivery pending with an open
attempt; the stalled-job sweep puts the drain back in the queue and the next claim records the open
attempt as interrupted. A drain that fails on an unexpected error is recorded (private.job_failures)
and the next drain is queued at once, on a new connection when the database dropped the old one (a restart),
which sends the interrupted delivery again (same event id); failing that, `sweep_webhook_deliveries` queues the
endpoint again within 5 minutes.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from typing import Any

import httpx
import psycopg
from psycopg.rows import dict_row

from arti.settings import Settings, get_settings
from jobs.app import app
from jobs.webhooks import Resolver, RetryLater, deliver

logger = logging.getLogger(__name__)

DRAIN_BATCH = 100
"""Deliveries sent by one drain job at most; what is left goes to the next drain, queued behind other jobs."""
DRAIN_SECONDS = 30.0
"""A drain starts no new delivery after this long (a slow receiver: 100 deliveries could take minutes)."""
RECONNECT_SECONDS = 60.0
"""After losing its connection, a drain tries this long to queue the next one before leaving it to the sweep."""

HEAD_SQL = """
select d.id, d.next_attempt_at <= clock_timestamp() as due
from public.webhook_deliveries as d
where d.endpoint_id = %s and d.status = 'pending'
order by d.created_at, d.id
limit 1
"""


async def drain(endpoint_id: str, *, settings: Settings | None = None, http: httpx.AsyncClient | None = None,
                resolver: Resolver | None = None, batch: int = DRAIN_BATCH,
                seconds: float = DRAIN_SECONDS) -> dict[str, Any]:
    """Send the endpoint's due deliveries, oldest first, then queue the next drain if anything is pending."""
    settings = settings or get_settings()
    outcomes: Counter[str] = Counter()
    client = http or httpx.AsyncClient(follow_redirects=False, trust_env=False)
    conn = await psycopg.AsyncConnection.connect(settings.database_url(), autocommit=True, row_factory=dict_row)
    try:
        stopped = await _send_due(conn, endpoint_id, outcomes, settings, client, resolver, batch, seconds)
        next_run = await _close(conn, endpoint_id)
    except Exception:
        # Whatever failed, a next drain is queued: on this connection if it still works, else on a new one once
        # the database answers again (a restart drops every connection), else the sweep does it.
        await _close_after_failure(conn, endpoint_id, settings)
        raise
    finally:
        await conn.close()
        if http is None:
            await client.aclose()
    return {"endpoint_id": endpoint_id, "sent": dict(outcomes), "stopped": stopped,
            "next_drain": next_run.isoformat() if next_run else None}


async def _send_due(conn: psycopg.AsyncConnection[Any], endpoint_id: str, outcomes: Counter[str],
                    settings: Settings, client: httpx.AsyncClient, resolver: Resolver | None, batch: int,
                    seconds: float) -> str:
    """Attempt the endpoint's due deliveries oldest first; returns why it stopped."""
    deadline = time.monotonic() + seconds
    while sum(outcomes.values()) < batch and time.monotonic() < deadline:
        head = await (await conn.execute(HEAD_SQL, (endpoint_id,))).fetchone()
        if head is None:
            return "nothing pending"
        if not head["due"]:
            return "paused until the oldest pending delivery's next attempt"
        try:
            result = await deliver(str(head["id"]), settings=settings, http=client, resolver=resolver, conn=conn)
            outcomes[result.get("status", "skipped")] += 1
        except RetryLater:
            outcomes["retry"] += 1
    return "batch done"


async def _close_after_failure(conn: psycopg.AsyncConnection[Any], endpoint_id: str, settings: Settings) -> None:
    """Queue the endpoint's next drain after a failure, reconnecting for up to RECONNECT_SECONDS when the
    connection was lost (the delivery that was in flight is then due again: it is sent again, same event id)."""
    try:
        await _close(conn, endpoint_id)
        return
    except psycopg.OperationalError:
        pass
    except Exception:
        logger.warning("webhook drain %s: could not queue the next drain; the sweep will", endpoint_id)
        return
    deadline = time.monotonic() + RECONNECT_SECONDS
    delay = 0.5
    while time.monotonic() < deadline:
        await asyncio.sleep(delay)
        delay = min(5.0, delay * 2)
        try:
            async with await psycopg.AsyncConnection.connect(settings.database_url(), autocommit=True,
                                                             row_factory=dict_row, connect_timeout=5) as fresh:
                await _close(fresh, endpoint_id)
            logger.info("webhook drain %s: connection lost; next drain queued on a new connection", endpoint_id)
            return
        except psycopg.OperationalError:
            continue
        except Exception:
            break
    logger.warning("webhook drain %s: could not queue the next drain; the sweep will", endpoint_id)


async def _close(conn: psycopg.AsyncConnection[Any], endpoint_id: str) -> Any:
    cur = await conn.execute("select private.ensure_webhook_drain(%s, closing => true) as next_run", (endpoint_id,))
    row = await cur.fetchone()
    return row["next_run"] if row else None


@app.task(name="drain_webhook_endpoint", queue="webhooks")
async def drain_webhook_endpoint(endpoint_id: str) -> dict[str, Any]:
    """Procrastinate entry point: one drain of one endpoint (no Procrastinate retry: the sweep re-queues)."""
    result = await drain(endpoint_id)
    logger.info("webhook drain %s: %s", endpoint_id, result)
    return result
