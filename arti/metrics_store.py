"""Idempotent metric ingest: COPY into a temporary staging table, then one INSERT ... ON CONFLICT.

Running the same day twice writes no duplicates (the primary key is account, metric, day) and
rewrites a row only when its value or note changed.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg

STAGING_DDL = (
    "create temporary table if not exists arti_metric_staging ("
    " account_id uuid, metric text, day date, org_id uuid, value numeric, note text, sync_run_id uuid"
    ") on commit delete rows"
)

UPSERT_SQL = (
    "insert into public.metrics as m (account_id, metric, day, org_id, value, note, sync_run_id, fetched_at) "
    "select distinct on (account_id, metric, day) account_id, metric, day, org_id, value, note, sync_run_id, now() "
    "from arti_metric_staging order by account_id, metric, day "
    "on conflict (account_id, metric, day) do update set value = excluded.value, note = excluded.note, "
    "sync_run_id = excluded.sync_run_id, fetched_at = excluded.fetched_at "
    "where m.value is distinct from excluded.value or m.note is distinct from excluded.note"
)


@dataclass(frozen=True)
class MetricRow:
    """One metric value to store."""

    account_id: uuid.UUID
    metric: str
    day: dt.date
    org_id: uuid.UUID
    value: Decimal | float | int | None
    note: str | None = None
    sync_run_id: uuid.UUID | None = None


async def upsert_metrics(conn: psycopg.AsyncConnection[Any], rows: Iterable[MetricRow]) -> int:
    """Store rows inside the caller's transaction. Returns how many rows were inserted or changed."""
    await conn.execute(STAGING_DDL)
    async with conn.cursor() as cur:
        async with cur.copy(
            "copy arti_metric_staging (account_id, metric, day, org_id, value, note, sync_run_id) from stdin"
        ) as copy:
            for r in rows:
                await copy.write_row((r.account_id, r.metric, r.day, r.org_id, r.value, r.note, r.sync_run_id))
        await cur.execute(UPSERT_SQL)
        written = cur.rowcount
        await cur.execute("truncate arti_metric_staging")
    return written


def upsert_metrics_sync(conn: psycopg.Connection[Any], rows: Iterable[MetricRow]) -> int:
    """The same path for synchronous callers (benchmarks, CLI)."""
    conn.execute(STAGING_DDL)
    with conn.cursor() as cur:
        with cur.copy(
            "copy arti_metric_staging (account_id, metric, day, org_id, value, note, sync_run_id) from stdin"
        ) as copy:
            for r in rows:
                copy.write_row((r.account_id, r.metric, r.day, r.org_id, r.value, r.note, r.sync_run_id))
        cur.execute(UPSERT_SQL)
        written = cur.rowcount
        cur.execute("truncate arti_metric_staging")
    return written
