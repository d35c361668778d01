"""Bounded work per call (issue 16 item 4): every exposed dashboard and retrieval function refuses inputs beyond its
bounds with 22023 and a message naming the bound, and the API roles' statement timeouts apply to the handlers' and the
tests' as-user transactions as PostgREST applies them.

Each bound is tried just beyond it (refused) and, where the bound is new, at it (accepted).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from arti.db import user_claims
from handlers.db import become_user
from tests.factories import World, build_world
from tests.harness import TestDB

TERMS_64 = " ".join(f"term{i}x" for i in range(64))
EMBEDDING_3 = "[0.1,0.2,0.3]"

# (call, bound named in the message); %(…)s are org A's ids. All refused with 22023.
BEYOND = [
    ("select * from public.metrics_summary(%(org_a)s, '2024-11-23', '2026-11-24')", "at most 731 days (2 years)"),
    ("select * from public.metrics_summary(%(org_a)s, '0001-01-01', '9999-12-31')", "at most 731 days (2 years)"),
    ("select * from public.metrics_timeseries(array[%(account_a)s]::uuid[], 'followers', '2024-11-23', "
     "'2026-11-24')", "at most 731 days (2 years)"),
    ("select * from public.metrics_timeseries((select array_agg(gen_random_uuid()) from generate_series(1, 201)), "
     "'followers', '2026-11-01', '2026-11-24')", "at most 200 accounts"),
    ("select * from public.metrics_timeseries(array[%(account_a)s]::uuid[], repeat('m', 64), '2026-11-01', "
     "'2026-11-24')", "at most 63 characters"),
    ("select * from public.top_movers(%(org_a)s, repeat('m', 64))", "at most 63 characters"),
    ("select * from public.top_movers(%(org_a)s, 'followers', 366)", "window_days must be between 1 and 365"),
    ("select * from public.top_movers(%(org_a)s, 'followers', 7, 101)", "max_results must be between 1 and 100"),
    ("select * from public.search_documents(%(org_a)s, repeat('growth ', 286) || 'x')", "at most 2000 characters"),
    ("select * from public.search_documents(%(org_a)s, %(terms_65)s)", "at most 64 search terms"),
    ("select * from public.search_documents(%(org_a)s, 'followers', %(embedding_3)s::extensions.vector)",
     "384 dimensions"),
    ("select * from public.search_documents(%(org_a)s, 'followers', null, null, 51)",
     "match_count must be between 1 and 50"),
]

AT = [
    "select * from public.metrics_summary(%(org_a)s, '2024-11-24', '2026-11-24')",
    "select * from public.metrics_timeseries(array[%(account_a)s]::uuid[], 'followers', '2024-11-24', '2026-11-24')",
    "select * from public.top_movers(%(org_a)s, repeat('m', 63))",
    "select * from public.search_documents(%(org_a)s, %(terms_64)s)",
    "select * from public.search_documents(%(org_a)s, repeat('x', 2000))",
]


def params(world: World) -> dict[str, Any]:
    return world.params() | {"terms_64": TERMS_64, "terms_65": TERMS_64 + " extra", "embedding_3": EMBEDDING_3}


@pytest.mark.parametrize(("sql", "bound"), BEYOND, ids=[b for _, b in BEYOND])
def test_beyond_each_bound_is_refused_naming_it(db: TestDB, sql: str, bound: str) -> None:
    world = build_world(db)
    with pytest.raises(psycopg.Error) as caught, db.as_user(world.users["analyst"]):
        db.execute(sql, params(world))
    assert caught.value.sqlstate == "22023"
    assert bound in (caught.value.diag.message_primary or "")


@pytest.mark.parametrize("sql", AT)
def test_at_each_new_bound_the_call_is_served(db: TestDB, sql: str) -> None:
    world = build_world(db)
    with db.as_user(world.users["analyst"]):
        db.execute(sql, params(world))


# Tenancy and webhook RPCs an admin calls: the text a caller sends is bounded before it is used or echoed back.
BEYOND_AS_ADMIN = [
    ("select public.invite_member(%(org_a)s, repeat('a', 250) || '@x.test', 'viewer')", "at most 254 characters"),
    ("select public.accept_invitation(repeat('t', 201))", "at most 200 characters"),
    ("select * from public.create_webhook_endpoint(%(org_a)s, 'https://hooks.example.com/a', "
     "array[repeat('e', 64)])", "at most 63 characters"),
    ("select * from public.create_webhook_endpoint(%(org_a)s, 'https://hooks.example.com/a', "
     "(select array_agg('sync.failed'::text) from generate_series(1, 51)))", "at most 50 event types"),
]


@pytest.mark.parametrize(("sql", "bound"), BEYOND_AS_ADMIN, ids=[b for _, b in BEYOND_AS_ADMIN])
def test_beyond_each_bound_of_the_admin_rpcs_is_refused_naming_it(db: TestDB, sql: str, bound: str) -> None:
    world = build_world(db)
    with pytest.raises(psycopg.Error) as caught, db.as_user(world.users["admin"]):
        db.execute(sql, params(world))
    assert caught.value.sqlstate == "22023"
    assert bound in (caught.value.diag.message_primary or "")


def test_the_whole_calendar_is_refused_with_its_span(db: TestDB) -> None:
    """'0001-01-01'..'9999-12-31' used to read every row the organization holds."""
    world = build_world(db)
    with pytest.raises(psycopg.Error) as caught, db.as_user(world.users["viewer"]):
        db.execute("select * from public.metrics_summary(%(org_a)s, '0001-01-01', '9999-12-31')", world.params())
    assert caught.value.sqlstate == "22023"
    assert caught.value.diag.message_primary == (
        "the range may span at most 731 days (2 years); this one spans 3652059 days")


# -- statement timeouts: applied per transaction as PostgREST applies the impersonated role's settings --------------

def test_as_role_applies_each_api_roles_statement_timeout_and_restores_the_tests(db: TestDB) -> None:
    world = build_world(db)
    before = db.value("select current_setting('statement_timeout')")
    with db.as_anon():
        assert db.value("select current_setting('statement_timeout')") == "3s"
    with db.as_user(world.users["viewer"]):
        assert db.value("select current_setting('statement_timeout')") == "8s"
    assert db.value("select current_setting('statement_timeout')") == before


def test_a_slow_query_as_anon_is_cancelled_at_3_seconds(db: TestDB) -> None:
    started = time.monotonic()
    with pytest.raises(psycopg.errors.QueryCanceled, match="statement timeout"), db.as_anon():
        db.execute("select pg_sleep(5)")
    elapsed = time.monotonic() - started
    assert 2.9 <= elapsed < 4.5, elapsed


async def test_the_handlers_as_user_transactions_carry_authenticateds_timeout(database_url: str) -> None:
    """handlers.db.become_user, what every handler runs as the user: the 8 s of `alter role authenticated`."""
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        before = await (await conn.execute("select current_setting('statement_timeout') as t")).fetchone()
        async with conn.transaction():
            await become_user(conn, user_claims(str(uuid.uuid4())))
            row = await (await conn.execute("select current_user as who, current_setting('statement_timeout') as t"
                                            )).fetchone()
            assert row == {"who": "authenticated", "t": "8s"}
        after = await (await conn.execute("select current_setting('statement_timeout') as t")).fetchone()
        assert after == before and before is not None and before["t"] != "8s"
