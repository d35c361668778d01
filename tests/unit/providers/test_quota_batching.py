"""Fewer calls where the API allows it, and the quota model each client declares (issue 18).

Against documentation-shaped answers: YouTube's channels.list by id (50 per call, 1 unit; an id with no channel is
absent), Spotify's GET /v1/artists?ids= (50 per call; `null` in the place of an unknown id), Meta's usage headers
and error 80002, YouTube's quotaExceeded.
"""

from __future__ import annotations

import json
from datetime import date

import httpx
import pytest
import respx

from arti.providers import (
    InstagramClient,
    ProviderRateLimited,
    SoundCloudClient,
    SpotifyClient,
    TikTokClient,
    YouTubeClient,
)
from arti.providers.base import ProviderAccountGone
from arti.quotas import QuotaSpec, all_specs
from tests.unit.providers import payloads as p
from tests.unit.providers.conftest import fixed_clock

CHANNELS_URL = "https://www.googleapis.com/youtube/v3/channels"
REPORTS_URL = "https://youtubeanalytics.googleapis.com/v2/reports"
ARTISTS_URL = "https://api.spotify.com/v1/artists"
GRAPH = "https://graph.instagram.com"
START, END = date(2026, 4, 28), date(2026, 5, 1)


@pytest.fixture
def youtube(http: httpx.AsyncClient) -> YouTubeClient:
    return YouTubeClient("yt-client", "yt-secret", http, clock=fixed_clock)


@pytest.fixture
def spotify(http: httpx.AsyncClient) -> SpotifyClient:
    return SpotifyClient("sp-client", "sp-secret", http, clock=fixed_clock)


def channel_ids(n: int) -> list[str]:
    return [f"UCbatch{i:017d}" for i in range(n)]


def artist_ids(n: int) -> list[str]:
    return [f"0batch{i:016d}" for i in range(n)]


# --------------------------------------------------------------------------------------------- YouTube


async def test_youtube_public_statistics_come_50_channels_per_call(youtube: YouTubeClient,
                                                                   mock_api: respx.MockRouter) -> None:
    ids = channel_ids(120)

    def answer(request: httpx.Request) -> httpx.Response:
        asked = request.url.params["id"].split(",")
        return httpx.Response(200, json=p.yt_channels_by_id(asked))

    route = mock_api.get(CHANNELS_URL).mock(side_effect=answer)
    found = await youtube.fetch_public("ya29.any-token-of-the-project", ids)

    assert route.call_count == 3  # 50 + 50 + 20 ids: 3 units instead of 120
    sizes = [len(call.request.url.params["id"].split(",")) for call in route.calls]
    assert sizes == [50, 50, 20]
    for call in route.calls:
        assert "mine" not in call.request.url.params  # public data: no owner needed
        assert call.request.url.params["part"] == "snippet,statistics"
    assert set(found) == set(ids) and all(found[i]["id"] == i for i in ids)


async def test_youtube_a_mixed_batch_where_some_channels_are_gone(youtube: YouTubeClient,
                                                                  mock_api: respx.MockRouter) -> None:
    ids = channel_ids(50)
    gone = (ids[3], ids[17], ids[49])
    mock_api.get(CHANNELS_URL).respond(200, json=p.yt_channels_by_id(ids, gone=gone))
    reports = mock_api.get(REPORTS_URL).respond(200, json=p.yt_report([["2026-04-28", 10, 20, 1, 0]]))

    found = await youtube.fetch_public("ya29.token", ids)
    assert [i for i in ids if found[i] is None] == list(gone)

    # The channels still there sync from the batch's answer: one report call each, no channels call of their own.
    points = await youtube.fetch_metrics("ya29.owner-token", ids[0], START, END, public=found[ids[0]])
    assert {pt.metric for pt in points} >= {"subscribers", "views_total", "videos", "views"}
    assert reports.call_count == 1
    # A gone channel fails its own sync, clearly, and costs nothing more.
    with pytest.raises(ProviderAccountGone, match="no channel"):
        await youtube.fetch_metrics("ya29.owner-token", ids[3], START, END, public=found[ids[3]])
    assert reports.call_count == 1


async def test_youtube_quota_exceeded_names_the_daily_data_api_scope(youtube: YouTubeClient,
                                                                     mock_api: respx.MockRouter) -> None:
    mock_api.get(CHANNELS_URL).respond(403, json=p.yt_quota_exceeded())
    with pytest.raises(ProviderRateLimited) as caught:
        await youtube.fetch_public("ya29.token", channel_ids(2))
    assert caught.value.scope == "data_api_daily" and caught.value.applies_to == "app"
    assert caught.value.retry_after_seconds == 19 * 3600  # until midnight Pacific (NOW is 05:00 PDT)


# --------------------------------------------------------------------------------------------- Spotify


async def test_spotify_artists_come_50_per_call_with_null_for_unknown_ids(spotify: SpotifyClient,
                                                                           mock_api: respx.MockRouter) -> None:
    ids = artist_ids(60)
    gone = (ids[0], ids[55])

    def answer(request: httpx.Request) -> httpx.Response:
        asked = request.url.params["ids"].split(",")
        return httpx.Response(200, json=p.spotify_several_artists(asked, gone=gone))

    route = mock_api.get(ARTISTS_URL).mock(side_effect=answer)
    found = await spotify.fetch_public("BQDtoken", ids)
    assert [len(c.request.url.params["ids"].split(",")) for c in route.calls] == [50, 10]
    assert [i for i in ids if found[i] is None] == list(gone)
    assert found[ids[1]]["id"] == ids[1]

    albums = mock_api.get(f"{ARTISTS_URL}/{ids[1]}/albums").respond(
        200, json=p.spotify_albums_page(offset=0, count=3, total=3, next_url=None))
    points = {pt.metric: pt.value for pt in await spotify.fetch_metrics("BQDtoken", ids[1], START, END,
                                                                           public=found[ids[1]])}
    assert points == {"followers": 1001, "popularity": 57, "releases": 3}
    assert albums.call_count == 1
    with pytest.raises(ProviderAccountGone):
        await spotify.fetch_metrics("BQDtoken", ids[0], START, END, public=found[ids[0]])


async def test_spotify_one_artist_uses_the_single_artist_endpoint(spotify: SpotifyClient,
                                                                  mock_api: respx.MockRouter) -> None:
    single = mock_api.get(f"{ARTISTS_URL}/{p.SPOTIFY_ARTIST_ID}").respond(200, json=p.spotify_artist())
    found = await spotify.fetch_public("BQDtoken", [p.SPOTIFY_ARTIST_ID])
    assert single.call_count == 1 and found[p.SPOTIFY_ARTIST_ID]["followers"]["total"] == 10245


async def test_spotify_development_mode_without_several_artists_falls_back(spotify: SpotifyClient,
                                                                           mock_api: respx.MockRouter) -> None:
    """Development Mode apps lost GET /v1/artists?ids= in the February 2026 migration: 403, then one call each."""
    ids = artist_ids(3)
    mock_api.get(ARTISTS_URL).respond(403, json=p.spotify_error(403, "Forbidden"))
    singles = [mock_api.get(f"{ARTISTS_URL}/{i}").respond(200, json=p.spotify_artist_with_id(i)) for i in ids]
    found = await spotify.fetch_public("BQDtoken", ids)
    assert all(r.call_count == 1 for r in singles) and all(found[i]["id"] == i for i in ids)


async def test_spotify_429_carries_retry_after(spotify: SpotifyClient, mock_api: respx.MockRouter) -> None:
    mock_api.get(ARTISTS_URL).respond(429, headers={"Retry-After": "7"},
                                      json=p.spotify_error(429, "API rate limit exceeded"))
    with pytest.raises(ProviderRateLimited) as caught:
        await spotify.fetch_public("BQDtoken", artist_ids(2))
    assert caught.value.retry_after_seconds == 7.0 and caught.value.applies_to == "app"


# --------------------------------------------------------------------------------------------- Instagram


def test_instagram_usage_headers_are_read(http: httpx.AsyncClient) -> None:
    client = InstagramClient("ig-client", "ig-secret", http, clock=fixed_clock)
    quiet = httpx.Response(200, headers={
        "X-App-Usage": json.dumps({"call_count": 28, "total_time": 25, "total_cputime": 25}),
        "X-Business-Use-Case-Usage": json.dumps({p.IG_USER_ID: [{
            "type": "instagram", "call_count": 12, "total_cputime": 3, "total_time": 4,
            "estimated_time_to_regain_access": 0}]}),
    })
    report = client.usage_report(quiet)
    assert report is not None and report.app == {"call_count": 28, "total_time": 25, "total_cputime": 25}
    assert report.app_blocked_seconds is None and report.account_blocked_seconds is None
    throttled = httpx.Response(400, headers={"X-Business-Use-Case-Usage": json.dumps({p.IG_USER_ID: [{
        "type": "instagram", "call_count": 100, "total_cputime": 40, "total_time": 40,
        "estimated_time_to_regain_access": 17}]})})
    assert client.usage_report(throttled).account_blocked_seconds == 17 * 60
    assert client.usage_report(httpx.Response(200)) is None


async def test_instagram_80002_is_this_accounts_limit_for_the_time_meta_gives(mock_api: respx.MockRouter,
                                                                            http: httpx.AsyncClient) -> None:
    client = InstagramClient("ig-client", "ig-secret", http, clock=fixed_clock)
    mock_api.get(f"{GRAPH}/{p.IG_USER_ID}").respond(
        400, json=p.graph_error(80002, "There have been too many calls to this Instagram account."),
        headers={"X-Business-Use-Case-Usage": json.dumps({p.IG_USER_ID: [{
            "type": "instagram", "call_count": 100, "total_cputime": 10, "total_time": 10,
            "estimated_time_to_regain_access": 9}]})})
    with pytest.raises(ProviderRateLimited) as caught:
        await client.fetch_metrics("IGAAtoken", p.IG_USER_ID, START, END)
    assert caught.value.applies_to == "account" and caught.value.retry_after_seconds == 9 * 60


# --------------------------------------------------------------------------------------------- the specs


def test_every_provider_declares_its_quota_model_with_sources() -> None:
    specs = all_specs()
    assert {"spotify", "youtube", "instagram", "soundcloud"} <= set(specs)
    for spec in specs.values():
        assert isinstance(spec, QuotaSpec) and spec.scopes and spec.endpoints
        for scope in spec.scopes:
            assert scope.source.startswith("https://") and scope.note
        for endpoint in spec.endpoints:
            assert endpoint.source.startswith("https://")


def test_the_documented_minimum_of_calls_per_account() -> None:
    specs = all_specs()
    # YouTube: 1 report per channel + 1 channels.list per 50; Spotify: albums per artist + 1 per 50 artists.
    assert specs["youtube"].minimum_calls_per_account(2706) == pytest.approx(1 + 55 / 2706)
    assert specs["spotify"].minimum_calls_per_account(100) == pytest.approx(1 + 2 / 100)
    assert specs["instagram"].minimum_calls_per_account(10) == 5  # profile, reach, 3 days of total values
    assert specs["soundcloud"].minimum_calls_per_account(10) == 2  # /me and one page of tracks
    assert specs["tiktok"].minimum_calls_per_account(10) == 4  # user info and 3 pages of 20 recent videos
    # The Data API units a day of YouTube syncs costs: one per 50 channels (was one per channel).
    youtube = specs["youtube"]
    assert youtube.per_account("data_api_daily") == 0 and youtube.per_batch("data_api_daily") == 1


@pytest.mark.parametrize(("client", "method", "url", "endpoint"), [
    (YouTubeClient, "GET", "https://www.googleapis.com/youtube/v3/channels?part=statistics&id=a,b", "channels.list"),
    (YouTubeClient, "GET", "https://youtubeanalytics.googleapis.com/v2/reports?ids=channel==UCx", "reports.query"),
    (YouTubeClient, "POST", "https://oauth2.googleapis.com/token", None),
    (SpotifyClient, "GET", "https://api.spotify.com/v1/artists?ids=a,b", "artists.several"),
    (SpotifyClient, "GET", "https://api.spotify.com/v1/artists/abc/albums?limit=10", "artists.albums"),
    (SpotifyClient, "GET", "https://api.spotify.com/v1/artists/abc", "artists.get"),
    (SpotifyClient, "POST", "https://accounts.spotify.com/api/token", None),
    (InstagramClient, "GET", f"{GRAPH}/{p.IG_USER_ID}/insights?metric=reach", "insights"),
    (InstagramClient, "GET", f"{GRAPH}/v23.0/{p.IG_USER_ID}?fields=followers_count", "profile"),
    (InstagramClient, "GET", f"{GRAPH}/refresh_access_token?grant_type=ig_refresh_token", None),
    (SoundCloudClient, "GET", "https://api.soundcloud.com/me", "me"),
    (SoundCloudClient, "GET", "https://api.soundcloud.com/users/123/tracks?linked_partitioning=true", "user_tracks"),
    (TikTokClient, "GET", "https://open.tiktokapis.com/v2/user/info/?fields=open_id,follower_count", "user.info"),
    (TikTokClient, "POST", "https://open.tiktokapis.com/v2/video/list/?fields=id,view_count", "video.list"),
    (TikTokClient, "POST", "https://open.tiktokapis.com/v2/oauth/token/", None),
    (TikTokClient, "POST", "https://open.tiktokapis.com/v2/video/query/?fields=id", None),
])
def test_every_call_is_recognised_by_its_providers_quota_model(client: type, method: str, url: str,
                                                                endpoint: str | None) -> None:
    found = client.quota.endpoint_for(method, url)
    assert (found.name if found else None) == endpoint
