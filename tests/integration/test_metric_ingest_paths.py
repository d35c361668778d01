"""arti.metrics_store: one statement over arrays for a sync's batch, COPY first for a large new batch; idempotent.

The write path changed (issue 18): no temporary table; a batch of COPY_FIRST_MIN rows or more is COPYed straight
into public.metrics and upserted only if a key exists already or repeats. Whatever the path, a re-run writes
nothing new, a changed value is rewritten, and the last of a repeated key wins.
"""

from __future__ import annotations

import datetime as dt
import uuid
from decimal import Decimal

from arti.metrics_store import COPY_FIRST_MIN, MetricRow, upsert_metrics_sync
from tests.harness import TestDB

DAY = dt.date(2031, 1, 1)


def _accounts(db: TestDB, n: int) -> list[tuple[uuid.UUID, uuid.UUID]]:
    org = db.value("insert into public.organizations (name, slug) values ('Ingest', %s) returning id",
                   (f"ingest-{uuid.uuid4().hex[:8]}",))
    artist = db.value("insert into public.artists (org_id, name) values (%s, 'I') returning id", (org,))
    rows = db.execute("insert into public.connected_accounts (org_id, artist_id, provider, external_id) "
                      "select %s, %s, 'spotify', 'ingest' || g from generate_series(1, %s) as g returning id, org_id",
                      (org, artist, n))
    return [(r["id"], r["org_id"]) for r in rows]


def _day(accounts: list[tuple[uuid.UUID, uuid.UUID]], day: dt.date, value: int) -> list[MetricRow]:
    return [MetricRow(a, m, day, o, value, None) for a, o in accounts for m in ("followers", "plays")]


def _stored(db: TestDB, day: dt.date) -> dict[tuple[str, str], Decimal]:
    return {(str(r["account_id"]), r["metric"]): r["value"] for r in db.execute(
        "select account_id, metric, value from public.metrics where day = %s", (day,))}


def test_a_large_new_day_is_copied_then_re_runs_write_nothing(db: TestDB) -> None:
    accounts = _accounts(db, COPY_FIRST_MIN // 2 + 10)  # 2 metrics each: past COPY_FIRST_MIN rows
    rows = _day(accounts, DAY, 7)
    assert len(rows) >= COPY_FIRST_MIN
    assert upsert_metrics_sync(db.conn, rows) == len(rows)
    assert len(_stored(db, DAY)) == len(rows)
    # The same day again: COPY meets the first stored key, its savepoint rolls back, the upsert changes nothing.
    assert upsert_metrics_sync(db.conn, rows) == 0
    changed = [r._replace(value=8) if i % 100 == 0 else r for i, r in enumerate(rows)]
    assert upsert_metrics_sync(db.conn, changed) == len(range(0, len(rows), 100))
    assert sum(v == 8 for v in _stored(db, DAY).values()) == len(range(0, len(rows), 100))
    assert db.value("select count(*) from public.metrics where day = %s", (DAY,)) == len(rows)


def test_a_sync_batch_is_one_statement_and_the_last_repeat_wins(db: TestDB) -> None:
    (account, org), = _accounts(db, 1)
    week = [MetricRow(account, m, DAY + dt.timedelta(days=d), org, d, None) for d in range(7)
            for m in ("followers", "plays", "views", "reach", "likes")]
    repeated = [*week, MetricRow(account, "plays", DAY, org, 99.5, "revised")]
    assert upsert_metrics_sync(db.conn, repeated) == 35
    assert db.one("select value, note from public.metrics where account_id = %s and metric = 'plays' and day = %s",
                  (account, DAY)) == {"value": Decimal("99.5"), "note": "revised"}
    assert upsert_metrics_sync(db.conn, repeated) == 0
    # A value the platform did not provide is NULL with its note, never 0.
    assert upsert_metrics_sync(db.conn, [MetricRow(account, "views", DAY, org, None, "not provided")]) == 1
    assert db.value("select value from public.metrics where account_id = %s and metric = 'views' and day = %s",
                    (account, DAY)) is None


def test_a_large_batch_with_a_repeated_key_falls_back_to_the_upsert(db: TestDB) -> None:
    accounts = _accounts(db, COPY_FIRST_MIN // 2 + 10)
    rows = _day(accounts, DAY, 1)
    rows.append(rows[0]._replace(value=5))  # repeated key: COPY refuses it, the upsert keeps the last
    assert upsert_metrics_sync(db.conn, rows) == len(rows) - 1
    assert _stored(db, DAY)[(str(rows[0].account_id), rows[0].metric)] == 5


HOSTILE_NOTES = ['a "quoted" note', "back\\slash\\", "{braces}", "comma, here", "NULL", "null", "", "  padded  ",
                 "line\nbreak\ttab", "élan ✓ 日本", "\\\"", "ARRAY[1]", "'); drop table public.metrics; --"]


def test_every_note_and_value_is_stored_as_given(db: TestDB) -> None:
    """The batch travels as array literals built in Python: no text, number or NULL may change on the way."""
    (account, org), = _accounts(db, 1)
    values: list[Decimal | float | int | None] = [
        Decimal("1.0"), Decimal("1"), 1, Decimal("-0.000001"), Decimal("1E+3"), 0.1, 2**70, Decimal("NaN"),
        Decimal("123456789012345678901234567890.123456789"), -5, None, 3.5, Decimal("0.00")]
    rows = [MetricRow(account, "followers", DAY + dt.timedelta(days=i), org, values[i % len(values)], note)
            for i, note in enumerate([*HOSTILE_NOTES, None])]
    assert upsert_metrics_sync(db.conn, rows) == len(rows)
    stored = db.execute("select day, value::text as value, note from public.metrics where account_id = %s "
                        "order by day", (account,))
    expected_values = ["1.0", "1", "1", "-0.000001", "1000", "0.1", str(2**70), "NaN",
                       "123456789012345678901234567890.123456789", "-5", None, "3.5", "0.00"]
    assert [r["note"] for r in stored] == [*HOSTILE_NOTES, None]
    assert [r["value"] for r in stored] == [expected_values[i % len(values)] for i in range(len(rows))]
    assert db.value("select count(*) from public.metrics") >= len(rows)  # the table is still there
    assert upsert_metrics_sync(db.conn, rows) == 0  # and every stored row equals what was given
