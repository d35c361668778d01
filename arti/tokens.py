"""Provider tokens at rest: encrypted in private.provider_tokens, refreshed single-flight.

The refresh runs while the token row is locked FOR UPDATE, so two workers never refresh the same
connection at once (the second waits, then sees the fresh token). A single-use refresh token
(SoundCloud) is replaced in the same transaction that receives it. A refused refresh
(invalid_grant) marks the account needs_reauth and notifies its managers; tokens and data stay.
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

import psycopg

from arti.crypto import TokenCipher
from arti.providers.base import ProviderAuthError, ProviderClient, TokenSet, utcnow


class TokensMissing(ProviderAuthError):
    """The account has no stored tokens: it must be connected again."""


def _aad(account_id: uuid.UUID | str, field: str) -> str:
    return f"{account_id}:{field}"


SAVE_SQL = (
    "insert into private.provider_tokens (account_id, access_token_encrypted, refresh_token_encrypted, expires_at, "
    "scope, updated_at) values (%s, %s, %s, %s, %s, now()) on conflict (account_id) do update set "
    "access_token_encrypted = excluded.access_token_encrypted, refresh_token_encrypted = "
    "excluded.refresh_token_encrypted, expires_at = excluded.expires_at, scope = excluded.scope, updated_at = now()"
)


def token_params(cipher: TokenCipher, account_id: uuid.UUID | str, tokens: TokenSet) -> tuple[Any, ...]:
    return (
        str(account_id),
        cipher.encrypt(tokens.access_token, _aad(account_id, "access")),
        cipher.encrypt(tokens.refresh_token, _aad(account_id, "refresh")) if tokens.refresh_token else None,
        tokens.expires_at,
        tokens.scope,
    )


async def store_tokens(conn: psycopg.AsyncConnection[Any], cipher: TokenCipher, account_id: uuid.UUID | str,
                       tokens: TokenSet) -> None:
    await conn.execute(SAVE_SQL, token_params(cipher, account_id, tokens))


async def mark_needs_reauth(conn: psycopg.AsyncConnection[Any], account_id: uuid.UUID | str, reason: str) -> None:
    """Flag the account (its people are notified by the outbox trigger). Never deletes tokens or data."""
    await conn.execute(
        "update public.connected_accounts set status = 'needs_reauth', last_error = %s where id = %s",
        (reason, str(account_id)),
    )
    # The status change emits account.needs_reauth through the outbox, which notifies the members who can
    # reconnect the account (and any subscribed webhook).


async def valid_access_token(conn: psycopg.AsyncConnection[Any], cipher: TokenCipher, client: ProviderClient,
                             account_id: uuid.UUID | str, *, force_refresh: bool = False) -> str:
    """An access token valid for at least a few minutes, refreshing it (single-flight) when needed.

    Must be called outside a transaction: it opens its own, holding the row lock during the refresh. A token
    that does not need refreshing is read without a lock or a transaction (one round trip, as most syncs need).
    """
    if not force_refresh:
        cur = await conn.execute(
            "select access_token_encrypted, expires_at from private.provider_tokens where account_id = %s",
            (str(account_id),),
        )
        row = await cur.fetchone()
        values = (list(row.values()) if isinstance(row, dict) else list(row)) if row is not None else None
        if values is not None and not (values[1] is not None and values[1] - utcnow() <= timedelta(
                seconds=client.refresh_margin_seconds)):
            return cipher.decrypt(values[0], _aad(account_id, "access"))
    async with conn.transaction():
        cur = await conn.execute(
            "select access_token_encrypted, refresh_token_encrypted, expires_at, scope "
            "from private.provider_tokens where account_id = %s for update",
            (str(account_id),),
        )
        row = await cur.fetchone()
        if row is None:
            raise TokensMissing(client.name, "no stored tokens for this account; connect it again")
        values = list(row.values()) if isinstance(row, dict) else list(row)
        access = cipher.decrypt(values[0], _aad(account_id, "access"))
        refresh = cipher.decrypt(values[1], _aad(account_id, "refresh")) if values[1] else None
        current = TokenSet(access_token=access, refresh_token=refresh, expires_at=values[2], scope=values[3])
        if not force_refresh and not current.expires_within(client.refresh_margin_seconds, utcnow()):
            return current.access_token
        if current.refresh_token is None and not client.refreshes_with_access_token:
            if force_refresh:
                raise ProviderAuthError(client.name, "the access token was refused and there is no refresh token")
            return current.access_token
        fresh = await client.refresh(current)
        await store_tokens(conn, cipher, account_id, fresh)
        return fresh.access_token
