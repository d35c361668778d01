"""Rate limits of the expensive routes (issue 14, item 4): the flood through the real edge, and the SQL bucket.

The attack: one analyst sends POST /functions/v1/insights/ask as fast as it can, in an organization with 7
webhook endpoints; each call used to make an insight, notifications, one delivery and one job per endpoint.
Now the limits (private.settings rate_limits.insights_ask.*, per user and per organization, kept in Postgres)
answer 429 with Retry-After before any of that. The requests go through Caddy and uvicorn (tests/edge_stack.py).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from tests.edge_stack import EdgeStack
from tests.factories import World
from tests.handlers.conftest import bearer

ASK = "/functions/v1/insights/ask"


@pytest.fixture
def limits(conn: psycopg.Connection[Any]) -> Iterator[Callable[[str, str], None]]:
    """limits("insights_ask.per_org", "12") commits a rate_limits.* setting; the old values come back afterwards."""
    saved: dict[str, str | None] = {}

    def put(name: str, value: str) -> None:
        key = f"rate_limits.{name}"
        if key not in saved:
            row = conn.execute("select value from private.settings where key = %s", (key,)).fetchone()
            saved[key] = row["value"] if row else None
        conn.execute("insert into private.settings (key, value) values (%s, %s) "
                     "on conflict (key) do update set value = excluded.value", (key, value))

    yield put
    for key, value in saved.items():
        if value is None:
            conn.execute("delete from private.settings where key = %s", (key,))
        else:
            conn.execute("update private.settings set value = %s where key = %s", (value, key))


def counts(conn: psycopg.Connection[Any], org: Any) -> dict[str, int]:
    """What an answered question writes: the insight, its event, deliveries, drain jobs, notifications."""
    row = conn.execute(
        "select (select count(*) from public.insights where org_id = %(o)s and kind = 'answer') as insights, "
        "(select count(*) from private.outbox where org_id = %(o)s and type = 'insight.created') as events, "
        "(select count(*) from public.webhook_deliveries where org_id = %(o)s) as deliveries, "
        "(select count(*) from public.notifications where org_id = %(o)s and kind = 'insight.created') "
        "as notifications, "
        "(select count(*) from procrastinate.procrastinate_jobs j join public.webhook_endpoints e "
        " on j.queueing_lock = 'webhook-endpoint:' || e.id where e.org_id = %(o)s and j.status = 'todo') as jobs",
        {"o": org}).fetchone()
    return dict(row)


@pytest.fixture
def endpoints(conn: psycopg.Connection[Any], world: World) -> Iterator[list[str]]:
    """Seven endpoints of org A subscribed to insight.created (nothing delivers them: no worker runs)."""
    ids = []
    with conn.transaction():
        conn.execute("set local role authenticated")
        conn.execute("select set_config('request.jwt.claims', %s, true)",
                     (f'{{"sub": "{world.users["admin"]}", "role": "authenticated"}}',))
        for i in range(7):
            row = conn.execute("select (public.create_webhook_endpoint(%s, %s, '{insight.created}')) ->> 'id' as id",
                               (world.ids["org_a"], f"https://hooks-{i}.example.com/arti")).fetchone()
            ids.append(row["id"])
    yield ids
    conn.execute("delete from procrastinate.procrastinate_jobs where queueing_lock = any(%s)",
                 ([f"webhook-endpoint:{i}" for i in ids],))


def flood(stack: EdgeStack | list[EdgeStack], user: uuid.UUID, org: Any, calls: int,
          threads: int = 8) -> list[httpx.Response]:
    """`calls` questions from one user, `threads` at a time (alternating between stacks when several)."""
    stacks = stack if isinstance(stack, list) else [stack]
    clients = [s.client() for s in stacks]

    def one(i: int) -> httpx.Response:
        return clients[i % len(clients)].post(ASK, headers=bearer(user),
                                              json={"org_id": str(org), "question": f"How did plays move? #{i}"})

    try:
        with ThreadPoolExecutor(threads) as pool:
            return list(pool.map(one, range(calls)))
    finally:
        for client in clients:
            client.close()


def check_refusal(response: httpx.Response, scope_words: str) -> int:
    assert response.status_code == 429, response.text
    body = response.json()
    assert set(body) == {"error", "message"} and body["error"] == "rate_limited", body
    assert scope_words in body["message"], body["message"]
    retry_after = int(response.headers["retry-after"])
    assert 1 <= retry_after <= 60
    assert f"try again in {retry_after} s" in body["message"]
    return retry_after


def test_one_analyst_flooding_ask_gets_429_after_the_limit_and_refused_calls_write_nothing(
        edge: EdgeStack, conn: psycopg.Connection[Any], world: World, endpoints: list[str]) -> None:
    org = world.ids["org_a"]
    before = counts(conn, org)
    t0 = time.monotonic()
    responses = flood(edge, world.users["analyst"], org, 40)
    elapsed = time.monotonic() - t0
    ok = [r for r in responses if r.status_code == 200]
    refused = [r for r in responses if r.status_code != 200]
    # Default: 10 a minute per user, a burst of 10 (then one more every 6 s, had the flood lasted that long).
    assert 10 <= len(ok) <= 10 + int(elapsed // 6) + 1, (len(ok), elapsed, edge.log("handlers")[-3000:])
    for response in refused:
        check_refusal(response, "you may make 10 per minute")
    after = counts(conn, org)
    # Only the admitted calls wrote anything; answers notify nobody; 7 endpoints, but at most one job each.
    assert after["insights"] - before["insights"] == len(ok)
    assert after["events"] - before["events"] == len(ok)
    assert after["deliveries"] - before["deliveries"] == 7 * len(ok)
    assert after["notifications"] == before["notifications"] == 0
    assert after["jobs"] == 7
    # Another organization is not affected by org A's flood.
    other = flood(edge, world.users["owner_b"], world.ids["org_b"], 1)
    assert other[0].status_code == 200, other[0].text


def test_a_second_member_hits_the_organization_limit_and_two_instances_share_the_buckets(
        edge_factory: Callable[..., EdgeStack], conn: psycopg.Connection[Any], world: World,
        limits: Callable[[str, str], None]) -> None:
    limits("insights_ask.window_seconds", "600")  # slow refill: nothing comes back during the test
    limits("insights_ask.per_org", "12")
    org = world.ids["org_a"]
    first, second = edge_factory(), edge_factory()  # two uvicorn processes, each with its own pool
    # The analyst alternates between the two instances: together they admit exactly the user limit.
    analyst = flood([first, second], world.users["analyst"], org, 16, threads=4)
    assert sum(r.status_code == 200 for r in analyst) == 10
    for response in analyst:
        if response.status_code != 200:
            check_refusal(response, "you may make 10 per 600 seconds")
    # The manager (also allowed to ask) has a fresh user bucket, but the organization has 2 calls left.
    manager = flood([second, first], world.users["manager"], org, 6, threads=1)
    assert [r.status_code for r in manager] == [200, 200, 429, 429, 429, 429]
    retry = check_refusal(manager[2], "your organization may make 12 per 600 seconds")
    assert 40 <= retry <= 50  # 12 per 600 s: one more every 50 s
    assert counts(conn, org)["insights"] == 12
    # Org B is not limited by org A's budget.
    assert flood(first, world.users["owner_b"], world.ids["org_b"], 1)[0].status_code == 200


def test_refused_callers_do_not_use_up_an_organizations_budget(edge: EdgeStack, conn: psycopg.Connection[Any],
                                                               world: World,
                                                               limits: Callable[[str, str], None]) -> None:
    """The organization's bucket is charged only after the permission check: outsiders and viewers get 403
    however often they try, and the organization's members can still ask."""
    limits("insights_ask.per_org", "3")
    org = world.ids["org_a"]
    for persona in ("outsider", "viewer", "owner_b"):
        assert {r.status_code for r in flood(edge, world.users[persona], org, 5, threads=5)} == {403}
    assert [r.status_code for r in flood(edge, world.users["analyst"], org, 4, threads=1)] == [200, 200, 200, 429]


def test_oauth_start_is_limited_per_user_and_refused_starts_store_no_state(
        edge: EdgeStack, conn: psycopg.Connection[Any], world: World) -> None:
    query = {"org_id": str(world.ids["org_a"]), "artist_id": str(world.ids["artist_a"])}
    with edge.client() as client:
        statuses = []
        for _ in range(13):
            response = client.get("/functions/v1/oauth/soundcloud/start", params=query,
                                  headers=bearer(world.users["manager"]))
            statuses.append(response.status_code)
        assert statuses == [200] * 10 + [429] * 3
        check_refusal(response, "you may make 10 per minute")
    states = conn.execute("select count(*) as n from private.oauth_states where org_id = %s",
                          (world.ids["org_a"],)).fetchone()["n"]
    assert states == 10


# -- the SQL bucket itself ---------------------------------------------------------------------------


def take(conn: psycopg.Connection[Any], route: str, user: Any, org: Any = None) -> dict[str, Any]:
    row = conn.execute("select private.take_rate_limit(%s, %s, %s) as d", (route, user, org)).fetchone()
    return row["d"]


def test_the_bucket_admits_a_burst_then_one_call_per_interval(conn: psycopg.Connection[Any],
                                                               limits: Callable[[str, str], None]) -> None:
    for name, value in (("test_route.per_user", "4"), ("test_route.per_org", "0"), ("test_route.window_seconds", "2")):
        limits(name, value)
    user = uuid.uuid4()
    assert [take(conn, "test_route", user)["allowed"] for _ in range(5)] == [True] * 4 + [False]
    refusal = take(conn, "test_route", user)
    assert refusal["scope"] == "user" and refusal["limit"] == 4 and refusal["window_seconds"] == 2
    assert take(conn, "test_route", uuid.uuid4())["allowed"] is True  # another user: another bucket
    assert 0 < refusal["retry_after"] <= 0.5  # one call every 2 / 4 s
    time.sleep(refusal["retry_after"] + 0.05)
    assert take(conn, "test_route", user)["allowed"] is True
    assert take(conn, "test_route", user)["allowed"] is False
    # Full again after a window: the row is stale and the pruning job deletes it.
    time.sleep(2.1)
    assert conn.execute("select private.prune_request_rate_limits() as n").fetchone()["n"] >= 1
    assert conn.execute("select count(*) as n from private.request_rate_limits where bucket like %s",
                        (f"test_route:user:{user}",)).fetchone()["n"] == 0
    with pytest.raises(psycopg.Error) as caught:
        take(conn, "Bad Route!", user)
    assert caught.value.sqlstate == "22023"


def test_concurrent_callers_never_take_more_than_the_limit(database_url: str, conn: psycopg.Connection[Any],
                                                           limits: Callable[[str, str], None]) -> None:
    for name, value in (("test_route.per_user", "100"), ("test_route.per_org", "7"),
                        ("test_route.window_seconds", "3600")):
        limits(name, value)
    org = uuid.uuid4()
    users = [uuid.uuid4() for _ in range(4)]

    def hammer(user: uuid.UUID) -> int:
        with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as own:
            return sum(take(own, "test_route", user, org)["allowed"] for _ in range(10))

    with ThreadPoolExecutor(len(users)) as pool:
        admitted = sum(pool.map(hammer, users))
    assert admitted == 7
    conn.execute("delete from private.request_rate_limits where bucket like 'test_route:%%'")


def test_the_buckets_are_reachable_by_no_api_role(conn: psycopg.Connection[Any]) -> None:
    for role in ("anon", "authenticated"):
        row = conn.execute(
            "select has_table_privilege(%(r)s, 'private.request_rate_limits', 'select, insert, update, delete') "
            "as tbl, has_function_privilege(%(r)s, 'private.take_rate_limit(text, uuid, uuid)', 'execute') as fn",
            {"r": role}).fetchone()
        assert row == {"tbl": False, "fn": False}, role
