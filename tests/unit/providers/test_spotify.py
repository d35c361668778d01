"""Spotify client against documentation-shaped responses."""

from __future__ import annotations

import base64
from datetime import date, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx

from arti.providers import (
    NOT_PROVIDED,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
    SpotifyClient,
    TokenSet,
)
from tests.unit.providers import payloads as p
from tests.unit.providers.conftest import NOW, fixed_clock

TOKEN_URL = "https://accounts.spotify.com/api/token"
API = "https://api.spotify.com/v1"
ARTIST_URL = f"{API}/artists/{p.SPOTIFY_ARTIST_ID}"
ALBUMS_URL = f"{ARTIST_URL}/albums"
ACCESS = "BQDaccess-token-value"
START, END = date(2026, 4, 28), date(2026, 5, 3)


@pytest.fixture
def spotify(http: httpx.AsyncClient) -> SpotifyClient:
    return SpotifyClient("spotify-client-id", "spotify-client-secret", http, clock=fixed_clock)


def form(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


def by_metric(points: list) -> dict:
    return {pt.metric: pt for pt in points}


def test_authorize_url_carries_state_and_pkce_challenge(spotify: SpotifyClient) -> None:
    url = spotify.authorize_url("state-123", "https://app.example/cb", code_challenge="challenge-abc")
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://accounts.spotify.com/authorize"
    assert query["client_id"] == "spotify-client-id"
    assert query["response_type"] == "code"
    assert query["redirect_uri"] == "https://app.example/cb"
    assert query["state"] == "state-123"
    assert query["code_challenge"] == "challenge-abc"
    assert query["code_challenge_method"] == "S256"


def test_authorize_url_without_pkce_has_no_challenge(spotify: SpotifyClient) -> None:
    query = parse_qs(urlsplit(spotify.authorize_url("s", "https://app.example/cb")).query)
    assert "code_challenge" not in query and "code_challenge_method" not in query


async def test_exchange_code_sends_the_pkce_verifier_and_basic_auth(
    spotify: SpotifyClient, mock_api: respx.MockRouter
) -> None:
    route = mock_api.post(TOKEN_URL).respond(200, json=p.spotify_token())
    tokens = await spotify.exchange_code("auth-code", "https://app.example/cb", code_verifier="verifier-xyz")
    sent = route.calls.last.request
    assert form(sent) == {
        "grant_type": "authorization_code",
        "code": "auth-code",
        "redirect_uri": "https://app.example/cb",
        "code_verifier": "verifier-xyz",
        "client_id": "spotify-client-id",
    }
    expected_auth = base64.b64encode(b"spotify-client-id:spotify-client-secret").decode()
    assert sent.headers["Authorization"] == f"Basic {expected_auth}"
    assert tokens.access_token == "BQDspotify-access-1"
    assert tokens.refresh_token == "AQDspotify-refresh-1"
    assert tokens.expires_at == NOW + timedelta(seconds=3600)
    assert tokens.scope == "user-read-private"


async def test_refresh_keeps_the_old_refresh_token_when_none_is_returned(
    spotify: SpotifyClient, mock_api: respx.MockRouter
) -> None:
    route = mock_api.post(TOKEN_URL).respond(200, json=p.spotify_token(refresh_token=None))
    old = TokenSet(access_token="old-access", refresh_token="old-refresh")
    new = await spotify.refresh(old)
    assert form(route.calls.last.request) == {"grant_type": "refresh_token", "refresh_token": "old-refresh"}
    assert new.access_token == "BQDspotify-access-1"
    assert new.refresh_token == "old-refresh"


async def test_refresh_uses_a_rotated_refresh_token(spotify: SpotifyClient, mock_api: respx.MockRouter) -> None:
    mock_api.post(TOKEN_URL).respond(200, json=p.spotify_token(refresh_token="AQDnew"))
    new = await spotify.refresh(TokenSet(access_token="a", refresh_token="old-refresh"))
    assert new.refresh_token == "AQDnew"


async def test_refresh_with_revoked_token_is_an_auth_error(spotify: SpotifyClient, mock_api: respx.MockRouter) -> None:
    mock_api.post(TOKEN_URL).respond(400, json={"error": "invalid_grant", "error_description": "Refresh token revoked"})
    with pytest.raises(ProviderAuthError) as caught:
        await spotify.refresh(TokenSet(access_token="a", refresh_token="revoked-refresh-token"))
    assert caught.value.status == 400
    assert "Refresh token revoked" in str(caught.value)
    assert "revoked-refresh-token" not in str(caught.value)


async def test_identity_is_the_current_user(spotify: SpotifyClient, mock_api: respx.MockRouter) -> None:
    route = mock_api.get(f"{API}/me").respond(200, json=p.spotify_me())
    who = await spotify.identity(ACCESS)
    assert route.calls.last.request.headers["Authorization"] == f"Bearer {ACCESS}"
    assert who.external_id == "labelmgr"
    assert who.display_name == "Label Manager"
    assert who.extra["uri"] == "spotify:user:labelmgr"


async def test_artist_identity_is_the_connected_artist(spotify: SpotifyClient, mock_api: respx.MockRouter) -> None:
    mock_api.get(ARTIST_URL).respond(200, json=p.spotify_artist())
    who = await spotify.artist_identity(ACCESS, p.SPOTIFY_ARTIST_ID)
    assert who.external_id == p.SPOTIFY_ARTIST_ID
    assert who.display_name == "The Example Band"
    assert who.extra["genres"] == ["indie pop"]


async def test_metrics_followers_popularity_and_releases_on_the_end_day(
    spotify: SpotifyClient, mock_api: respx.MockRouter
) -> None:
    mock_api.get(ARTIST_URL).respond(200, json=p.spotify_artist())
    albums = mock_api.get(ALBUMS_URL).respond(
        200, json=p.spotify_albums_page(offset=0, count=10, total=23, next_url=f"{ALBUMS_URL}?offset=10&limit=10")
    )
    points = await spotify.fetch_metrics(ACCESS, p.SPOTIFY_ARTIST_ID, START, END)
    metrics = by_metric(points)
    assert len(points) == 3
    assert {pt.day for pt in points} == {END}
    assert metrics["followers"].value == 10245 and metrics["followers"].note is None
    assert metrics["popularity"].value == 57
    assert metrics["releases"].value == 23
    assert albums.call_count == 1  # the paging total is enough
    assert albums.calls.last.request.url.params["include_groups"] == "album,single"


async def test_development_mode_artist_without_followers_or_popularity_gives_none_not_zero(
    spotify: SpotifyClient, mock_api: respx.MockRouter
) -> None:
    mock_api.get(ARTIST_URL).respond(200, json=p.spotify_artist(dev_mode=True))
    mock_api.get(ALBUMS_URL).respond(200, json=p.spotify_albums_page(offset=0, count=2, total=2, next_url=None))
    metrics = by_metric(await spotify.fetch_metrics(ACCESS, p.SPOTIFY_ARTIST_ID, START, END))
    for name in ("followers", "popularity"):
        assert metrics[name].value is None
        assert metrics[name].note == NOT_PROVIDED
        assert metrics[name].day == END
    assert metrics["releases"].value == 2


async def test_followers_object_without_total_gives_none(spotify: SpotifyClient, mock_api: respx.MockRouter) -> None:
    artist = p.spotify_artist()
    artist["followers"] = {"href": None}
    mock_api.get(ARTIST_URL).respond(200, json=artist)
    mock_api.get(ALBUMS_URL).respond(200, json=p.spotify_albums_page(offset=0, count=0, total=0, next_url=None))
    metrics = by_metric(await spotify.fetch_metrics(ACCESS, p.SPOTIFY_ARTIST_ID, START, END))
    assert metrics["followers"].value is None and metrics["followers"].note == NOT_PROVIDED
    assert metrics["releases"].value == 0


async def test_releases_are_counted_page_by_page_when_total_disappears(
    spotify: SpotifyClient, mock_api: respx.MockRouter
) -> None:
    mock_api.get(ARTIST_URL).respond(200, json=p.spotify_artist())
    page2_url = f"{ALBUMS_URL}?offset=10&limit=10&include_groups=album,single"
    mock_api.get(ALBUMS_URL, params={"offset": "10"}).respond(
        200, json=p.spotify_albums_page(offset=10, count=4, total=None, next_url=None)
    )
    mock_api.get(ALBUMS_URL).respond(
        200, json=p.spotify_albums_page(offset=0, count=10, total=None, next_url=page2_url)
    )
    releases = by_metric(await spotify.fetch_metrics(ACCESS, p.SPOTIFY_ARTIST_ID, START, END))["releases"]
    assert releases.value == 14
    assert releases.raw["pages"] == 2


async def test_paging_link_to_another_host_is_refused(spotify: SpotifyClient, mock_api: respx.MockRouter) -> None:
    mock_api.get(ARTIST_URL).respond(200, json=p.spotify_artist())
    mock_api.get(ALBUMS_URL).respond(
        200, json=p.spotify_albums_page(offset=0, count=10, total=None, next_url="https://evil.example/steal")
    )
    with pytest.raises(ProviderError, match="another host"):
        await spotify.fetch_metrics(ACCESS, p.SPOTIFY_ARTIST_ID, START, END)


async def test_401_is_an_auth_error_without_the_token(spotify: SpotifyClient, mock_api: respx.MockRouter) -> None:
    mock_api.get(ARTIST_URL).respond(401, json=p.spotify_error(401, "The access token expired"))
    with pytest.raises(ProviderAuthError) as caught:
        await spotify.fetch_metrics(ACCESS, p.SPOTIFY_ARTIST_ID, START, END)
    assert caught.value.provider == "spotify"
    assert caught.value.status == 401
    assert caught.value.provider_message == "The access token expired"
    assert ACCESS not in str(caught.value)


@pytest.mark.parametrize(
    ("retry_after", "seconds"), [("7", 7.0), ("Mon, 04 May 2026 12:02:00 GMT", 120.0)], ids=["seconds", "http-date"]
)
async def test_429_is_rate_limited_for_the_retry_after_time(
    spotify: SpotifyClient, mock_api: respx.MockRouter, retry_after: str, seconds: float
) -> None:
    mock_api.get(ARTIST_URL).respond(
        429, headers={"Retry-After": retry_after}, json=p.spotify_error(429, "API rate limit exceeded")
    )
    with pytest.raises(ProviderRateLimited) as caught:
        await spotify.fetch_metrics(ACCESS, p.SPOTIFY_ARTIST_ID, START, END)
    assert caught.value.retry_after_seconds == seconds
    assert caught.value.status == 429
    assert caught.value.retryable is True


@pytest.mark.parametrize("status", [500, 502, 503])
async def test_5xx_is_unavailable(spotify: SpotifyClient, mock_api: respx.MockRouter, status: int) -> None:
    mock_api.get(ARTIST_URL).respond(status, text="<html>upstream error</html>")
    with pytest.raises(ProviderUnavailable) as caught:
        await spotify.fetch_metrics(ACCESS, p.SPOTIFY_ARTIST_ID, START, END)
    assert caught.value.status == status
    assert caught.value.retryable is True


async def test_network_error_is_unavailable(spotify: SpotifyClient, mock_api: respx.MockRouter) -> None:
    mock_api.get(ARTIST_URL).mock(side_effect=httpx.ConnectError("connection refused"))
    with pytest.raises(ProviderUnavailable, match="network error"):
        await spotify.fetch_metrics(ACCESS, p.SPOTIFY_ARTIST_ID, START, END)


async def test_other_4xx_is_a_plain_provider_error(spotify: SpotifyClient, mock_api: respx.MockRouter) -> None:
    mock_api.get(ARTIST_URL).respond(404, json=p.spotify_error(404, "Resource not found"))
    with pytest.raises(ProviderError) as caught:
        await spotify.fetch_metrics(ACCESS, p.SPOTIFY_ARTIST_ID, START, END)
    assert type(caught.value) is ProviderError
    assert caught.value.status == 404


async def test_invalid_artist_id_and_inverted_range_are_refused(spotify: SpotifyClient) -> None:
    with pytest.raises(ValueError, match="base-62"):
        await spotify.fetch_metrics(ACCESS, "../me", START, END)
    with pytest.raises(ValueError, match="after end"):
        await spotify.fetch_metrics(ACCESS, p.SPOTIFY_ARTIST_ID, END, START)
