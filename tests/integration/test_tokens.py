"""Provider tokens: refreshed before expiry, single-flight across workers, single-use refresh tokens replaced."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest
import respx
from psycopg.rows import dict_row

from arti.crypto import TokenCipher, generate_key_setting
from arti.providers.base import TokenSet
from arti.providers.soundcloud import TOKEN_URL, SoundCloudClient
from arti.tokens import SAVE_SQL, TokensMissing, token_params, valid_access_token

CIPHER = TokenCipher.from_setting(generate_key_setting("t1"))


@pytest.fixture
def account(database_url: str) -> Iterator[str]:
    """A committed SoundCloud account (removed afterwards) whose token expires in one minute."""
    with psycopg.connect(database_url, autocommit=True, row_factory=dict_row) as conn:
        org = conn.execute("insert into public.organizations (name, slug) values ('Tok', %s) returning id",
                           (f"tok-{uuid.uuid4().hex[:8]}",)).fetchone()["id"]
        artist = conn.execute("insert into public.artists (org_id, name) values (%s, 'T') returning id",
                              (org,)).fetchone()["id"]
        row = conn.execute("insert into public.connected_accounts (org_id, artist_id, provider, external_id) "
                           "values (%s, %s, 'soundcloud', '123456789') returning id", (org, artist)).fetchone()
        acc = str(row["id"])
        expiring = TokenSet(access_token="old-access", refresh_token="refresh-1",
                            expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1))
        conn.execute(SAVE_SQL, token_params(CIPHER, acc, expiring))
        try:
            yield acc
        finally:
            conn.execute("delete from public.organizations where id = %s", (org,))


def stored(database_url: str, account: str) -> dict[str, Any]:
    with psycopg.connect(database_url, row_factory=dict_row) as conn:
        return conn.execute("select * from private.provider_tokens where account_id = %s", (account,)).fetchone()


@respx.mock
async def test_two_workers_refresh_once_and_the_single_use_refresh_token_is_replaced(
    database_url: str, account: str
) -> None:
    calls: list[str] = []

    async def slow_token(request: httpx.Request) -> httpx.Response:
        calls.append(request.content.decode())
        await asyncio.sleep(0.3)  # both workers are waiting now; only one may be refreshing
        return httpx.Response(200, json={"access_token": "new-access", "token_type": "bearer", "expires_in": 3599,
                                         "refresh_token": "refresh-2", "scope": ""})

    respx.post(TOKEN_URL).mock(side_effect=slow_token)
    client = SoundCloudClient("sc-client", "sc-secret", httpx.AsyncClient())

    async def worker() -> str:
        async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
            return await valid_access_token(conn, CIPHER, client, account)

    tokens = await asyncio.gather(worker(), worker())
    assert tokens == ["new-access", "new-access"]
    assert len(calls) == 1 and "refresh_token=refresh-1" in calls[0]
    row = stored(database_url, account)
    assert CIPHER.decrypt(row["refresh_token_encrypted"], f"{account}:refresh") == "refresh-2"
    assert "new-access" not in json.dumps(row, default=str)  # encrypted at rest
    # The spent refresh token is never sent again.
    assert await worker() == "new-access" and len(calls) == 1


async def test_a_fresh_token_is_used_as_is(database_url: str, account: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(SAVE_SQL, token_params(CIPHER, account, TokenSet(
            access_token="fresh", refresh_token="r", expires_at=dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))))
    client = SoundCloudClient("sc-client", "sc-secret", httpx.AsyncClient(transport=httpx.MockTransport(
        lambda request: pytest.fail(f"unexpected call to {request.url}"))))
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        assert await valid_access_token(conn, CIPHER, client, account) == "fresh"


async def test_missing_tokens_ask_for_a_reconnect(database_url: str, account: str) -> None:
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("delete from private.provider_tokens where account_id = %s", (account,))
    client = SoundCloudClient("sc-client", "sc-secret", httpx.AsyncClient())
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as conn:
        with pytest.raises(TokensMissing, match="connect it again"):
            await valid_access_token(conn, CIPHER, client, account)
