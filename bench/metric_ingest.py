"""metric_ingest: how fast the sync worker's write path (bench.ingest.upsert_metrics) stores metrics.

The write path (arti.metrics_store): one `insert ... select ... from unnest(arrays) on conflict (account_id,
metric, day) do update` into public.metrics (PK, index, FK, checks), the batch passed as seven array literals. Its
targets (issue 18) measure the cost of idempotency on public.metrics itself, with the server's
synchronous_commit as configured (on, as on Supabase; the run prints it):

* case `new_day`: one day of every metric for N accounts (all the dataset's accounts: 10,000 x 5 = 50,000 rows
  in full size), as a daily sync pass writes it — rows that do not exist yet. `upsert` against `copy_direct`,
  a plain COPY of the same kind of rows straight into public.metrics in the same state (same table, same run,
  no conflict handling): target >= 0.85x its rows/s.
* case `one_account`: one account's last 7 days per call (35 rows, one transaction each, 20 accounts per
  repetition), the batch a per-account sync job writes. `upsert` against `executemany` of the single-row upsert
  (psycopg pipelines it): target >= 2x its rows/s. Next to it, informational, its ceiling `in_server`: the
  same statement and a commit per account run by a procedure in the server over the same kind of batches staged
  beforehand, so no client work, parameter transfer or round trip is timed: what a write path with no client cost
  at all would reach against executemany; and `prebuilt`, the write path's statement with its parameters built
  before the clock starts: the most any client code sending one statement per account could reach.

Informational, same run: `staging`, the first design (COPY into a temporary table, then one insert-select with
DISTINCT ON), in both cases; in `new_day` the withdrawn targets of the jobs issue: `copy_raw` (COPY into an
unindexed table with the same columns; was >= 0.5x) and `executemany` (was >= 3x), and `copy_constrained`
(plain COPY into an *empty* table with public.metrics' primary key, index, checks and foreign key, truncated
before each repetition) against `copy_raw`: the most any path keeping the constraints could reach on that
withdrawn target. Case `resync_day` writes a stored day again with its stored values (rows are updated: a
re-sync, or a provider revising recent days).

Every path writes its own days so each repetition does the same kind of work; timings include the
commit. Afterwards the rows written beyond the dataset's last day are deleted and the table vacuumed,
so the dataset is as generated (re-synced rows keep their values).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import date, timedelta
from typing import Any

import psycopg
from psycopg.rows import dict_row

from arti.metrics_store import UPSERT_SQL, MetricRow, upsert_params
from bench.ingest import COLUMNS, upsert_metrics, upsert_metrics_row_by_row, upsert_metrics_staging
from bench.report import Result, measure_interleaved

NAME = "metric_ingest"
TARGET_VS_COPY_DIRECT = 0.85
TARGET_ONE_ACCOUNT_VS_EXECUTEMANY = 2.0
ONE_ACCOUNT_CALLS = 20
ONE_ACCOUNT_DAYS = 7

RAW_TABLE_SQL = """
create table if not exists bench.ingest_raw (like public.metrics including defaults)
"""
# public.metrics' shape with its constraints (PK, index, checks, composite FK to the account), empty.
CONSTRAINED_TABLE_SQL = """
create table if not exists bench.ingest_constrained (like public.metrics including all,
    foreign key (org_id, account_id) references public.connected_accounts (org_id, id) on delete cascade)
"""


def _new_day_rows(accounts: Sequence[dict[str, Any]], metrics: Sequence[str], day: date,
                  rng: random.Random) -> list[tuple[Any, ...]]:
    rows = []
    for a in accounts:
        for metric in metrics:
            if rng.random() < 0.01:
                rows.append((a["id"], metric, day, a["org_id"], None, "not provided"))
            else:
                rows.append((a["id"], metric, day, a["org_id"], rng.randint(0, 3_000_000), None))
    return rows


def _stored_day_rows(conn: psycopg.Connection[Any], org_ids: list[Any], metrics: Sequence[str],
                     day: date) -> list[tuple[Any, ...]]:
    """The rows stored for one day (read through the (org_id, metric, day) index)."""
    cur = conn.execute(
        "select account_id, metric, day, org_id, value, note from public.metrics "
        "where org_id = any(%s) and metric = any(%s) and day = %s",
        (org_ids, list(metrics), day),
    )
    return [tuple(r.values()) for r in cur.fetchall()]


def _timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


# The ceiling of case one_account: UPSERT_SQL itself, with a commit after each account, run by a procedure in the
# server over batches staged beforehand (the arrays upsert_params builds), so no client work, parameter transfer or
# round trip is timed, only the one CALL.
BATCHES_TABLE_SQL = """
create unlogged table if not exists bench.ingest_batches (
    n int primary key, account_ids uuid [], metrics text [], days date [], org_ids uuid [], vals numeric [],
    notes text [], runs uuid []
)
"""
_BATCH_COLUMNS = ("b.account_ids", "b.metrics", "b.days", "b.org_ids", "b.vals", "b.notes", "b.runs")
IN_SERVER_PROCEDURE_SQL = f"""
create or replace procedure bench.upsert_staged_batches()
language plpgsql as $$
declare
    b record;
begin
    for b in select * from bench.ingest_batches order by n loop
        {UPSERT_SQL.replace("%s", "{}").format(*_BATCH_COLUMNS)};
        commit;
    end loop;
end
$$
"""
IN_SERVER_CALL = "call bench.upsert_staged_batches()"
STAGED_WRITTEN_SQL = """
select count(*) from bench.ingest_batches as b, unnest(b.account_ids, b.metrics, b.days) as s (account_id, metric, day)
where exists (select from public.metrics as m where (m.account_id, m.metric, m.day) = (s.account_id, s.metric, s.day))
"""


def _params(rows: Sequence[tuple[Any, ...]]) -> tuple[str, ...]:
    """UPSERT_SQL's parameters for the benchmark's row tuples, as the write path builds them."""
    return upsert_params([MetricRow(*row) for row in rows])


def _stage_batches(conn: psycopg.Connection[Any], batches: Sequence[Sequence[tuple[Any, ...]]]) -> int:
    """Put each batch in bench.ingest_batches as the arrays the client path would send. Returns the rows staged."""
    conn.execute("truncate bench.ingest_batches")
    staged = [(n, *_params(batch)) for n, batch in enumerate(batches)]
    with conn.cursor() as cur:
        cur.executemany("insert into bench.ingest_batches values (%s, %s, %s, %s, %s, %s, %s, %s)", staged)
    row = conn.execute("select sum(cardinality(metrics))::int as rows from bench.ingest_batches").fetchone()
    return int(row["rows"]) if row else 0


def _restore(conn: psycopg.Connection[Any], first: date, end: date) -> int:
    """Put the dataset back as generated: delete the rows written outside its days, drop the benchmark's own
    tables, vacuum when rows were deleted. Returns how many rows were deleted."""
    deleted = conn.execute("delete from public.metrics where day > %s or day < %s", (end, first)).rowcount
    conn.execute("drop table if exists bench.ingest_raw, bench.ingest_constrained, bench.ingest_batches")
    conn.execute("drop procedure if exists bench.upsert_staged_batches()")
    if deleted:
        conn.execute("vacuum (analyze) public.metrics")
    return max(deleted, 0)


def run(url: str, dataset: dict[str, Any], *, warmup: int, reps: int, log: Callable[[str], None] = print
        ) -> tuple[list[Result], dict[str, Any]]:
    spec = dataset["spec"]
    end = date.fromisoformat(spec["end_day"])
    first = date.fromisoformat(spec["start_day"])
    metrics = spec["metrics"]
    rng = random.Random(spec["seed"])
    conn = psycopg.connect(url, autocommit=True, row_factory=dict_row)
    try:
        # A run that was interrupted (killed, machine restarted) left its rows beyond the dataset's days and its
        # tables: remove them first, or every write path would meet keys that exist already.
        leftover = _restore(conn, first, end)
        if leftover:
            log(f"  {NAME}: removed {leftover:,} rows an interrupted run left behind")
        accounts = conn.execute("select id, org_id from public.connected_accounts order by id").fetchall()
        org_ids = [r["id"] for r in conn.execute("select id from public.organizations").fetchall()]
        conn.execute(RAW_TABLE_SQL)
        conn.execute(CONSTRAINED_TABLE_SQL)
        conn.execute(BATCHES_TABLE_SQL)
        conn.execute(IN_SERVER_PROCEDURE_SQL)
        batch = len(accounts) * len(metrics)

        def days_from(offset: int, step: int = 1) -> Iterator[date]:
            """Days beyond the dataset, a separate range per path so every write is a first write."""
            return (end + timedelta(days=offset + step * i) for i in range(10**6))

        def copy_into(table: str, rows: Sequence[Sequence[Any]]) -> float:
            def go() -> None:
                with conn.transaction(), conn.cursor() as cur, cur.copy(
                    f"copy {table} ({', '.join(COLUMNS)}) from stdin"
                ) as copy:
                    for row in rows:
                        copy.write_row(row)

            return _timed(go)

        def copy_raw(rows: Sequence[Sequence[Any]]) -> float:
            conn.execute("truncate bench.ingest_raw")
            return copy_into("bench.ingest_raw", rows)

        def copy_constrained(rows: Sequence[Sequence[Any]]) -> float:
            conn.execute("truncate bench.ingest_constrained")
            return copy_into("bench.ingest_constrained", rows)

        def new_day(days: Iterator[date], write: Callable[[list[tuple[Any, ...]]], Any]) -> Callable[[], float]:
            def go() -> float:
                rows = _new_day_rows(accounts, metrics, next(days), rng)
                return _timed(lambda: write(rows))

            return go

        def stored_day(days: Iterator[date], write: Callable[[list[tuple[Any, ...]]], Any]) -> Callable[[], float]:
            def go() -> float:
                rows = _stored_day_rows(conn, org_ids, metrics, next(days))
                return _timed(lambda: write(rows))

            return go

        def upsert(rows: list[tuple[Any, ...]]) -> int:
            return upsert_metrics(conn, rows)

        def many(rows: list[tuple[Any, ...]]) -> int:
            return upsert_metrics_row_by_row(conn, rows)

        def staging(rows: list[tuple[Any, ...]]) -> int:
            return upsert_metrics_staging(conn, rows)

        new_rows = _new_day_rows(accounts, metrics, end + timedelta(days=1), rng)
        stored_rows = _stored_day_rows(conn, org_ids, metrics, end)
        span = spec["days"] - spec["days"] % 2
        resync_days = [(end - timedelta(days=(2 * i + k) % span) for i in range(10**6)) for k in (0, 1)]

        # One account's week (a per-account sync job re-fetching the last 7 days), CALLS accounts per repetition.
        calls = min(ONE_ACCOUNT_CALLS, len(accounts))
        week_rows = ONE_ACCOUNT_DAYS * len(metrics)

        def account_weeks(offset: int) -> Callable[[], list[list[tuple[Any, ...]]]]:
            """Each call: the next `calls` accounts' batches, each one account's week of days no path wrote."""
            windows = days_from(offset, ONE_ACCOUNT_DAYS)
            turn = iter(range(10**9))

            def batches() -> list[list[tuple[Any, ...]]]:
                out = []
                for _ in range(calls):
                    account, start = accounts[next(turn) % len(accounts)], next(windows)
                    days = [start + timedelta(days=d) for d in range(ONE_ACCOUNT_DAYS)]
                    out.append([row for day in days for row in _new_day_rows([account], metrics, day, rng)])
                return out

            return batches

        def one_account(offset: int, write: Callable[[Any], Any],
                        prepare: Callable[[list[tuple[Any, ...]]], Any] = lambda rows: rows) -> Callable[[], float]:
            """Each account's week written by `write`, one call each; `prepare` turns a batch into what `write`
            takes before the clock starts."""
            weeks = account_weeks(offset)

            def go() -> float:
                batches = [prepare(rows) for rows in weeks()]
                t0 = time.perf_counter()
                for batch in batches:
                    write(batch)
                return time.perf_counter() - t0

            return go

        def in_server(offset: int) -> Callable[[], float]:
            weeks = account_weeks(offset)

            def go() -> float:
                staged = _stage_batches(conn, weeks())
                seconds = _timed(lambda: conn.execute(IN_SERVER_CALL))
                written = conn.execute(STAGED_WRITTEN_SQL).fetchone()
                if written is None or written["count"] != staged:  # the ceiling would measure less work
                    raise RuntimeError(f"in_server wrote {written} of the {staged} staged rows")
                return seconds

            return go

        # Each comparison: (measured path, baseline path, target on the ratio or None, note).
        cases: list[tuple[str, int, dict[str, Callable[[], float]],
                          list[tuple[str, str, float | None, str]]]] = [
            ("new_day", batch, {
                "upsert": new_day(days_from(1), upsert),
                "copy_raw": lambda: copy_raw(new_rows),
                "executemany": new_day(days_from(1001), many),
                "copy_direct": new_day(days_from(2001), lambda rows: copy_into("public.metrics", rows)),
                "copy_constrained": lambda: copy_constrained(new_rows),
                "staging": new_day(days_from(4001), staging),
            }, [("upsert", "copy_direct", TARGET_VS_COPY_DIRECT,
                 "the cost of idempotency: plain COPY of the same kind of rows into public.metrics, same state, "
                 "same run"),
                ("upsert", "copy_raw", None, "informational (withdrawn target >= 0.5x): COPY into an unindexed table"),
                ("upsert", "executemany", None, "informational (withdrawn target >= 3x)"),
                ("upsert", "staging", None, "informational: the first design (COPY into a temporary table + "
                                            "insert-select)"),
                ("copy_constrained", "copy_raw", None,
                 "informational: plain COPY into an empty table with public.metrics' PK, index, checks and FK — the "
                 "ceiling of upsert_vs_copy_raw for any path that keeps them")]),
            ("resync_day", batch, {
                "upsert": stored_day(resync_days[0], upsert),
                "copy_raw": lambda: copy_raw(stored_rows),
                "executemany": stored_day(resync_days[1], many),
            }, [("upsert", "copy_raw", None, "informational: rows updated, not inserted"),
                ("upsert", "executemany", None, "informational: rows updated, not inserted")]),
            ("one_account", calls * week_rows, {
                "upsert": one_account(3001, upsert),
                "executemany": one_account(3001 + ONE_ACCOUNT_DAYS * 10**5, many),
                "staging": one_account(3001 + 2 * ONE_ACCOUNT_DAYS * 10**5, staging),
                "in_server": in_server(3001 + 3 * ONE_ACCOUNT_DAYS * 10**5),
                "prebuilt": one_account(3001 + 4 * ONE_ACCOUNT_DAYS * 10**5, lambda p: conn.execute(UPSERT_SQL, p),
                                        _params),
            }, [("upsert", "executemany", TARGET_ONE_ACCOUNT_VS_EXECUTEMANY,
                 f"{calls} calls of {week_rows} rows (one account, {ONE_ACCOUNT_DAYS} days), one transaction each"),
                ("upsert", "in_server", None, "informational: how close the client path comes to the same "
                                              "statements run in the server with no client at all (1.0 = no client "
                                              "cost)"),
                ("upsert", "staging", None, "informational: the first design (COPY into a temporary table + "
                                            "insert-select)"),
                ("prebuilt", "executemany", None,
                 "informational: the write path's statement with its parameters built before the clock starts (no "
                 "Python work timed, only the round trip, parameters and commit): the most any client code sending "
                 "one statement per account could reach"),
                ("in_server", "executemany", None,
                 "informational: the ceiling of upsert_vs_executemany. The upsert statement and a commit per account "
                 "run by a procedure in the server (no client, parameters, network or round trips): what a write "
                 "path with no client cost at all would reach")]),
        ]

        results: list[Result] = []
        details: dict[str, Any] = {"accounts": len(accounts), "rows_per_batch": batch, "cases": {}}
        for case, rows_per_rep, runs, comparisons in cases:
            measured = measure_interleaved(runs, warmup=warmup, reps=reps)
            for m in measured.values():
                m.rows = rows_per_rep
            details["cases"][case] = {k: v.as_json() for k, v in measured.items()}
            params = {"case": case, "rows_per_repetition": rows_per_rep, "metrics": len(metrics),
                      "accounts": len(accounts) if case != "one_account" else 1}
            if case == "one_account":
                params.update(calls_per_repetition=calls, days_per_call=ONE_ACCOUNT_DAYS)
            for path, baseline, target, note in comparisons:
                results.append(Result(
                    benchmark=NAME, name=f"{NAME}.{case}.{path}_vs_{baseline}", kind="throughput",
                    measured=measured[path], baseline_name=baseline, baseline=measured[baseline],
                    target_op=">=", target=target, params=params, note=note,
                ))
            log(f"  {NAME}.{case}: " + ", ".join(f"{k} {v.rows_per_s():,.0f} rows/s" for k, v in measured.items()))

        t0 = time.perf_counter()
        _restore(conn, first, end)
        details["cleanup_s"] = round(time.perf_counter() - t0, 3)
    finally:
        conn.close()
    return results, details
