"""The sync hands a client its previous snapshot's point (TikTok's per-video counts): the latest stored before the
day being fetched, whichever sync stored it, and nothing when there is none."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from jobs.sync import _previous_point

END = dt.date(2026, 11, 29)


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
    """A connection whose work is rolled back."""
    connection = await psycopg.AsyncConnection.connect(database_url, row_factory=dict_row)
    try:
        yield connection
    finally:
        await connection.rollback()
        await connection.close()


async def account(conn: psycopg.AsyncConnection[Any]) -> tuple[Any, Any]:
    org = (await (await conn.execute("insert into public.organizations (name, slug) values ('Snap', %s) returning id",
                                     (f"snap-{uuid.uuid4().hex[:8]}",))).fetchone())["id"]
    artist = (await (await conn.execute("insert into public.artists (org_id, name) values (%s, 'A') returning id",
                                        (org,))).fetchone())["id"]
    acc = (await (await conn.execute("insert into public.connected_accounts (org_id, artist_id, provider, external_id) "
                                     "values (%s, %s, 'tiktok', '-000snap') returning id", (org, artist))).fetchone())
    return org, acc["id"]


async def snapshot(conn: psycopg.AsyncConnection[Any], org: Any, acc: Any, day: dt.date, views: int,
                   fetched: str, metric: str = "views") -> None:
    videos = {"videos": [{"id": "1", "view_count": views}]}
    payload = {"points": [{"metric": "followers", "day": day.isoformat(), "raw": {"follower_count": 1}},
                          {"metric": metric, "day": day.isoformat(), "raw": videos}]}
    await conn.execute("insert into public.metric_snapshots (org_id, account_id, endpoint, payload, fetched_at) "
                       f"values (%s, %s, 'fetch_metrics', %s, {fetched})", (org, acc, json.dumps(payload)))


async def test_the_latest_point_before_the_day_is_handed_back(conn: psycopg.AsyncConnection[Any]) -> None:
    org, acc = await account(conn)
    assert await _previous_point(conn, acc, "views", END) is None, "no snapshot yet: the first sync has no baseline"
    await snapshot(conn, org, acc, END - dt.timedelta(days=2), 100, "now() - interval '2 days'")
    await snapshot(conn, org, acc, END - dt.timedelta(days=1), 200, "now() - interval '1 day'")
    await snapshot(conn, org, acc, END, 300, "now() - interval '1 hour'")  # a resync of the same day
    await snapshot(conn, org, acc, END - dt.timedelta(days=1), 999, "now()", metric="other")

    found = await _previous_point(conn, acc, "views", END)
    assert found is not None and found.day == END - dt.timedelta(days=1)
    assert found.raw == {"videos": [{"id": "1", "view_count": 200}]}
    assert found.taken_at < dt.datetime.now(dt.UTC)
    older = await _previous_point(conn, acc, "views", END - dt.timedelta(days=1))
    assert older is not None and older.raw["videos"][0]["view_count"] == 100
