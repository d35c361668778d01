"""SoundCloud client (OAuth 2.1 + PKCE, single-use refresh tokens) against documentation-shaped responses."""

from __future__ import annotations

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
    SoundCloudClient,
    TokenSet,
)
from tests.unit.providers import payloads as p
from tests.unit.providers.conftest import NOW, fixed_clock

TOKEN_URL = "https://secure.soundcloud.com/oauth/token"
API = "https://api.soundcloud.com"
TRACKS_URL = f"{API}/users/{p.SC_USER_ID}/tracks"
ACCESS = "2-290000-123456789-accessvalue"
START, END = date(2026, 4, 28), date(2026, 5, 3)
PAGE2 = f"{TRACKS_URL}?linked_partitioning=true&page_size=2&cursor=2025-06-01T12%3A00%3A00.000Z%2Ctracks%2C00000000112"


@pytest.fixture
def soundcloud(http: httpx.AsyncClient) -> SoundCloudClient:
    return SoundCloudClient("sc-client-id", "sc-client-secret", http, clock=fixed_clock)


def form(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


def by_metric(points: list) -> dict:
    return {pt.metric: pt for pt in points}


def mock_tracks(mock_api: respx.MockRouter, page1: list[dict], page2: list[dict] | None) -> tuple[respx.Route, ...]:
    second = mock_api.get(TRACKS_URL, params={"cursor": "2025-06-01T12:00:00.000Z,tracks,00000000112"}).respond(
        200, json={"collection": page2 or []}
    )
    first = mock_api.get(TRACKS_URL).respond(
        200, json={"collection": page1, "next_href": PAGE2 if page2 is not None else None}
    )
    return first, second


def test_authorize_url_requires_and_carries_the_pkce_challenge(soundcloud: SoundCloudClient) -> None:
    url = soundcloud.authorize_url("st", "https://app.example/cb", code_challenge="chal-256")
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://secure.soundcloud.com/authorize"
    assert query["code_challenge"] == "chal-256"
    assert query["code_challenge_method"] == "S256"
    assert query["response_type"] == "code" and query["state"] == "st"
    with pytest.raises(ValueError, match="PKCE is required"):
        soundcloud.authorize_url("st", "https://app.example/cb")


async def test_exchange_code_sends_the_pkce_verifier(soundcloud: SoundCloudClient, mock_api: respx.MockRouter) -> None:
    route = mock_api.post(TOKEN_URL).respond(200, json=p.sc_token())
    tokens = await soundcloud.exchange_code("sc-code", "https://app.example/cb", code_verifier="verifier-sc")
    sent = form(route.calls.last.request)
    assert sent["code_verifier"] == "verifier-sc"
    assert sent["grant_type"] == "authorization_code"
    assert sent["code"] == "sc-code"
    assert tokens.access_token == "2-290000-123456789-access1"
    assert tokens.refresh_token == "sc-refresh-1"
    assert tokens.expires_at == NOW + timedelta(seconds=3599)
    assert tokens.scope is None  # SoundCloud sends "" for the default scope


async def test_exchange_code_without_verifier_is_refused(soundcloud: SoundCloudClient) -> None:
    with pytest.raises(ValueError, match="PKCE is required"):
        await soundcloud.exchange_code("sc-code", "https://app.example/cb")


async def test_refresh_replaces_the_single_use_refresh_token(
    soundcloud: SoundCloudClient, mock_api: respx.MockRouter
) -> None:
    route = mock_api.post(TOKEN_URL)
    route.side_effect = [
        httpx.Response(200, json=p.sc_token(access="access-2", refresh="sc-refresh-2")),
        httpx.Response(200, json=p.sc_token(access="access-3", refresh="sc-refresh-3")),
    ]
    first = TokenSet(access_token="access-1", refresh_token="sc-refresh-1")
    second = await soundcloud.refresh(first)
    third = await soundcloud.refresh(second)

    assert soundcloud.refresh_tokens_single_use is True
    assert [form(call.request)["refresh_token"] for call in route.calls] == ["sc-refresh-1", "sc-refresh-2"]
    assert form(route.calls[0].request)["grant_type"] == "refresh_token"
    assert (second.access_token, second.refresh_token) == ("access-2", "sc-refresh-2")
    assert (third.access_token, third.refresh_token) == ("access-3", "sc-refresh-3")


async def test_refresh_never_reuses_the_spent_refresh_token(
    soundcloud: SoundCloudClient, mock_api: respx.MockRouter
) -> None:
    mock_api.post(TOKEN_URL).respond(200, json=p.sc_token(access="access-2", refresh=None))
    new = await soundcloud.refresh(TokenSet(access_token="access-1", refresh_token="sc-refresh-1"))
    assert new.access_token == "access-2"
    assert new.refresh_token is None
    with pytest.raises(ValueError, match="no refresh token"):
        await soundcloud.refresh(new)


async def test_reusing_a_spent_refresh_token_is_an_auth_error(
    soundcloud: SoundCloudClient, mock_api: respx.MockRouter
) -> None:
    mock_api.post(TOKEN_URL).respond(400, json={"error": "invalid_grant", "error_description": "refresh token spent"})
    with pytest.raises(ProviderAuthError) as caught:
        await soundcloud.refresh(TokenSet(access_token="access-1", refresh_token="sc-refresh-1"))
    assert "sc-refresh-1" not in str(caught.value)
    assert "sc-client-secret" not in str(caught.value)


async def test_identity_uses_the_oauth_authorization_header(
    soundcloud: SoundCloudClient, mock_api: respx.MockRouter
) -> None:
    route = mock_api.get(f"{API}/me").respond(200, json=p.sc_me())
    who = await soundcloud.identity(ACCESS)
    assert route.calls.last.request.headers["Authorization"] == f"OAuth {ACCESS}"
    assert who.external_id == p.SC_USER_ID
    assert who.display_name == "theexampleband"
    assert who.extra["urn"] == f"soundcloud:users:{p.SC_USER_ID}"


async def test_metrics_follow_next_href_and_sum_playback_counts(
    soundcloud: SoundCloudClient, mock_api: respx.MockRouter
) -> None:
    mock_api.get(f"{API}/me").respond(200, json=p.sc_me())
    first, second = mock_tracks(mock_api, [p.sc_track(111, 1500), p.sc_track(112, 320)], [p.sc_track(113, 45)])
    points = await soundcloud.fetch_metrics(ACCESS, p.SC_USER_ID, START, END)
    metrics = by_metric(points)

    assert {pt.day for pt in points} == {END}  # current counts only: recorded on the end day
    assert metrics["followers"].value == 5432
    assert metrics["tracks"].value == 3
    plays = metrics["plays_total"]
    assert plays.value == 1865
    assert plays.note is None
    assert [(t["id"], t["playback_count"]) for t in plays.raw["tracks"]] == [(111, 1500), (112, 320), (113, 45)]
    assert plays.raw["pages"] == 2
    assert first.calls.last.request.url.params["linked_partitioning"] == "true"
    assert second.call_count == 1
    assert second.calls.last.request.headers["Authorization"] == f"OAuth {ACCESS}"


async def test_a_track_without_playback_count_is_not_counted_as_zero(
    soundcloud: SoundCloudClient, mock_api: respx.MockRouter
) -> None:
    mock_api.get(f"{API}/me").respond(200, json=p.sc_me(drop=("followers_count",)))
    mock_tracks(mock_api, [p.sc_track(111, 1500), p.sc_track(112, None, drop_count=True)], None)
    metrics = by_metric(await soundcloud.fetch_metrics(ACCESS, p.SC_USER_ID, START, END))
    assert metrics["plays_total"].value == 1500
    assert metrics["plays_total"].note == "partial: 1 of 2 tracks without playback_count"
    assert metrics["plays_total"].raw["tracks"][1]["playback_count"] is None
    assert metrics["followers"].value is None and metrics["followers"].note == NOT_PROVIDED


async def test_no_playback_count_at_all_gives_none(soundcloud: SoundCloudClient, mock_api: respx.MockRouter) -> None:
    mock_api.get(f"{API}/me").respond(200, json=p.sc_me())
    mock_tracks(mock_api, [p.sc_track(111, None), p.sc_track(112, None, drop_count=True)], None)
    plays = by_metric(await soundcloud.fetch_metrics(ACCESS, p.SC_USER_ID, START, END))["plays_total"]
    assert plays.value is None
    assert plays.note is not None and plays.note.startswith(NOT_PROVIDED)


async def test_token_of_another_user_is_an_auth_error(soundcloud: SoundCloudClient, mock_api: respx.MockRouter) -> None:
    mock_api.get(f"{API}/me").respond(200, json=p.sc_me())
    with pytest.raises(ProviderAuthError, match="not to the connected user"):
        await soundcloud.fetch_metrics(ACCESS, "999", START, END)


async def test_next_href_to_another_host_is_refused(soundcloud: SoundCloudClient, mock_api: respx.MockRouter) -> None:
    mock_api.get(f"{API}/me").respond(200, json=p.sc_me())
    mock_api.get(TRACKS_URL).respond(
        200, json={"collection": [p.sc_track(111, 1)], "next_href": "https://evil.example/tracks?cursor=x"}
    )
    with pytest.raises(ProviderError, match="another host"):
        await soundcloud.fetch_metrics(ACCESS, p.SC_USER_ID, START, END)


async def test_401_is_an_auth_error(soundcloud: SoundCloudClient, mock_api: respx.MockRouter) -> None:
    mock_api.get(f"{API}/me").respond(401, json=p.sc_error(401, "invalid_token", "401 - Unauthorized"))
    with pytest.raises(ProviderAuthError) as caught:
        await soundcloud.fetch_metrics(ACCESS, p.SC_USER_ID, START, END)
    assert caught.value.provider_message == "invalid_token"
    assert caught.value.status == 401
    assert ACCESS not in str(caught.value)


@pytest.mark.parametrize(
    ("retry_after", "seconds"), [("90", 90.0), ("Mon, 04 May 2026 12:30:00 GMT", 1800.0)], ids=["seconds", "http-date"]
)
async def test_429_is_rate_limited_for_the_retry_after_time(
    soundcloud: SoundCloudClient, mock_api: respx.MockRouter, retry_after: str, seconds: float
) -> None:
    mock_api.get(f"{API}/me").respond(
        429, headers={"Retry-After": retry_after}, json=p.sc_rate_limited("2026/05/05 00:00:00 +0000")
    )
    with pytest.raises(ProviderRateLimited) as caught:
        await soundcloud.fetch_metrics(ACCESS, p.SC_USER_ID, START, END)
    assert caught.value.retry_after_seconds == seconds


async def test_429_without_retry_after_waits_until_the_reset_time(
    soundcloud: SoundCloudClient, mock_api: respx.MockRouter
) -> None:
    mock_api.get(f"{API}/me").respond(429, json=p.sc_rate_limited("2026/05/04 14:00:00 +0000"))
    with pytest.raises(ProviderRateLimited) as caught:
        await soundcloud.fetch_metrics(ACCESS, p.SC_USER_ID, START, END)
    assert caught.value.retry_after_seconds == 2 * 3600
    assert "plays" in caught.value.provider_message


@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_is_unavailable(soundcloud: SoundCloudClient, mock_api: respx.MockRouter, status: int) -> None:
    mock_api.get(f"{API}/me").respond(200, json=p.sc_me())
    mock_api.get(TRACKS_URL).respond(status, text="Bad Gateway")
    with pytest.raises(ProviderUnavailable) as caught:
        await soundcloud.fetch_metrics(ACCESS, p.SC_USER_ID, START, END)
    assert caught.value.status == status


async def test_non_json_success_body_is_unavailable(soundcloud: SoundCloudClient, mock_api: respx.MockRouter) -> None:
    mock_api.get(f"{API}/me").respond(200, text="<html>maintenance</html>")
    with pytest.raises(ProviderUnavailable, match="not JSON"):
        await soundcloud.identity(ACCESS)


async def test_me_without_id_is_a_shape_error(soundcloud: SoundCloudClient, mock_api: respx.MockRouter) -> None:
    body = p.sc_me()
    del body["id"]
    mock_api.get(f"{API}/me").respond(200, json=body)
    with pytest.raises(ProviderError, match="unexpected SoundCloudUser response"):
        await soundcloud.identity(ACCESS)
