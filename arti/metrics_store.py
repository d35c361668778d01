"""Idempotent metric ingest into public.metrics.

Running the same day twice writes no duplicates (the primary key is account, metric, day) and rewrites a row
only when its value or note changed. A batch holding the same (account, metric, day) twice keeps the last one
(deduplicated here: Postgres refuses to update one row twice in one statement).

Two paths, one result:

* the upsert: one `INSERT ... SELECT FROM unnest(arrays) ON CONFLICT ... DO UPDATE ... WHERE changed`, the batch
  passed as seven array literals (no temporary table, no COPY round trips). What a sync writes (one account's
  days, ~35 rows) goes this way, as one statement: atomic without a transaction block. The arrays travel as
  text built here (`array_literal`), not as Python lists: psycopg dumps a list element by element in Python,
  which for a sync's 245 elements cost more than Postgres parsing the literal (measured, README Performance).
  The first design (COPY into a temporary staging table, then an insert-select with DISTINCT ON) cost more than
  it saved on such batches: its round trips, the staging table's writes and the sort made it slower than 35
  pipelined single-row upserts.
* a large batch (COPY_FIRST_MIN rows or more, e.g. a day of every account) is first COPYed straight into
  public.metrics as given, in a transaction (a savepoint inside the caller's): when none of its keys exists yet
  — a new day, the daily case — that is the plain COPY, whose batched heap inserts an INSERT cannot match. If
  one key exists (a re-sync, a concurrent writer got there first) or repeats in the batch, COPY stops at it
  with a unique violation, that transaction rolls back, and the upsert above writes the batch (deduplicated,
  in key order).
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from decimal import Decimal
from typing import Any, NamedTuple

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
COPY_SQL = "copy public.metrics (account_id, metric, day, org_id, value, note, sync_run_id) from stdin"
COPY_FIRST_MIN = 1000
"""Batches at least this large try a plain COPY first (their keys are usually new: a day of many accounts)."""


class MetricRow(NamedTuple):
    """One metric value to store (a tuple in COPY_SQL's column order)."""

    account_id: uuid.UUID
    metric: str
    day: dt.date
    org_id: uuid.UUID
    value: Decimal | float | int | None
    note: str | None = None
    sync_run_id: uuid.UUID | None = None


def _numeric(value: Decimal | float | int | None) -> Decimal | None:
    """The value as a Decimal: one numeric array whatever mix of ints, floats and Decimals the batch holds."""
    if value is None or isinstance(value, Decimal):
        return value
    return Decimal(value) if isinstance(value, int) else Decimal(repr(value))


def deduplicated(rows: Iterable[MetricRow]) -> list[MetricRow]:
    """One row per (account, metric, day), the last given winning, in primary-key order."""
    latest: dict[tuple[Any, str, dt.date], MetricRow] = {}
    for r in rows:
        latest[(r.account_id, r.metric, r.day)] = r
    # In primary-key order: each index is walked forward once instead of jumping between metrics and days.
    return sorted(latest.values(), key=lambda r: (_uuid_order(r.account_id), r.metric, r.day))


def _uuid_order(value: Any) -> int:
    """A uuid's position in Postgres' uuid order (its bytes, as an integer)."""
    return value.int if isinstance(value, uuid.UUID) else uuid.UUID(str(value)).int


def array_literal(values: Iterable[Any], *, repeats: bool = True) -> str:
    """`values` as a Postgres array literal: None as NULL, every other element as `str()` gives it, double-quoted
    with backslashes and double quotes escaped, so any text (commas, braces, quotes, the word NULL) stays itself.

    `repeats`: the values repeat (a batch's account, org, run, metrics, days): each distinct one is quoted once.
    Not for numbers, whose equal values can print differently (Decimal("1.0") == 1)."""
    quoted: dict[Any, str] = {}
    parts = []
    for value in values:
        if value is None:
            parts.append("NULL")
            continue
        text = quoted.get(value) if repeats else None
        if text is None:
            text = '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
            if repeats:
                quoted[value] = text
        parts.append(text)
    return "{" + ",".join(parts) + "}"


def upsert_params(rows: Iterable[MetricRow]) -> tuple[str, ...]:
    """The seven array literals of UPSERT_SQL, one entry per (account, metric, day), the last given winning, in key
    order."""
    batch = deduplicated(rows)
    return (array_literal(r.account_id for r in batch), array_literal(r.metric for r in batch),
            array_literal(r.day for r in batch), array_literal(r.org_id for r in batch),
            array_literal((_numeric(r.value) for r in batch), repeats=False), array_literal(r.note for r in batch),
            array_literal(r.sync_run_id for r in batch))


def upsert_metrics_sync(conn: psycopg.Connection[Any], rows: Iterable[MetricRow]) -> int:
    """Store rows (in the caller's transaction, if any). Returns how many rows were inserted or changed.

    jobs/sync.py writes a sync's batch with UPSERT_SQL and `upsert_params` inside its own statement; this is the
    whole path (COPY first for a large batch) for other callers (benchmarks, CLI)."""
    given = rows if isinstance(rows, list) else list(rows)
    if not given:
        return 0
    if len(given) >= COPY_FIRST_MIN:
        try:
            with conn.transaction(), conn.cursor() as cur, cur.copy(COPY_SQL) as copy:
                for r in given:
                    copy.write_row(r)
            return len(given)
        except psycopg.errors.UniqueViolation:
            pass  # some keys exist (or repeat in the batch): the upsert rewrites only what changed
    with conn.cursor() as cur:
        cur.execute(UPSERT_SQL, upsert_params(given))
        return cur.rowcount
