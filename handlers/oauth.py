"""Connecting provider accounts: OAuth start, callback and disconnect.

Start (`GET /functions/v1/oauth/{provider}/start`, user JWT)
    As the user: `private.has_permission(org, 'accounts.connect')` and the artist visible in that org. Then
    a random state (32 bytes, urlsafe) of which only sha256 is stored in `private.oauth_states`, bound to
    user, org, artist and provider, expiring after ARTI_OAUTH_STATE_TTL_SECONDS (10 minutes). The PKCE
    verifier (S256 wherever the provider supports it: required by SoundCloud, supported by Spotify and
    Google, not by Instagram) is kept encrypted with the key ring. Answers `{"authorize_url": ...}`, or a
    302 to it with `?redirect=1`.

Callback (`GET /functions/v1/oauth/{provider}/callback`, no JWT: the browser returns from the provider)
    The state is consumed atomically (single use, unexpired, same provider) or refused with 400. If an
    Authorization header accompanies the callback it must be valid and belong to the user who started the
    flow (403 otherwise, and the state stays unused for its owner). Then the code is exchanged (with the
    verifier), the account identified, and in ONE transaction: as the user who started the flow, the
    connected account is upserted (RLS decides); with the service connection, its tokens are stored
    encrypted (aad `{account_id}:access` / `:refresh`), a needs_reauth/revoked/error account is made active
    again, and the initial backfill is deferred with `private.enqueue_sync(account, 'connect', user)`.
    The browser is sent back only to the allow-listed frontend URL chosen at start:
    `?status=connected&provider=...&account_id=...`, `?status=denied` or `?status=error&reason=...`.

Disconnect (`POST /functions/v1/oauth/{provider}/disconnect` `{"account_id": ...}`, user JWT)
    As the user, the account row is locked `FOR UPDATE`, which RLS only allows with `accounts.connect`
    (403 when the account is visible but not updatable, 404 when not visible). Then its tokens are deleted
    and it is marked revoked (service connection); after commit the grant is revoked at the provider where
    that is documented (best effort).

Spotify: the login identity is a Spotify *user*, but the account a team connects is an *artist* (metrics
are fetched by artist id), so Spotify's start takes `external_id` (an artist id, `spotify:artist:` URI or
open.spotify.com link). It travels with the PKCE verifier inside the same encrypted blob of the state row
(`code_verifier_encrypted` holds `{"code_verifier", "external_id"}`, aad `oauth_state:{id}:flow`), and the
callback checks the artist with the granted token.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import secrets
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from arti.crypto import DecryptionError, TokenCipher
from arti.db import user_claims
from arti.jwt_auth import Claims
from arti.providers import AccountIdentity, PkcePair, ProviderClient, ProviderError, SpotifyClient, TokenSet
from arti.tokens import store_tokens
from handlers.db import Conn, as_user, become_service, become_user, fetch_one, transaction
from handlers.errors import HandlerError, json_object
from handlers.provider_revoke import revoke_grant
from handlers.redirects import with_query
from handlers.services import Services, authenticate, provider_name, services

log = logging.getLogger("handlers.oauth")

STATE_BYTES = 32
PKCE_SUPPORT = {"spotify": "supported", "youtube": "supported", "soundcloud": "required", "instagram": "none"}
"""Where PKCE S256 is used: every provider that documents it (SoundCloud requires it)."""
PROVIDERS_WITH_TARGET = frozenset({"spotify"})
"""Providers whose connected account is chosen at start (external_id), not the login identity."""

_SPOTIFY_ARTIST = re.compile(
    r"(?:spotify:artist:|https://open\.spotify\.com/(?:intl-[A-Za-z-]+/)?artist/)?(?P<id>[0-9A-Za-z]{1,64})"
    r"(?:\?[^#\s]*)?"
)
_PROVIDER_ERROR_CODE = re.compile(r"[a-z_]{1,40}")


# --------------------------------------------------------------------------------------------- inputs


class StartParams(BaseModel):
    """Query of the start endpoint."""

    model_config = ConfigDict(extra="ignore")

    org_id: uuid.UUID
    artist_id: uuid.UUID
    redirect_to: str | None = Field(default=None, max_length=2048)
    redirect: bool = False
    external_id: str | None = Field(default=None, min_length=1, max_length=300)


class CallbackParams(BaseModel):
    """Query of the callback (providers add parameters of their own, which are ignored)."""

    model_config = ConfigDict(extra="ignore")

    state: str | None = Field(default=None, max_length=512)
    code: str | None = Field(default=None, max_length=4096)
    error: str | None = Field(default=None, max_length=200)
    error_description: str | None = Field(default=None, max_length=2000)


class DisconnectBody(BaseModel):
    """Body of the disconnect endpoint."""

    model_config = ConfigDict(extra="forbid")

    account_id: uuid.UUID


# --------------------------------------------------------------------------------------------- state


def new_state() -> str:
    """A fresh OAuth state: 32 random bytes, urlsafe base64."""
    return secrets.token_urlsafe(STATE_BYTES)


def state_hash(state: str) -> bytes:
    """What is stored and looked up: sha256 of the state (the state itself is never stored)."""
    return hashlib.sha256(state.encode("utf-8")).digest()


@dataclass(frozen=True)
class FlowSecrets:
    """What the callback needs besides the state row: the PKCE verifier and (Spotify) the target account."""

    code_verifier: str | None = None
    external_id: str | None = None

    @staticmethod
    def aad(state_id: uuid.UUID | str) -> str:
        return f"oauth_state:{state_id}:flow"

    def seal(self, cipher: TokenCipher, state_id: uuid.UUID) -> str | None:
        if self.code_verifier is None and self.external_id is None:
            return None
        payload = json.dumps({"code_verifier": self.code_verifier, "external_id": self.external_id})
        return cipher.encrypt(payload, self.aad(state_id))

    @classmethod
    def unseal(cls, cipher: TokenCipher, state_id: uuid.UUID, sealed: str | None) -> FlowSecrets:
        if sealed is None:
            return cls()
        data = json.loads(cipher.decrypt(sealed, cls.aad(state_id)))
        return cls(code_verifier=data.get("code_verifier"), external_id=data.get("external_id"))


def target_external_id(provider: str, given: str | None) -> str | None:
    """The account chosen at start (Spotify artist id, normalised), or None where the login decides."""
    if provider not in PROVIDERS_WITH_TARGET:
        if given is not None:
            raise HandlerError(400, "invalid_request",
                               f"external_id is not used for {provider}: the account you sign in with is connected")
        return None
    if given is None:
        raise HandlerError(400, "invalid_request",
                           "spotify needs external_id: the Spotify artist id (or its spotify:artist: URI or link)")
    match = _SPOTIFY_ARTIST.fullmatch(given.strip())
    if match is None:
        raise HandlerError(400, "invalid_request", "external_id is not a Spotify artist id, URI or link")
    return match.group("id")


# --------------------------------------------------------------------------------------------- start


async def oauth_start(request: Request) -> Response:
    """Begin connecting a provider account for an artist (see the module docstring)."""
    svc = services(request)
    provider = provider_name(request)
    claims = await authenticate(request)
    params = StartParams.model_validate(dict(request.query_params))
    redirect_to = svc.redirects.resolve(params.redirect_to)
    if redirect_to is None:
        raise HandlerError(400, "redirect_not_allowed",
                           "redirect_to is not an allowed frontend URL (see ARTI_FRONTEND_URLS)")
    external_id = target_external_id(provider, params.external_id)
    client = svc.provider(provider)
    cipher = svc.cipher()

    pkce = PkcePair.new() if PKCE_SUPPORT[provider] != "none" else None
    state, state_id = new_state(), uuid.uuid4()
    sealed = FlowSecrets(pkce.verifier if pkce else None, external_id).seal(cipher, state_id)
    async with as_user(svc.pool, claims.as_dict(), svc.db_timeout) as conn:
        row = await fetch_one(
            conn,
            "select (select private.has_permission(%(org)s, 'accounts.connect')) as allowed, "
            "exists (select 1 from public.artists a where a.id = %(artist)s and a.org_id = %(org)s) as artist_ok",
            {"org": params.org_id, "artist": params.artist_id},
        )
        if row is None or not row["allowed"]:
            raise HandlerError(403, "forbidden",
                               "you need the accounts.connect permission (manager or above) in this organization")
        if not row["artist_ok"]:
            raise HandlerError(404, "artist_not_found", "no such artist in this organization")
        await become_service(conn)
        await conn.execute(
            "insert into private.oauth_states (id, state_hash, provider, user_id, org_id, artist_id, "
            "code_verifier_encrypted, redirect_to, expires_at) "
            "values (%s, %s, %s, %s, %s, %s, %s, %s, now() + make_interval(secs => %s))",
            (state_id, state_hash(state), provider, claims.sub, params.org_id, params.artist_id, sealed,
             redirect_to, svc.settings.oauth_state_ttl_seconds),
        )
    url = client.authorize_url(state, svc.settings.oauth_callback_url(provider), pkce.challenge if pkce else None)
    if params.redirect:
        return RedirectResponse(url, status_code=302)
    return JSONResponse({"authorize_url": url, "provider": provider,
                         "expires_in": svc.settings.oauth_state_ttl_seconds})


# --------------------------------------------------------------------------------------------- callback


CONSUME_SQL = """
update private.oauth_states as s
set used_at = now()
where s.state_hash = %(hash)s
  and s.used_at is null
  and s.expires_at > now()
  and s.provider = %(provider)s
  and (%(presenter)s::uuid is null or s.user_id = %(presenter)s::uuid)
returning s.id, s.user_id, s.org_id, s.artist_id, s.code_verifier_encrypted, s.redirect_to,
    (select u.email from auth.users as u where u.id = s.user_id) as email,
    coalesce((select coalesce(u.banned_until > now(), false) or u.deleted_at is not null
              from auth.users as u where u.id = s.user_id), true) as user_inactive
"""


async def consume_state(svc: Services, provider: str, state: str, presenter: str | None) -> dict[str, Any]:
    """Mark the state used and return its row, or refuse: 400 unknown/expired/used/other provider, 403 other user."""
    digest = state_hash(state)
    async with transaction(svc.pool, svc.db_timeout) as conn:
        row = await fetch_one(conn, CONSUME_SQL, {"hash": digest, "provider": provider, "presenter": presenter})
        if row is not None:
            return row
        known = await fetch_one(
            conn,
            "select provider::text as provider, user_id, used_at is not null as used, expires_at <= now() as expired "
            "from private.oauth_states where state_hash = %s",
            (digest,),
        )
    if known is None:
        raise HandlerError(400, "invalid_state", "unknown OAuth state: start connecting again")
    if known["used"]:
        raise HandlerError(400, "state_used", "this OAuth state was already used: start connecting again")
    if known["expired"]:
        raise HandlerError(400, "state_expired", "this OAuth state has expired: start connecting again")
    if known["provider"] != provider:
        raise HandlerError(400, "provider_mismatch", f"this OAuth state was issued for {known['provider']}")
    raise HandlerError(403, "state_user_mismatch", "this OAuth flow was started by another user")


async def identify(client: ProviderClient, tokens: TokenSet, external_id: str | None) -> AccountIdentity:
    """The account to connect: the chosen Spotify artist, otherwise the identity the token belongs to."""
    if isinstance(client, SpotifyClient):
        assert external_id is not None  # enforced at start
        return await client.artist_identity(tokens.access_token, external_id)
    return await client.identity(tokens.access_token)


UPSERT_SQL = """
insert into public.connected_accounts (org_id, artist_id, provider, external_id, display_name)
values (%(org)s, %(artist)s, %(provider)s, %(external_id)s, %(display_name)s)
on conflict (org_id, provider, external_id)
do update set display_name = excluded.display_name, artist_id = excluded.artist_id
returning id, status::text as status
"""


async def save_connection(conn: Conn, svc: Services, state_row: dict[str, Any], provider: str,
                          identity: AccountIdentity, tokens: TokenSet) -> tuple[uuid.UUID, uuid.UUID | None]:
    """Upsert the account as the user, then store tokens, reactivate and enqueue the backfill. One transaction."""
    user_id = str(state_row["user_id"])
    await become_user(conn, user_claims(user_id, email=state_row["email"]))
    account = await fetch_one(conn, UPSERT_SQL, {
        "org": state_row["org_id"], "artist": state_row["artist_id"], "provider": provider,
        "external_id": identity.external_id, "display_name": identity.display_name,
    })
    assert account is not None
    account_id = account["id"]
    await become_service(conn)
    await store_tokens(conn, svc.cipher(), account_id, tokens)
    if account["status"] != "active":
        await conn.execute(
            "update public.connected_accounts set status = 'active', last_error = null where id = %s",
            (account_id,),
        )
    run = await fetch_one(conn, "select private.enqueue_sync(%s, 'connect', %s) as run_id", (account_id, user_id))
    return account_id, (run["run_id"] if run else None)


def _back_to_frontend(svc: Services, stored: str, **params: str) -> RedirectResponse:
    # Re-checked at redirect time: the allow-list may have shrunk since the flow started.
    target = svc.redirects.resolve(stored) or svc.redirects.default
    return RedirectResponse(with_query(target, **params), status_code=302)


async def oauth_callback(request: Request) -> Response:
    """Finish connecting: validate the state, exchange the code, save the account (see the module docstring)."""
    svc = services(request)
    provider = provider_name(request)
    params = CallbackParams.model_validate(dict(request.query_params))
    if not params.state:
        raise HandlerError(400, "invalid_state", "the callback carries no OAuth state")
    presenter: Claims | None = None
    if "authorization" in request.headers:
        presenter = await authenticate(request)
    client = svc.provider(provider)
    cipher = svc.cipher()

    row = await consume_state(svc, provider, params.state, presenter.sub if presenter else None)
    stored = row["redirect_to"]
    if params.error:
        if params.error == "access_denied":
            return _back_to_frontend(svc, stored, status="denied", provider=provider)
        code = params.error if _PROVIDER_ERROR_CODE.fullmatch(params.error) else "provider_error"
        log.info("%s refused the authorization: %s", provider, code)
        return _back_to_frontend(svc, stored, status="error", provider=provider, reason=code)
    if not params.code:
        return _back_to_frontend(svc, stored, status="error", provider=provider, reason="missing_code")
    if row["user_inactive"]:
        return _back_to_frontend(svc, stored, status="error", provider=provider, reason="user_inactive")

    try:
        flow = FlowSecrets.unseal(cipher, row["id"], row["code_verifier_encrypted"])
        tokens = await client.exchange_code(params.code, svc.settings.oauth_callback_url(provider),
                                            flow.code_verifier)
        identity = await identify(client, tokens, flow.external_id)
    except DecryptionError:
        log.error("OAuth state %s: its sealed verifier does not decrypt (key ring changed?)", row["id"])
        return _back_to_frontend(svc, stored, status="error", provider=provider, reason="internal")
    except ProviderError as exc:
        log.warning("OAuth callback: %s", exc)  # provider messages are redacted by the clients
        return _back_to_frontend(svc, stored, status="error", provider=provider, reason="provider_error")

    try:
        async with transaction(svc.pool, svc.db_timeout) as conn:
            account_id, _run_id = await save_connection(conn, svc, row, provider, identity, tokens)
    except psycopg.errors.InsufficientPrivilege:
        return _back_to_frontend(svc, stored, status="error", provider=provider, reason="forbidden")
    except psycopg.errors.ForeignKeyViolation:
        return _back_to_frontend(svc, stored, status="error", provider=provider, reason="artist_not_found")
    return _back_to_frontend(svc, stored, status="connected", provider=provider, account_id=str(account_id))


# --------------------------------------------------------------------------------------------- disconnect


async def oauth_disconnect(request: Request) -> Response:
    """Disconnect an account: tokens deleted, account revoked, grant revoked at the provider where possible."""
    svc = services(request)
    provider = provider_name(request)
    claims = await authenticate(request)
    try:
        body = json_object(await request.json())
    except ValueError:
        raise HandlerError(400, "invalid_json", "the request body must be JSON: {\"account_id\": \"...\"}") from None
    account_id = DisconnectBody.model_validate(body).account_id

    async with as_user(svc.pool, claims.as_dict(), svc.db_timeout) as conn:
        # FOR UPDATE applies the UPDATE policy too: only members with accounts.connect get the row.
        locked = await fetch_one(
            conn, "select id from public.connected_accounts where id = %s and provider = %s for update",
            (account_id, provider))
        if locked is None:
            visible = await fetch_one(
                conn, "select 1 as one from public.connected_accounts where id = %s and provider = %s",
                (account_id, provider))
            if visible:
                raise HandlerError(403, "forbidden",
                                   "you need the accounts.connect permission (manager or above) to disconnect it")
            raise HandlerError(404, "account_not_found", f"no {provider} account with this id")
        await become_service(conn)
        tokens = await fetch_one(
            conn, "delete from private.provider_tokens where account_id = %s "
                  "returning access_token_encrypted, refresh_token_encrypted", (account_id,))
        await conn.execute(
            "update public.connected_accounts set status = 'revoked', last_error = null where id = %s",
            (account_id,))

    outcome = "no_tokens"
    if tokens is not None:
        access, refresh = _decrypt_quietly(svc, account_id, tokens)
        outcome = await revoke_grant(svc.provider_http, provider, access, refresh)
    return JSONResponse({"account_id": str(account_id), "status": "revoked", "provider_revocation": outcome})


def _decrypt_quietly(svc: Services, account_id: uuid.UUID, row: dict[str, Any]) -> tuple[str | None, str | None]:
    """The deleted tokens in clear for the revocation call; (None, None) when they cannot be read."""
    try:
        cipher = svc.cipher()
        access = cipher.decrypt(row["access_token_encrypted"], f"{account_id}:access")
        refresh = (cipher.decrypt(row["refresh_token_encrypted"], f"{account_id}:refresh")
                   if row["refresh_token_encrypted"] else None)
    except (DecryptionError, ValueError) as exc:
        log.warning("account %s: stored tokens do not decrypt (%s); not revoking at the provider",
                    account_id, type(exc).__name__)
        return None, None
    return access, refresh
