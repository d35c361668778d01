"""The Procrastinate app. Its schema lives in `procrastinate` (see arti.queue_schema)."""

from __future__ import annotations

from typing import Any

import procrastinate
from psycopg_pool import AsyncConnectionPool

from arti.settings import get_settings

TASK_MODULES = ["jobs.sync", "jobs.maintenance", "jobs.insights", "jobs.webhooks", "jobs.webhook_drain"]


def pool_args(url: str, *, max_size: int = 10) -> dict[str, Any]:
    """The connection pool's arguments: connections find Procrastinate's objects in their own schema."""
    return {"conninfo": url, "kwargs": {"options": "-c search_path=procrastinate,public,extensions"},
            "min_size": 1, "max_size": max_size}


def make_connector(url: str, *, max_size: int = 10) -> procrastinate.PsycopgConnector:
    """A connector whose connections find Procrastinate's objects in their own schema."""
    return procrastinate.PsycopgConnector(**pool_args(url, max_size=max_size))


def make_pool(url: str, *, max_size: int = 10) -> AsyncConnectionPool[Any]:
    """An unopened pool with the connector's arguments, checked at checkout as the connector's own is (a connection
    the server dropped is replaced); `await pool.open(wait=False)` does not need the database to be up."""
    return AsyncConnectionPool(**pool_args(url, max_size=max_size), open=False,
                               check=AsyncConnectionPool.check_connection, name="arti-worker")


def make_app(url: str | None = None, *, max_size: int = 10) -> procrastinate.App:
    """The app bound to a database (the settings' one by default)."""
    return procrastinate.App(
        connector=make_connector(url or get_settings().database_url(), max_size=max_size),
        import_paths=TASK_MODULES,
    )


app = make_app()
