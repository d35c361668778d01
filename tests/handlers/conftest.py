"""Fixtures for the handler tests: committed worlds, the app on the test database, tokens, provider fakes.

The app runs on its own connection pool, so what it must see is committed: `world` builds the usual
two-organization world on an autocommit connection and deletes it (organizations cascade to artists,
accounts, tokens, sync runs and OAuth states; users cascade to memberships) after the test. Outbound HTTP
(providers, GoTrue) goes through an `httpx.AsyncClient` intercepted by respx; any unmocked request fails.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import psycopg
import pytest
import respx

from arti.crypto import TokenCipher, generate_key_setting
from arti.jwt_auth import mint_token
from handlers.app import create_app
from handlers.settings import HandlerSettings
from tests.edge_stack import EdgeStack
from tests.factories import World, build_world
from tests.harness import TestDB
from tests.unit.providers import payloads as p

KEY_SETTING = generate_key_setting("ktest")
FRONTEND = "https://app.arti.test"
RETURN_TO = f"{FRONTEND}/settings/accounts"
REDIRECT_BASE = "https://api.arti.test/functions/v1/oauth"
SUPABASE_URL = "https://project.supabase.test"
SERVICE_KEY = "service-role-key-for-tests"
TEST_JWT_SECRET = secrets.token_hex(32)
"""This test session's JWT secret (random: no test can pass by relying on a well-known one)."""

PROVIDER_CREDENTIALS = {
    f"{name}_{part}": f"{name}-{part}-value"
    for name in ("spotify", "youtube", "instagram", "soundcloud", "tiktok")
    for part in ("client_id", "client_secret")
}


def cipher() -> TokenCipher:
    return TokenCipher.from_setting(KEY_SETTING)


def make_settings(database_url: str, **overrides: Any) -> HandlerSettings:
    """Settings for an app on the test database; nothing read from the environment decides a test.

    Cloud mode (a database URL) with this session's own JWT secret: the public local secret is refused
    outside embedded mode, and no test depends on it."""
    values: dict[str, Any] = {
        "db_url": database_url,
        "jwt_secret": TEST_JWT_SECRET,
        "supabase_url": None,
        "service_role_key": None,
        "encryption_keys": KEY_SETTING,
        "frontend_urls": [FRONTEND, "http://localhost:3000"],
        "oauth_redirect_base": REDIRECT_BASE,
        "db_timeout": 3.0,
        "provider_gateway": None,
        **PROVIDER_CREDENTIALS,
        **overrides,
    }
    return HandlerSettings(_env_file=None, **values)  # type: ignore[call-arg]


@asynccontextmanager
async def running(settings: HandlerSettings, http: httpx.AsyncClient | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """A client talking to a started app (lifespan run, pool open) through ASGI."""
    app = create_app(settings, http=http)
    async with app.router.lifespan_context(app), httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://handlers.test"
    ) as client:
        yield client


def bearer(user_id: uuid.UUID | str, **claims: Any) -> dict[str, str]:
    """An Authorization header with a locally minted user token."""
    return {"Authorization": f"Bearer {mint_token(TEST_JWT_SECRET, str(user_id), **claims)}"}


def admin_bearer(user_id: uuid.UUID | str) -> dict[str, str]:
    return bearer(user_id, app_metadata={"provider": "email", "providers": ["email"], "platform_admin": True})


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query, keep_blank_values=True).items()}


def sha256(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


# --------------------------------------------------------------------------------------------- database


def delete_world(conn: psycopg.Connection[Any], world: World) -> None:
    orgs = [world.ids["org_a"], world.ids["org_b"]]
    conn.execute(
        "delete from procrastinate.procrastinate_jobs where queueing_lock in "
        "(select 'sync:' || a.id from public.connected_accounts a where a.org_id = any(%s))", (orgs,))
    conn.execute("delete from public.organizations where id = any(%s)", (orgs,))
    conn.execute("delete from auth.users where id = any(%s)", (list(world.users.values()),))


@pytest.fixture
def world(conn: psycopg.Connection[Any]) -> Iterator[World]:
    """The usual world (org A with every role, org B, an outsider, a platform admin), committed."""
    built = build_world(TestDB(conn))
    try:
        yield built
    finally:
        delete_world(conn, built)


def count(conn: psycopg.Connection[Any], sql: str, params: Any = None) -> int:
    row = conn.execute(sql, params).fetchone()
    assert row is not None
    return int(next(iter(row.values())))


def snapshot(conn: psycopg.Connection[Any], world: World) -> dict[str, int]:
    """Rows an OAuth flow writes, for 'nothing was written' assertions."""
    orgs = [world.ids["org_a"], world.ids["org_b"]]
    return {
        "accounts": count(conn, "select count(*) from public.connected_accounts where org_id = any(%s)", (orgs,)),
        "tokens": count(conn, "select count(*) from private.provider_tokens t join public.connected_accounts a "
                              "on a.id = t.account_id where a.org_id = any(%s)", (orgs,)),
        "runs": count(conn, "select count(*) from public.sync_runs where org_id = any(%s)", (orgs,)),
        "used_states": count(conn, "select count(*) from private.oauth_states where org_id = any(%s) "
                                   "and used_at is not null", (orgs,)),
    }


# --------------------------------------------------------------------------------------------- HTTP


@pytest.fixture
def provider_api() -> Iterator[respx.MockRouter]:
    """Every outbound request must match a declared route."""
    with respx.mock(assert_all_mocked=True, assert_all_called=False) as router:
        yield router


@pytest.fixture
def settings(database_url: str) -> HandlerSettings:
    return make_settings(database_url)


@pytest.fixture
async def client(settings: HandlerSettings, provider_api: respx.MockRouter) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as outbound, running(settings, outbound) as app_client:
        yield app_client


# --------------------------------------------------------------------------------------------- provider fakes


@dataclass
class ProviderFake:
    """One provider's documented answers for a connect flow."""

    name: str
    external_id: str
    display_name: str
    access_token: str
    refresh_token: str | None
    start_params: dict[str, str] = field(default_factory=dict)
    pkce: bool = True
    token_route: respx.Route | None = None

    def install(self, router: respx.MockRouter) -> None:
        if self.name == "spotify":
            self.token_route = router.post("https://accounts.spotify.com/api/token").respond(json=p.spotify_token())
            router.get(f"https://api.spotify.com/v1/artists/{p.SPOTIFY_ARTIST_ID}").respond(json=p.spotify_artist())
        elif self.name == "youtube":
            self.token_route = router.post("https://oauth2.googleapis.com/token").respond(json=p.google_token())
            router.get("https://www.googleapis.com/youtube/v3/channels").respond(json=p.yt_channels())
        elif self.name == "instagram":
            self.token_route = router.post("https://api.instagram.com/oauth/access_token").respond(
                json=p.ig_short_token())
            router.get("https://graph.instagram.com/access_token").respond(json=p.ig_long_token())
            router.get("https://graph.instagram.com/me").respond(json=p.ig_me())
        elif self.name == "tiktok":
            self.token_route = router.post("https://open.tiktokapis.com/v2/oauth/token/").respond(json=p.tt_token())
            router.get("https://open.tiktokapis.com/v2/user/info/").respond(json=p.tt_user())
        else:
            self.token_route = router.post("https://secure.soundcloud.com/oauth/token").respond(json=p.sc_token())
            router.get("https://api.soundcloud.com/me").respond(json=p.sc_me())

    def token_form(self) -> dict[str, str]:
        """The form our client posted to the token endpoint (the last call)."""
        assert self.token_route is not None and self.token_route.called
        request = self.token_route.calls.last.request
        return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


def fakes() -> dict[str, ProviderFake]:
    yt_title = p.yt_channels()["items"][0]["snippet"]["title"]
    return {
        "spotify": ProviderFake("spotify", p.SPOTIFY_ARTIST_ID, p.spotify_artist()["name"], "BQDspotify-access-1",
                                "AQDspotify-refresh-1", {"external_id": f"spotify:artist:{p.SPOTIFY_ARTIST_ID}"}),
        "youtube": ProviderFake("youtube", p.YT_CHANNEL_ID, yt_title, "ya29.google-access", "1//0google-refresh"),
        "instagram": ProviderFake("instagram", p.IG_USER_ID, "theexampleband", "IGAAlong-lived-1", None, pkce=False),
        "soundcloud": ProviderFake("soundcloud", p.SC_USER_ID, p.sc_me()["username"], "2-290000-123456789-access1",
                                   "sc-refresh-1"),
        "tiktok": ProviderFake("tiktok", p.TT_OPEN_ID, "lunavale", "act.tiktok-access-1", "rft.tiktok-refresh-1",
                               pkce=False),
    }


async def start_flow(client: httpx.AsyncClient, world: World, provider: str, *, user: str = "manager",
                     **params: str) -> str:
    """Start connecting `provider` for artist A as `user`; returns the state from the authorize URL."""
    query = {"org_id": str(world.ids["org_a"]), "artist_id": str(world.ids["artist_a"]), "redirect_to": RETURN_TO,
             **fakes()[provider].start_params, **params}
    response = await client.get(f"/functions/v1/oauth/{provider}/start", params=query,
                                headers=bearer(world.users[user]))
    assert response.status_code == 200, response.text
    return query_of(response.json()["authorize_url"])["state"]


# --------------------------------------------------------------------------------------------- the real edge


@pytest.fixture(scope="session")
def test_db_port(database_url: str) -> int:
    """The port of the tests' cluster (the stack's handlers run in embedded mode against it)."""
    port = urlsplit(database_url).port
    assert port is not None
    return port


EDGE_ENV = {
    "SUPABASE_JWT_SECRET": TEST_JWT_SECRET,
    "ARTI_ENCRYPTION_KEYS": KEY_SETTING,
    "ARTI_FRONTEND_URLS": f"{FRONTEND},http://localhost:3000",
    "ARTI_OAUTH_REDIRECT_BASE": REDIRECT_BASE,
}
"""What every edge stack is configured with unless a test says otherwise (same values as `make_settings`)."""


@pytest.fixture
def edge_factory(test_db_port: int) -> Iterator[Callable[..., EdgeStack]]:
    """Start real stacks (uvicorn + Caddy) with extra environment; all are stopped after the test."""
    stacks: list[EdgeStack] = []

    def start(**env: str) -> EdgeStack:
        stack = EdgeStack(test_db_port, **{**EDGE_ENV, **env})
        stacks.append(stack)
        return stack.start()

    try:
        yield start
    finally:
        for stack in stacks:
            stack.stop()


@pytest.fixture
def edge(edge_factory: Callable[..., EdgeStack]) -> EdgeStack:
    """The real edge in embedded mode (this session's JWT secret, loopback), against the tests' database."""
    return edge_factory()


async def callback(client: httpx.AsyncClient, provider: str, headers: dict[str, str] | None = None,
                   **params: str) -> httpx.Response:
    """The browser's return from the provider (no Authorization header unless given)."""
    return await client.get(f"/functions/v1/oauth/{provider}/callback", params=params, headers=headers)


async def complete(client: httpx.AsyncClient, provider: str, completion: str,
                   user_id: uuid.UUID | str | None) -> httpx.Response:
    """The frontend completing a parked connection with the user's JWT (none when user_id is None)."""
    return await client.post(f"/functions/v1/oauth/{provider}/complete", json={"completion": completion},
                             headers=bearer(user_id) if user_id is not None else None)


async def park(client: httpx.AsyncClient, provider: str, state: str, *, code: str = "c") -> str:
    """The header-less callback with the provider's code; returns the completion secret from the redirect."""
    response = await callback(client, provider, code=code, state=state)
    assert response.status_code == 302, response.text
    back = query_of(response.headers["location"])
    assert back["status"] == "pending" and back["provider"] == provider, back
    return back["completion"]


async def finish_flow(client: httpx.AsyncClient, world: World, provider: str, state: str, *, user: str = "manager",
                      code: str = "c") -> str:
    """Callback, then completion by `user` (who started the flow): returns the connected account's id."""
    completion = await park(client, provider, state, code=code)
    response = await complete(client, provider, completion, world.users[user])
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "connected"
    return str(response.json()["account_id"])


def parked(conn: psycopg.Connection[Any], world: World) -> int:
    """Parked connections of the world's organizations that still hold tokens."""
    return count(conn, "select count(*) from private.oauth_pending_connections p join private.oauth_states s "
                       "on s.id = p.state_id where s.org_id = any(%s) and p.tokens_encrypted is not null",
                 ([world.ids["org_a"], world.ids["org_b"]],))
