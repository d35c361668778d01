"""Connecting provider accounts: OAuth start, callback, completion and disconnect.

Start (`GET /functions/v1/oauth/{provider}/start`, user JWT)
    As the user: `private.has_permission(org, 'accounts.connect')` and the artist visible in that org. Then
    a random state (32 bytes, urlsafe) of which only sha256 is stored in `private.oauth_states`, bound to
    user, org, artist and provider, expiring after ARTI_OAUTH_STATE_TTL_SECONDS (10 minutes). The PKCE
    verifier (S256 wherever the provider supports it: required by SoundCloud, supported by Spotify and
    Google, not by Instagram nor TikTok's Login Kit for Web) is kept encrypted with the key ring. Answers
    `{"authorize_url": ...}`, or a 302 to it with `?redirect=1`.

Callback (`GET /functions/v1/oauth/{provider}/callback`, no JWT: the browser returns from the provider)
    The state is consumed atomically (single use, unexpired, same provider) or refused with 400. If an
    Authorization header accompanies the callback it must be valid and belong to the user who started the
    flow (403 otherwise, and the state stays unused for its owner). Then the code is exchanged (with the
    verifier) and the account identified, but nothing is connected: the result is PARKED in
    `private.oauth_pending_connections` (the token set encrypted, aad `oauth_pending:{id}:tokens`, and the
    identity) under a fresh one-time completion secret (32 random bytes, urlsafe; only its sha256 is stored)
    that expires after COMPLETION_TTL_SECONDS (10 minutes). The browser is sent back only to the
    allow-listed frontend URL chosen at start: `?status=pending&provider=...&completion=<secret>`,
    `?status=denied` or `?status=error&reason=...`. pg_cron deletes expired parked connections (tokens
    included; no revocation at the provider from SQL) and states expired for a day every 5 minutes
    (`private.prune_oauth_flows()`).

Complete (`POST /functions/v1/oauth/{provider}/complete` `{"completion": ...}`, user JWT)
    Why a second step: the callback carries no JWT, so the state alone cannot tell whose browser came back;
    an attacker could start a flow and lure a victim into consenting with the attacker's state (RFC 9700
    4.7). The completion secret reaches only the browser that went through the provider's consent, and
    only the JWT of the user who started the flow completes it: the attacker lacks the secret, the victim
    is not the starter. In ONE transaction the parked row is locked (unknown, used, expired or another
    provider's → 400 invalid_completion / completion_used / completion_expired / provider_mismatch, nothing
    consumed) and consumed: its tokens are erased from it whatever the outcome (single use). Then, if the
    JWT's user did not start the flow → 403 state_user_mismatch; if they are banned or deleted → 403
    user_inactive; otherwise, as that user, `accounts.connect` is re-checked (403 forbidden) and the
    connected account upserted (RLS decides; 404 artist_not_found if the artist went away); with the service
    connection its tokens are stored encrypted (aad `{account_id}:access` / `:refresh`), a
    needs_reauth/revoked/error account is made active again, and the initial backfill is deferred with
    `private.enqueue_sync(account, 'connect', user)`. Answers `{"status": "connected", "account_id",
    "provider"}`. Parked tokens that are not stored are revoked at the provider after commit (best effort,
    see provider_revoke), unless the same provider account is connected with tokens somewhere on the
    platform: Google's revocation ends the whole grant, which that connection shares. The frontend should
    call this at once on `status=pending` and drop the secret from its URL (history.replaceState).

Disconnect (`POST /functions/v1/oauth/{provider}/disconnect` `{"account_id": ...}`, user JWT)
    As the user, the account row is locked `FOR UPDATE`, which RLS only allows with `accounts.connect`
    (403 when the account is visible but not updatable, 404 when not visible). Then its tokens are deleted
    and it is marked revoked (service connection); after commit the grant is revoked at the provider where
    that is documented (best effort; TikTok's revocation is authenticated with the app's client key and secret).

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
from pydantic import ConfigDict, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response

from arti.crypto import DecryptionError, TokenCipher
from arti.jwt_auth import Claims
from arti.providers import AccountIdentity, PkcePair, ProviderClient, ProviderError, SpotifyClient, TokenSet
from arti.tokens import store_tokens
from handlers.db import Conn, as_user, become_service, become_user, fetch_one, transaction
from handlers.errors import HandlerError
from handlers.inputs import Input, json_body
from handlers.provider_revoke import revoke_grant
from handlers.ratelimit import take as take_rate_limit
from handlers.redirects import with_query
from handlers.services import Services, authenticate, provider_name, services

log = logging.getLogger("handlers.oauth")

STATE_BYTES = 32
PKCE_SUPPORT = {"spotify": "supported", "youtube": "supported", "soundcloud": "required", "instagram": "none",
                "tiktok": "none"}
"""Where PKCE S256 is used: every provider that documents it (SoundCloud requires it). TikTok documents PKCE for its
mobile and desktop Login Kits only (with a hex challenge); Login Kit for Web takes none."""
COMPLETION_TTL_SECONDS = 600
"""How long the user who started a flow has to complete it after the callback parked its result."""
PROVIDERS_WITH_TARGET = frozenset({"spotify"})
"""Providers whose connected account is chosen at start (external_id), not the login identity."""

_SPOTIFY_ARTIST = re.compile(
    r"(?:spotify:artist:|https://open\.spotify\.com/(?:intl-[A-Za-z-]+/)?artist/)?(?P<id>[0-9A-Za-z]{1,64})"
    r"(?:\?[^#\s]*)?"
)
_PROVIDER_ERROR_CODE = re.compile(r"[a-z_]{1,40}")


# --------------------------------------------------------------------------------------------- inputs


class StartParams(Input):
    """Query of the start endpoint."""

    model_config = ConfigDict(extra="ignore")

    org_id: uuid.UUID
    artist_id: uuid.UUID
    redirect_to: str | None = Field(default=None, max_length=2048)
    redirect: bool = False
    external_id: str | None = Field(default=None, min_length=1, max_length=300)


class CallbackParams(Input):
    """Query of the callback (providers add parameters of their own, which are ignored)."""

    model_config = ConfigDict(extra="ignore")

    state: str | None = Field(default=None, max_length=512)
    code: str | None = Field(default=None, max_length=4096)
    error: str | None = Field(default=None, max_length=200)
    error_description: str | None = Field(default=None, max_length=2000)


class DisconnectBody(Input):
    """Body of the disconnect endpoint."""

    model_config = ConfigDict(extra="forbid")

    account_id: uuid.UUID


class CompleteBody(Input):
    """Body of the complete endpoint."""

    model_config = ConfigDict(extra="forbid")

    completion: str = Field(min_length=1, max_length=512, strict=True)


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
        await take_rate_limit(conn, "oauth_start", claims.sub, params.org_id)  # 429 before any state is written
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


async def save_connection(conn: Conn, svc: Services, claims: dict[str, Any], flow: dict[str, Any], provider: str,
                          identity: AccountIdentity, tokens: TokenSet) -> tuple[uuid.UUID, uuid.UUID | None]:
    """Upsert the account as the user (`claims`), then store tokens, reactivate and enqueue the backfill.

    Runs inside the caller's transaction; `flow` carries the flow's org_id and artist_id.
    """
    await become_user(conn, claims)
    account = await fetch_one(conn, UPSERT_SQL, {
        "org": flow["org_id"], "artist": flow["artist_id"], "provider": provider,
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
    run = await fetch_one(conn, "select private.enqueue_sync(%s, 'connect', %s) as run_id",
                          (account_id, claims["sub"]))
    return account_id, (run["run_id"] if run else None)


def _back_to_frontend(svc: Services, stored: str, **params: str) -> RedirectResponse:
    # Re-checked at redirect time: the allow-list may have shrunk since the flow started.
    target = svc.redirects.resolve(stored) or svc.redirects.default
    return RedirectResponse(with_query(target, **params), status_code=302)


def _parked_aad(pending_id: uuid.UUID | str) -> str:
    return f"oauth_pending:{pending_id}:tokens"


async def park_connection(svc: Services, state_id: uuid.UUID, identity: AccountIdentity, tokens: TokenSet) -> str:
    """Keep the callback's result for the user who started the flow; returns the one-time completion secret."""
    completion, pending_id = new_state(), uuid.uuid4()
    sealed = svc.cipher().encrypt(tokens.model_dump_json(), _parked_aad(pending_id))
    async with transaction(svc.pool, svc.db_timeout) as conn:
        await conn.execute(
            "insert into private.oauth_pending_connections (id, state_id, completion_hash, external_id, "
            "display_name, tokens_encrypted, expires_at) "
            "values (%s, %s, %s, %s, %s, %s, now() + make_interval(secs => %s))",
            (pending_id, state_id, state_hash(completion), identity.external_id, identity.display_name, sealed,
             COMPLETION_TTL_SECONDS),
        )
    return completion


async def oauth_callback(request: Request) -> Response:
    """Validate the state, exchange the code, park the result for completion (see the module docstring)."""
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
        completion = await park_connection(svc, row["id"], identity, tokens)
    except psycopg.errors.ForeignKeyViolation:  # the flow's user, organization or artist was deleted meanwhile
        return _back_to_frontend(svc, stored, status="error", provider=provider, reason="artist_not_found")
    return _back_to_frontend(svc, stored, status="pending", provider=provider, completion=completion)


# --------------------------------------------------------------------------------------------- complete


LOCK_PARKED_SQL = """
select p.id, p.external_id, p.display_name, p.tokens_encrypted, s.id as state_id, s.user_id, s.org_id, s.artist_id,
    coalesce((select coalesce(u.banned_until > now(), false) or u.deleted_at is not null
              from auth.users as u where u.id = s.user_id), true) as user_inactive
from private.oauth_pending_connections as p
inner join private.oauth_states as s on s.id = p.state_id
where p.completion_hash = %(hash)s
  and p.consumed_at is null
  and p.expires_at > now()
  and s.provider = %(provider)s
for update of p
"""
"""The parked connection, locked: a concurrent completion waits, then no longer finds it (consumed_at is set)."""

REFUSALS: dict[str, tuple[int, str]] = {
    "state_user_mismatch": (403, "this connection was started by another user, so it was not saved and its "
                                 "authorization was withdrawn; if you did not start it, someone tried to attach "
                                 "your account to their organization"),
    "user_inactive": (403, "this account is banned or deleted"),
    "forbidden": (403, "you need the accounts.connect permission (manager or above) in this organization; the "
                       "authorization was discarded: connect again once you have it"),
    "artist_not_found": (404, "the artist of this connection no longer exists; the authorization was discarded"),
    "unreadable": (400, "this connection can no longer be read (the key ring changed): connect again"),
}
"""How each refused completion is answered (the outcome recorded on the parked row is the error code)."""


@dataclass
class Completion:
    """What one completion decided, inside its transaction; acted upon after commit."""

    outcome: str
    account_id: uuid.UUID | None = None
    tokens: TokenSet | None = None
    revoke: bool = False


class _Forbidden(Exception):
    """The user no longer has accounts.connect in the flow's organization."""


async def _refuse_unusable(conn: Conn, digest: bytes, provider: str) -> HandlerError:
    """Why no parked connection could be locked: 400 unknown, used, expired or another provider's."""
    known = await fetch_one(
        conn,
        "select s.provider::text as provider, p.consumed_at is not null as used, p.expires_at <= now() as expired "
        "from private.oauth_pending_connections as p join private.oauth_states as s on s.id = p.state_id "
        "where p.completion_hash = %s",
        (digest,),
    )
    again = "connect the account again"
    if known is None:
        return HandlerError(400, "invalid_completion", f"unknown completion: {again}")
    if known["used"]:
        return HandlerError(400, "completion_used", f"this completion was already used: {again}")
    if known["expired"]:
        return HandlerError(400, "completion_expired", f"this completion has expired: {again}")
    return HandlerError(400, "provider_mismatch", f"this completion belongs to a {known['provider']} connection")


async def _complete_parked(conn: Conn, svc: Services, claims: Claims, provider: str,
                           parked: dict[str, Any]) -> Completion:
    """Decide and do the completion of a locked parked connection (see the module docstring)."""
    try:
        tokens = TokenSet.model_validate_json(svc.cipher().decrypt(parked["tokens_encrypted"],
                                                                   _parked_aad(parked["id"])))
    except (DecryptionError, ValueError):
        log.error("parked OAuth connection %s does not decrypt (key ring changed?)", parked["id"])
        return Completion("unreadable")
    if str(parked["user_id"]) != claims.sub:
        log.warning("OAuth flow %s (started by user %s) was presented for completion by user %s: refused, its "
                    "tokens destroyed", parked["state_id"], parked["user_id"], claims.sub)
        return Completion("state_user_mismatch", tokens=tokens)
    if parked["user_inactive"]:
        return Completion("user_inactive", tokens=tokens)
    identity = AccountIdentity(external_id=parked["external_id"], display_name=parked["display_name"])
    try:
        async with conn.transaction():  # a savepoint: a refusal undoes the connection, not the consumption
            await become_user(conn, claims.as_dict())
            allowed = await fetch_one(conn, "select (select private.has_permission(%s, 'accounts.connect')) as ok",
                                      (parked["org_id"],))
            if allowed is None or not allowed["ok"]:
                raise _Forbidden
            account_id, _run_id = await save_connection(conn, svc, claims.as_dict(), parked, provider, identity,
                                                        tokens)
    except (_Forbidden, psycopg.errors.InsufficientPrivilege):  # the check, or RLS on the upsert
        return Completion("forbidden", tokens=tokens)
    except psycopg.errors.ForeignKeyViolation:
        return Completion("artist_not_found", tokens=tokens)
    finally:
        await become_service(conn)
    return Completion("connected", account_id=account_id)


async def oauth_complete(request: Request) -> Response:
    """Connect a parked account for the user who started its flow (see the module docstring)."""
    svc = services(request)
    provider = provider_name(request)
    claims = await authenticate(request)
    body = CompleteBody.model_validate(await json_body(request, '{"completion": "..."}'))
    digest = state_hash(body.completion)
    svc.cipher()  # an unusable key ring answers 503 before anything is consumed

    async with transaction(svc.pool, svc.db_timeout) as conn:
        parked = await fetch_one(conn, LOCK_PARKED_SQL, {"hash": digest, "provider": provider})
        if parked is None:
            raise await _refuse_unusable(conn, digest, provider)
        done = await _complete_parked(conn, svc, claims, provider, parked)
        if done.tokens is not None:
            # Google's revocation ends the whole grant: spare it when the same provider account is connected
            # with tokens anywhere on the platform (the victim's own connection, typically).
            shared = await fetch_one(
                conn,
                "select exists (select 1 from public.connected_accounts as a join private.provider_tokens as t "
                "on t.account_id = a.id where a.provider = %s and a.external_id = %s) as used",
                (provider, parked["external_id"]))
            done.revoke = not (shared and shared["used"])
        # Consumed whatever the outcome: the tokens leave this row (single use).
        await conn.execute(
            "update private.oauth_pending_connections set consumed_at = now(), tokens_encrypted = null, "
            "outcome = %s where id = %s",
            (done.outcome, parked["id"]))

    if done.outcome == "connected":
        return JSONResponse({"status": "connected", "account_id": str(done.account_id), "provider": provider})
    if done.tokens is not None:
        if done.revoke:
            outcome = await revoke_grant(svc.provider_http, provider, done.tokens.access_token,
                                         done.tokens.refresh_token, **app_credentials(svc, provider))
            log.info("parked %s connection refused (%s); provider revocation: %s", provider, done.outcome, outcome)
        else:
            log.info("parked %s connection refused (%s); not revoked: the account is connected elsewhere",
                     provider, done.outcome)
    status, message = REFUSALS[done.outcome]
    raise HandlerError(status, done.outcome, message)


# --------------------------------------------------------------------------------------------- disconnect


async def oauth_disconnect(request: Request) -> Response:
    """Disconnect an account: tokens deleted, account revoked, grant revoked at the provider where possible."""
    svc = services(request)
    provider = provider_name(request)
    claims = await authenticate(request)
    body = await json_body(request, '{"account_id": "..."}')
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
        outcome = await revoke_grant(svc.provider_http, provider, access, refresh, **app_credentials(svc, provider))
    return JSONResponse({"account_id": str(account_id), "status": "revoked", "provider_revocation": outcome})


def app_credentials(svc: Services, provider: str) -> dict[str, str | None]:
    """The provider app's client id and secret, for a revocation the provider authenticates (TikTok)."""
    secret = getattr(svc.settings, f"{provider}_client_secret", None)
    getter = getattr(secret, "get_secret_value", None)
    return {"client_id": getattr(svc.settings, f"{provider}_client_id", None),
            "client_secret": str(getter()) if callable(getter) else secret}


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
