"""Idempotent metric ingest: one `INSERT ... ON CONFLICT` over the batch, passed as arrays.

Running the same day twice writes no duplicates (the primary key is account, metric, day) and rewrites a row
only when its value or note changed. A batch holding the same (account, metric, day) twice keeps the last one
(deduplicated here: Postgres refuses to update one row twice in one statement).

The batch travels as seven arrays in one statement (`unnest`), whatever its size: no temporary table, no COPY
round trips. The first design (COPY into a temporary staging table, then an insert-select with DISTINCT ON)
cost more than it saved on the batches syncs write: one account's week is ~35 rows, and its three round trips,
the staging table's writes and the sort made it slower than 35 pipelined single-row upserts
(bench/metric_ingest: 0.52x). For a day of 10,000 accounts (50,000 rows) the arrays also beat the staging path.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg

UPSERT_SQL = (
    "insert into public.metrics as m (account_id, metric, day, org_id, value, note, sync_run_id, fetched_at) "
    "select r.account_id, r.metric, r.day, r.org_id, r.value, r.note, r.sync_run_id, now() "
    "from unnest(%s::uuid[], %s::text[], %s::date[], %s::uuid[], %s::numeric[], %s::text[], %s::uuid[]) "
    "as r (account_id, metric, day, org_id, value, note, sync_run_id) "
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


def _numeric(value: Decimal | float | int | None) -> str | None:
    """The value as numeric text (one array type whatever mix of ints, floats and Decimals the batch holds)."""
    if value is None:
        return None
    if isinstance(value, float) and value != value:  # NaN: not a number a platform reports; store it as such
        return "NaN"
    return str(value)


def upsert_params(rows: Iterable[MetricRow]) -> tuple[list[Any], ...]:
    """The seven arrays of UPSERT_SQL, one entry per (account, metric, day), the last given winning, in key order."""
    latest: dict[tuple[Any, str, dt.date], MetricRow] = {}
    for r in rows:
        latest[(r.account_id, r.metric, r.day)] = r
    # In primary-key order: each index is walked forward once instead of jumping between metrics and days.
    batch = sorted(latest.values(), key=lambda r: (str(r.account_id), r.metric, r.day))
    return ([r.account_id for r in batch], [r.metric for r in batch], [r.day for r in batch],
            [r.org_id for r in batch], [_numeric(r.value) for r in batch], [r.note for r in batch],
            [r.sync_run_id for r in batch])


async def upsert_metrics(conn: psycopg.AsyncConnection[Any], rows: Iterable[MetricRow]) -> int:
    """Store rows inside the caller's transaction. Returns how many rows were inserted or changed."""
    params = upsert_params(rows)
    if not params[0]:
        return 0
    async with conn.cursor() as cur:
        await cur.execute(UPSERT_SQL, params)
        return cur.rowcount


def upsert_metrics_sync(conn: psycopg.Connection[Any], rows: Iterable[MetricRow]) -> int:
    """The same path for synchronous callers (benchmarks, CLI)."""
    params = upsert_params(rows)
    if not params[0]:
        return 0
    with conn.cursor() as cur:
        cur.execute(UPSERT_SQL, params)
        return cur.rowcount
