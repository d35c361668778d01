"""The intended write path of the sync worker: upsert a batch of daily metric values.

It is `arti.metrics_store` (what jobs/sync.py uses): one `insert ... select ... from unnest(arrays)
on conflict (account_id, metric, day) do update` into public.metrics, the batch passed as seven
arrays (no temporary table); a batch of 1,000 rows or more is first COPYed straight in, and upserted
only if one of its keys exists already. Idempotent (a re-run rewrites only changed rows), and every
row still passes the table's checks and its foreign key to the account. The worker calls it with its
own connection (the table owner); RLS does not apply to it.

Rows are `(account_id, metric, day, org_id, value, note)` with `value` an int, float, Decimal or None
(None = not provided by the platform, `note` says why), the shape of `arti.providers.base.MetricPoint`
plus the account and its organization. When a batch holds the same (account, metric, day) twice,
the last one wins (Postgres refuses to update one row twice in one statement).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

import psycopg

from arti.metrics_store import MetricRow, upsert_metrics_sync

# Rows given to these functions: (account_id, metric, day, org_id, value, note).

COLUMNS = ("account_id", "metric", "day", "org_id", "value", "note")

# The naive path, kept as a benchmark baseline: one upsert statement per row.
SINGLE_ROW_UPSERT_SQL = """
insert into public.metrics as m (account_id, metric, day, org_id, value, note, sync_run_id, fetched_at)
values (%s, %s, %s, %s, %s, %s, %s, now())
on conflict (account_id, metric, day) do update
set value = excluded.value,
    note = excluded.note,
    sync_run_id = excluded.sync_run_id,
    fetched_at = excluded.fetched_at
"""


def _dedupe(rows: Iterable[Sequence[Any]]) -> list[Sequence[Any]]:
    """The rows with one per (account_id, metric, day), the last given winning; order kept otherwise."""
    rows = rows if isinstance(rows, list) else list(rows)
    keyed = {(r[0], r[1], r[2]): r for r in rows}
    return rows if len(keyed) == len(rows) else list(keyed.values())


def upsert_metrics(conn: psycopg.Connection[Any], rows: Iterable[Sequence[Any]], *,
                   sync_run_id: UUID | str | None = None) -> int:
    """The project's own write path (`arti.metrics_store`): atomic on its own (one statement, or a COPY in its own
    transaction or savepoint), as the sync worker runs it; no transaction block around it.

    Returns the number of rows inserted or changed.
    """
    run = UUID(str(sync_run_id)) if sync_run_id else None
    return upsert_metrics_sync(conn, [MetricRow(r[0], r[1], r[2], r[3], r[4], r[5], run) for r in rows])


def upsert_metrics_row_by_row(conn: psycopg.Connection[Any], rows: Iterable[Sequence[Any]], *,
                              sync_run_id: UUID | str | None = None) -> int:
    """Baseline: `executemany` of the single-row upsert (psycopg pipelines it), in one transaction."""
    batch = [(*row[:6], sync_run_id) for row in _dedupe(rows)]
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(SINGLE_ROW_UPSERT_SQL, batch)
    return len(batch)


# The first design of the write path, kept as a benchmark baseline: COPY into a temporary staging table, then one
# insert-select with DISTINCT ON (three round trips and the staging table's writes per batch).
STAGING_DDL = (
    "create temporary table if not exists arti_metric_staging ("
    " account_id uuid, metric text, day date, org_id uuid, value numeric, note text, sync_run_id uuid"
    ") on commit delete rows"
)
STAGING_UPSERT_SQL = (
    "insert into public.metrics as m (account_id, metric, day, org_id, value, note, sync_run_id, fetched_at) "
    "select distinct on (account_id, metric, day) account_id, metric, day, org_id, value, note, sync_run_id, now() "
    "from arti_metric_staging order by account_id, metric, day "
    "on conflict (account_id, metric, day) do update set value = excluded.value, note = excluded.note, "
    "sync_run_id = excluded.sync_run_id, fetched_at = excluded.fetched_at "
    "where m.value is distinct from excluded.value or m.note is distinct from excluded.note"
)


def upsert_metrics_staging(conn: psycopg.Connection[Any], rows: Iterable[Sequence[Any]], *,
                           sync_run_id: UUID | str | None = None) -> int:
    """Baseline: the first design (COPY into a temporary table + insert-select), in one transaction."""
    batch = _dedupe(rows)
    run = UUID(str(sync_run_id)) if sync_run_id else None
    with conn.transaction():
        conn.execute(STAGING_DDL)
        with conn.cursor() as cur:
            with cur.copy("copy arti_metric_staging (account_id, metric, day, org_id, value, note, sync_run_id) "
                          "from stdin") as copy:
                for r in batch:
                    copy.write_row((*r[:6], run))
            cur.execute(STAGING_UPSERT_SQL)
            written = cur.rowcount
            cur.execute("truncate arti_metric_staging")
    return written
