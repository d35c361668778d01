"""The local provider sandbox (arti/sandbox.py): every real client completes OAuth and a sync against it over HTTP,
its answers have the documented shapes the unit tests use, it refuses what the providers refuse, and it is never
enabled outside embedded mode (one-line refusals at start, tested on the real entry points)."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from pydantic import SecretStr

from arti.errors import ArtiError
from arti.http import ORIGINAL_URL_HEADER, provider_http_client
from arti.platform import services
from arti.providers import PROVIDERS, PkcePair, ProviderAuthError, SpotifyClient, get_provider
from arti.providers.base import ProviderClient
from arti.sandbox import Sandbox, make_server
from arti.settings import PROJECT_ROOT, Settings
from tests.harness import child_env
from tests.unit.providers import payloads as p

REDIRECT = "http://localhost:18080/functions/v1/oauth/{}/callback"
PKCE = {"spotify": True, "youtube": True, "soundcloud": True, "instagram": False, "tiktok": False}
ARTIST = "1sandboxArtistForTests"


def sandbox_settings(port: int, **extra: Any) -> Settings:
    return Settings(_env_file=None, ARTI_PROVIDER_SANDBOX="1", ARTI_SANDBOX_PORT=str(port),  # type: ignore[call-arg]
                    **extra)


@pytest.fixture(scope="module")
def sandbox() -> Iterator[tuple[Settings, list[tuple[str, str, Any]]]]:
    """The sandbox on a free loopback port, and every JSON answer it gave (method, original URL, body)."""
    server = make_server(Sandbox(), 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    seen: list[tuple[str, str, Any]] = []
    try:
        yield sandbox_settings(server.server_address[1]), seen
    finally:
        server.shutdown()
        server.server_close()


def recording_http(settings: Settings, seen: list[tuple[str, str, Any]]) -> httpx.AsyncClient:
    http = provider_http_client(settings.provider_gateway)

    async def record(response: httpx.Response) -> None:
        await response.aread()
        try:
            body = response.json()
        except ValueError:
            body = None
        seen.append((response.request.method, response.request.headers[ORIGINAL_URL_HEADER], body))

    http.event_hooks["response"] = [record]
    return http


async def consent(settings: Settings, client: ProviderClient, account: str | None = None
                  ) -> tuple[str, str, PkcePair | None]:
    """What the browser does: open the authorize URL, come back to redirect_uri with a code."""
    pkce = PkcePair.new() if PKCE[client.name] else None
    redirect = REDIRECT.format(client.name)
    url = client.authorize_url("state-123", redirect, pkce.challenge if pkce else None)
    assert url.startswith(f"{settings.sandbox_url}/{client.name}/authorize?"), url
    if account:
        url += f"&account={account}"
    async with httpx.AsyncClient() as browser:
        answer = await browser.get(url)
    assert answer.status_code == 302, answer.text
    location = answer.headers["location"]
    assert location.startswith(redirect + "?")
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == ["state-123"]
    return query["code"][0], redirect, pkce


@pytest.mark.parametrize("provider", sorted(PROVIDERS))
async def test_each_real_client_connects_and_syncs_against_the_sandbox(
        sandbox: tuple[Settings, list[tuple[str, str, Any]]], provider: str) -> None:
    settings, seen = sandbox
    async with recording_http(settings, seen) as http:
        client = get_provider(provider, settings, http)
        code, redirect, pkce = await consent(settings, client)
        tokens = await client.exchange_code(code, redirect, pkce.verifier if pkce else None)
        assert tokens.access_token.startswith(f"sbx.{provider}.demo.access.")
        if isinstance(client, SpotifyClient):
            identity = await client.artist_identity(tokens.access_token, ARTIST)
            assert identity.external_id == ARTIST
            await client.identity(tokens.access_token)
        else:
            identity = await client.identity(tokens.access_token)
        end = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
        start, end = client.sync_window(end - dt.timedelta(days=27), end)
        kwargs: dict[str, Any] = {}
        if client.public_batch_size > 1:
            public = await client.fetch_public(tokens.access_token, [identity.external_id])
            kwargs["public"] = public[identity.external_id]
        points = await client.fetch_metrics(tokens.access_token, identity.external_id, start, end, **kwargs)
        provided = [pt for pt in points if pt.value is not None]
        assert provided, points
        if provider in ("youtube", "instagram"):  # daily history: a backfill fills every day of the window
            assert len({pt.day for pt in provided}) == (end - start).days + 1
        # The next day's tokens: a refresh (Instagram refreshes the access token itself).
        again = await client.refresh(tokens)
        assert again.access_token != tokens.access_token
        assert (await client.fetch_metrics(again.access_token, identity.external_id, end, end, **kwargs))


async def test_two_consents_with_another_account_connect_another_identity(
        sandbox: tuple[Settings, list[tuple[str, str, Any]]]) -> None:
    settings, seen = sandbox
    async with recording_http(settings, seen) as http:
        client = get_provider("youtube", settings, http)
        ids = set()
        for account in ("demo", "second-band"):
            code, redirect, pkce = await consent(settings, client, account)
            tokens = await client.exchange_code(code, redirect, pkce.verifier if pkce else None)
            ids.add((await client.identity(tokens.access_token)).external_id)
    assert len(ids) == 2


def shape(value: Any) -> Any:
    """The keys of every object, recursively (a list by its first element): what a client's parser relies on."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(value[0])] if value and isinstance(value[0], dict | list) else []
    return None


DOCUMENTED = {
    # Spotify's and Google's refresh answers carry no refresh token (the old one is kept), as documented.
    ("POST", "accounts.spotify.com/api/token"): [p.spotify_token(), p.spotify_token(refresh_token=None)],
    ("GET", "api.spotify.com/v1/me"): p.spotify_me(),
    ("GET", f"api.spotify.com/v1/artists/{ARTIST}"): p.spotify_artist(),
    ("GET", f"api.spotify.com/v1/artists/{ARTIST}/albums"): p.spotify_albums_page(offset=0, count=3, total=3,
                                                                                   next_url=None),
    ("POST", "oauth2.googleapis.com/token"): [p.google_token(), p.google_token(refresh_token=None)],
    ("GET", "www.googleapis.com/youtube/v3/channels"): p.yt_channels(),
    ("GET", "youtubeanalytics.googleapis.com/v2/reports"): p.yt_report([["2026-05-01", 1, 2, 3, 4]]),
    ("POST", "api.instagram.com/oauth/access_token"): p.ig_short_token(),
    ("GET", "graph.instagram.com/access_token"): p.ig_long_token(),
    ("GET", "graph.instagram.com/refresh_access_token"): p.ig_long_token(),
    ("GET", "graph.instagram.com/me"): p.ig_me(),
    ("POST", "secure.soundcloud.com/oauth/token"): p.sc_token(),
    ("GET", "api.soundcloud.com/me"): p.sc_me(),
    ("POST", "open.tiktokapis.com/v2/oauth/token/"): p.tt_token(),
    # TikTok answers the fields asked for (identity: the basic ones; a sync: the counts too).
    ("GET", "open.tiktokapis.com/v2/user/info/"): lambda query: p.tt_user(drop=tuple(
        k for k in p.tt_user()["data"]["user"] if k not in query["fields"][0].split(","))),
    ("POST", "open.tiktokapis.com/v2/video/list/"): p.tt_videos([p.tt_video("7430000000000000001", 100)]),
}


async def test_the_sandbox_answers_in_the_shapes_the_unit_tests_document(
        sandbox: tuple[Settings, list[tuple[str, str, Any]]]) -> None:
    _, seen = sandbox
    if not seen:  # run alone: drive every client once
        for provider in sorted(PROVIDERS):
            await test_each_real_client_connects_and_syncs_against_the_sandbox(sandbox, provider)
    compared = set()
    for method, url, body in seen:
        parts = urlsplit(url)
        key = (method, f"{parts.hostname}{parts.path}")
        if key in DOCUMENTED:
            documented = DOCUMENTED[key]
            if callable(documented):
                documented = documented(parse_qs(parts.query))
            assert shape(body) in [shape(d) for d in (documented if isinstance(documented, list) else [documented])], \
                key
            compared.add(key)
        elif parts.hostname == "graph.instagram.com" and parts.path.endswith("/insights"):
            entry = p.ig_total_value("views", 1) if "total_value" in parts.query else \
                p.ig_time_series("reach", [(1, "2026-05-02T07:00:00+0000")])
            assert shape(body) == shape(p.ig_insights(entry)), url
            compared.add((method, "graph.instagram.com/{id}/insights"))
        elif parts.hostname == "graph.instagram.com":
            assert set(body) == set(p.ig_profile()), url
        elif parts.hostname == "api.soundcloud.com" and parts.path.endswith("/tracks"):
            assert shape(body["collection"][0]) == shape(p.sc_track(1, 1)), url
            compared.add((method, "api.soundcloud.com/users/{id}/tracks"))
    assert set(DOCUMENTED) <= compared, set(DOCUMENTED) - compared


async def test_the_sandbox_refuses_what_the_providers_refuse(
        sandbox: tuple[Settings, list[tuple[str, str, Any]]]) -> None:
    settings, seen = sandbox
    async with httpx.AsyncClient() as browser, recording_http(settings, seen) as http:
        client = get_provider("soundcloud", settings, http)
        pkce = PkcePair.new()
        url = client.authorize_url("s", REDIRECT.format("soundcloud"), pkce.challenge)
        # Back to loopback only: the sandbox is no open redirect.
        away = url.replace("localhost%3A18080", "evil.example")
        assert (await browser.get(away)).status_code == 400
        # Another application's client id.
        assert (await browser.get(url.replace("sandbox-soundcloud-client", "real-app"))).status_code == 400
        # SoundCloud requires PKCE: the error goes back to the redirect_uri.
        plain = get_provider("tiktok", settings, http).authorize_url("s", REDIRECT.format("soundcloud"))
        plain = plain.replace("/tiktok/", "/soundcloud/").replace("client_key=sandbox-tiktok", "client_id=sandbox-"
                                                                                            "soundcloud")
        assert "error=invalid_request" in (await browser.get(plain)).headers["location"]

        code, redirect, _ = await consent(settings, client)
        with pytest.raises(ProviderAuthError, match="code_verifier"):  # the wrong verifier
            await client.exchange_code(code, redirect, PkcePair.new().verifier)
        code, redirect, pkce_pair = await consent(settings, client)
        with pytest.raises(ProviderAuthError, match="redirect_uri"):
            await client.exchange_code(code, "http://localhost:1/elsewhere", pkce_pair and pkce_pair.verifier)
        code, redirect, pkce_pair = await consent(settings, client)
        assert pkce_pair is not None
        await client.exchange_code(code, redirect, pkce_pair.verifier)
        with pytest.raises(ProviderAuthError, match="unknown, used or expired"):  # single use
            await client.exchange_code(code, redirect, pkce_pair.verifier)

        # A token it did not issue (a real account's) is an invalid token: re-auth, never invented numbers.
        for provider in sorted(PROVIDERS):
            real = get_provider(provider, settings, http)
            with pytest.raises(ProviderAuthError):
                await real.fetch_metrics("BQD-a-real-token", "12345678", dt.date(2026, 11, 1), dt.date(2026, 11, 2))
        # Real client credentials are never what the sandbox accepts.
        wrong = get_provider("youtube", {"youtube_client_id": "real-id", "youtube_client_secret": "real-secret"},
                             http)
        with pytest.raises(ArtiError, match="client credentials rejected"):
            await wrong.exchange_code("x", REDIRECT.format("youtube"))


async def test_the_landing_page_shows_the_completion_escaped(
        sandbox: tuple[Settings, list[tuple[str, str, Any]]]) -> None:
    settings, _ = sandbox
    async with httpx.AsyncClient() as browser:
        page = await browser.get(f"{settings.sandbox_url}/connected",
                                 params={"status": "pending", "provider": "youtube", "completion": "abc<script>"})
        index = await browser.get(settings.sandbox_url + "/")
    assert page.status_code == 200 and "abc&lt;script&gt;" in page.text and "<script>" not in page.text
    assert page.headers["referrer-policy"] == "no-referrer"
    assert "/functions/v1/oauth/youtube/complete" in page.text
    assert index.status_code == 200 and "Not a real provider" in index.text


def test_settings_point_providers_at_the_sandbox_in_embedded_mode_only() -> None:
    on = sandbox_settings(8090, SPOTIFY_CLIENT_ID="real-id", SPOTIFY_CLIENT_SECRET="real-secret",
                          ARTI_PROVIDER_GATEWAY="http://egress.example")
    assert on.sandbox_active and on.provider_gateway == "http://127.0.0.1:8090"
    assert on.provider_authorize_base == "http://127.0.0.1:8090"
    assert on.spotify_client_id == "sandbox-spotify-client"
    assert isinstance(on.spotify_client_secret, SecretStr)
    assert on.spotify_client_secret.get_secret_value() == "sandbox-spotify-secret"
    assert [s.name for s in services(on)] == ["sandbox", "handlers", "worker", "caddy"]
    on.check_edge_security()

    for mode in ({"SUPABASE_DB_URL": "postgresql://db.example/postgres", "SUPABASE_URL": "https://x.supabase.co"},
                 {"ARTI_MODE": "docker", "SUPABASE_URL": "https://x.supabase.co"}):
        off = sandbox_settings(8090, SPOTIFY_CLIENT_ID="real-id", **mode)
        assert not off.sandbox_active and off.provider_authorize_base is None and off.provider_gateway is None
        assert off.spotify_client_id == "real-id"
        assert "sandbox" not in [s.name for s in services(off)]
        with pytest.raises(ArtiError, match=r"ARTI_PROVIDER_SANDBOX=1 .* embedded mode only"):
            off.check_edge_security()

    exposed = sandbox_settings(8090, ARTI_HTTP_BIND="0.0.0.0", SUPABASE_JWT_SECRET="x" * 40)  # noqa: S104
    with pytest.raises(ArtiError, match="needs the API on loopback"):
        exposed.check_edge_security()

    default = Settings(_env_file=None)  # type: ignore[call-arg]
    assert not default.sandbox_active and default.provider_authorize_base is None
    client = get_provider("youtube", {"youtube_client_id": "i", "youtube_client_secret": "s"})
    assert client.authorize_url("s", "https://app.example/cb").startswith("https://accounts.google.com/")


def refused(command: list[str], data_dir: Path, **settings: str) -> subprocess.CompletedProcess[str]:
    env = child_env(ARTI_PROVIDER_SANDBOX="1", ARTI_DATA_DIR=str(data_dir), **settings)
    return subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=60)


CLOUD = {"SUPABASE_DB_URL": "postgresql://postgres:x@127.0.0.1:9/postgres", "SUPABASE_URL": "https://x.supabase.co"}


@pytest.mark.parametrize(("command", "settings"), [
    ([sys.executable, "-m", "arti.cli", "platform", "start"], CLOUD),
    ([sys.executable, "-m", "arti.cli", "platform", "start", "--demo"], {"ARTI_MODE": "docker", **CLOUD}),
    ([sys.executable, "-m", "arti.cli", "platform", "start"],
     {"ARTI_HTTP_BIND": "0.0.0.0", "SUPABASE_JWT_SECRET": "y" * 40}),  # noqa: S104
    ([sys.executable, "-m", "handlers", "--port", "9"], {"ARTI_MODE": "docker", **CLOUD}),
    ([sys.executable, "-m", "arti.sandbox", "--port", "0"], CLOUD),
], ids=["platform-cloud", "platform-docker", "platform-exposed", "handlers-docker", "sandbox-cloud"])
def test_the_sandbox_is_refused_at_start_outside_a_local_embedded_trial(tmp_path: Path, command: list[str],
                                                                        settings: dict[str, str]) -> None:
    result = refused(command, tmp_path, **settings)
    assert result.returncode != 0
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "ARTI_PROVIDER_SANDBOX=1" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    assert not list(tmp_path.glob("run/*.pid")) and not (tmp_path / "db").exists(), "nothing was started"


def test_the_sandbox_listens_on_loopback_only() -> None:
    server = make_server(Sandbox(), 0)
    try:
        assert server.server_address[0] == "127.0.0.1"
    finally:
        server.server_close()
    assert "0.0.0.0" not in Path(PROJECT_ROOT / "arti" / "sandbox.py").read_text()  # noqa: S104
