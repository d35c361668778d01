"""The Procrastinate app. Its schema lives in `procrastinate` (see arti.queue_schema)."""

from __future__ import annotations

import procrastinate

from arti.settings import get_settings

TASK_MODULES = ["jobs.sync", "jobs.maintenance", "jobs.insights", "jobs.webhooks", "jobs.webhook_drain"]


def make_connector(url: str, *, max_size: int = 10) -> procrastinate.PsycopgConnector:
    """A connector whose connections find Procrastinate's objects in their own schema."""
    return procrastinate.PsycopgConnector(
        conninfo=url,
        kwargs={"options": "-c search_path=procrastinate,public,extensions"},
        min_size=1,
        max_size=max_size,
    )


def make_app(url: str | None = None, *, max_size: int = 10) -> procrastinate.App:
    """The app bound to a database (the settings' one by default)."""
    return procrastinate.App(
        connector=make_connector(url or get_settings().database_url(), max_size=max_size),
        import_paths=TASK_MODULES,
    )


app = make_app()
