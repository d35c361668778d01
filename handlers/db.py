"""Database access for the handlers: one async pool, and transactions *as the user*.

The pool connects as the configured database role (the "service connection": `postgres`, as the worker
does). A request that acts for a user opens one transaction on it and, before touching any data, becomes
that user exactly as PostgREST does: `set local role authenticated`, the verified JWT claims in
`request.jwt.claims` and the role's own settings (its statement timeout), so RLS policies and SQL functions
decide. Work that needs the service connection (the `private` schema, columns users may not write) comes
after `become_service` in the same transaction, only once the user's own statements have passed RLS; the
claims stay set so audit triggers still record the user as the actor.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool

from arti.db import (
    API_ROLES,
    ROLE_SETTINGS_SQL,
    USER_SETTINGS_SQL,
    RoleSettings,
    request_context_sql,
    role_settings_from,
)

Conn = psycopg.AsyncConnection[dict[str, Any]]


def make_pool(url: str, *, max_size: int, timeout: float) -> AsyncConnectionPool[Any]:
    """An unopened pool of autocommit connections returning dict rows.

    Prepared statements are off (`prepare_threshold=None`) so the pool also works through Supabase's
    transaction-mode pooler.
    """
    return AsyncConnectionPool(
        url,
        open=False,
        min_size=1,
        max_size=max_size,
        timeout=timeout,
        kwargs={"autocommit": True, "row_factory": dict_row, "prepare_threshold": None},
        # A quick check at checkout replaces connections the server dropped (restart, idle timeout).
        check=AsyncConnectionPool.check_connection,
        name="arti-handlers",
    )


_ROLE_SETTINGS: dict[tuple[str, str, str], RoleSettings] = {}


async def role_settings(conn: Conn, role: str) -> tuple[tuple[str, str], ...]:
    """The settings PostgREST applies when it impersonates `role` (its statement timeout above all), read from
    pg_db_role_setting once per database and cached for the life of the process."""
    key = (str(conn.info.host), str(conn.info.port), str(conn.info.dbname))
    if key not in _ROLE_SETTINGS:
        rows = await (await conn.execute(ROLE_SETTINGS_SQL, {"roles": list(API_ROLES)})).fetchall()
        settable = {r["name"] for r in await (await conn.execute(USER_SETTINGS_SQL)).fetchall()}
        _ROLE_SETTINGS[key] = role_settings_from(rows, settable)
    return _ROLE_SETTINGS[key].get(role, ())


async def become_user(conn: Conn, claims: Mapping[str, Any]) -> None:
    """Inside the current transaction, become `authenticated` with `claims` and the role's own settings
    (`statement_timeout` 8 s on Supabase), what PostgREST does: `set local role` alone does not apply them."""
    settings = await role_settings(conn, "authenticated")
    await conn.execute("set local role authenticated")
    await conn.execute(
        request_context_sql(settings),
        (json.dumps(dict(claims)), str(claims.get("sub") or ""), *(part for pair in settings for part in pair)),
    )


async def become_service(conn: Conn) -> None:
    """Back to the connection's own role for the rest of the transaction (claims stay, for auditing)."""
    await conn.execute("reset role")


@asynccontextmanager
async def transaction(pool: AsyncConnectionPool[Any], timeout: float) -> AsyncIterator[Conn]:
    """A connection from the pool inside one transaction (committed on success, rolled back on error)."""
    async with pool.connection(timeout=timeout) as conn, conn.transaction():
        yield conn


@asynccontextmanager
async def as_user(pool: AsyncConnectionPool[Any], claims: Mapping[str, Any], timeout: float) -> AsyncIterator[Conn]:
    """One transaction that starts as the user with these claims."""
    async with transaction(pool, timeout) as conn:
        await become_user(conn, claims)
        yield conn


async def fetch_one(conn: Conn, sql: str, params: Any = None) -> dict[str, Any] | None:
    """The first row of a query, or None."""
    cur = await conn.execute(sql, params)
    return await cur.fetchone()
