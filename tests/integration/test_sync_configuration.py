"""A sync that cannot start for lack of configuration fails at once, saying what to set; none stays `running`.

Found (issue 17): a sync whose provider has no OAuth app configured failed inside the job before its run was
closed, so the run stayed `running` and `arti sync --wait` blamed the worker.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from arti.crypto import generate_key_setting
from arti.settings import Settings
from jobs.sync import run_sync


@pytest.fixture
def queued_run(conn: psycopg.Connection[Any], database_url: str) -> Iterator[dict[str, Any]]:
    """A committed active Spotify account with a queued run (removed afterwards)."""
    org = conn.execute("insert into public.organizations (name, slug) values ('Cfg', %s) returning id",
                       (f"cfg-{uuid.uuid4().hex[:8]}",)).fetchone()["id"]
    artist = conn.execute("insert into public.artists (org_id, name) values (%s, 'C') returning id",
                          (org,)).fetchone()["id"]
    account = conn.execute("insert into public.connected_accounts (org_id, artist_id, provider, external_id) "
                           "values (%s, %s, 'spotify', '0OdUWJ0sBjDrqHygGUXeCF') returning id",
                           (org, artist)).fetchone()["id"]
    run = conn.execute("insert into public.sync_runs (org_id, account_id, trigger) values (%s, %s, 'manual') "
                       "returning id", (org, account)).fetchone()["id"]
    try:
        yield {"run": str(run), "account": account, "url": database_url}
    finally:
        conn.execute("delete from public.organizations where id = %s", (org,))


def settings_without(url: str, **values: Any) -> Settings:
    base: dict[str, Any] = {"db_url": url, "jwt_secret": uuid.uuid4().hex * 2,
                            "encryption_keys": generate_key_setting("cfg"), "spotify_client_id": None,
                            "spotify_client_secret": None}
    return Settings(_env_file=None, **{**base, **values})  # type: ignore[call-arg]


def run_row(url: str, run: str) -> dict[str, Any]:
    with psycopg.connect(url, row_factory=dict_row) as conn:
        row = conn.execute("select status::text as status, error, finished_at from public.sync_runs "
                           "where id = %s", (run,)).fetchone()
    assert row is not None
    return row


async def test_an_unconfigured_provider_fails_the_run_at_once_naming_the_settings(queued_run: dict[str, Any]) -> None:
    result = await run_sync(queued_run["run"], settings=settings_without(queued_run["url"]))
    assert result == {"failed": "spotify is not configured on this worker: set SPOTIFY_CLIENT_ID and "
                                "SPOTIFY_CLIENT_SECRET"}
    row = run_row(queued_run["url"], queued_run["run"])
    assert row["status"] == "failed" and row["finished_at"] is not None
    assert "SPOTIFY_CLIENT_ID" in row["error"]


async def test_a_missing_key_ring_fails_the_run_at_once(queued_run: dict[str, Any]) -> None:
    settings = settings_without(queued_run["url"], encryption_keys=None, spotify_client_id="id",
                                spotify_client_secret="secret")
    result = await run_sync(queued_run["run"], settings=settings)
    assert "ARTI_ENCRYPTION_KEYS" in result["failed"]
    assert run_row(queued_run["url"], queued_run["run"])["status"] == "failed"


async def test_an_unexpected_error_closes_the_run_and_still_propagates(queued_run: dict[str, Any],
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    import jobs.sync

    async def broken(*args: Any, **kwargs: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(jobs.sync, "_fetch", broken)
    settings = settings_without(queued_run["url"], spotify_client_id="id", spotify_client_secret="secret")
    with pytest.raises(RuntimeError, match="a bug"):
        await run_sync(queued_run["run"], settings=settings)
    row = run_row(queued_run["url"], queued_run["run"])
    assert row["status"] == "failed" and "RuntimeError" in row["error"] and "arti jobs --failed" in row["error"]
