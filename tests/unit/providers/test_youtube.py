"""YouTube client (Google OAuth, Data API v3, Analytics API v2) against documentation-shaped responses."""

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
    TokenSet,
    YouTubeClient,
)
from arti.providers.youtube import SUBSCRIBERS_ROUNDED_NOTE, seconds_until_quota_reset
from tests.unit.providers import payloads as p
from tests.unit.providers.conftest import NOW, fixed_clock

TOKEN_URL = "https://oauth2.googleapis.com/token"
CHANNELS_URL = "https://www.googleapis.com/youtube/v3/channels"
REPORTS_URL = "https://youtubeanalytics.googleapis.com/v2/reports"
ACCESS = "ya29.access-token-value"
START, END = date(2026, 4, 28), date(2026, 5, 1)
ROWS = [
    ["2026-04-28", 1520, 4210, 12, 3],
    ["2026-04-29", 1730, 4870, 9, 1],
    ["2026-04-30", 1610, 4400, 15, 2],
]


@pytest.fixture
def youtube(http: httpx.AsyncClient) -> YouTubeClient:
    return YouTubeClient("yt-client-id.apps.googleusercontent.com", "yt-client-secret", http, clock=fixed_clock)


def form(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


def points_by(points: list) -> dict:
    return {(pt.metric, pt.day): pt for pt in points}


def test_authorize_url_asks_for_offline_access_with_pkce(youtube: YouTubeClient) -> None:
    url = youtube.authorize_url("st", "https://app.example/cb", code_challenge="chal")
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://accounts.google.com/o/oauth2/v2/auth"
    assert query["access_type"] == "offline"
    assert query["response_type"] == "code"
    assert query["code_challenge"] == "chal" and query["code_challenge_method"] == "S256"
    assert "https://www.googleapis.com/auth/yt-analytics.readonly" in query["scope"].split()
    assert query["state"] == "st"


async def test_exchange_code_sends_the_pkce_verifier(youtube: YouTubeClient, mock_api: respx.MockRouter) -> None:
    route = mock_api.post(TOKEN_URL).respond(200, json=p.google_token())
    tokens = await youtube.exchange_code("4/0Acode", "https://app.example/cb", code_verifier="verifier-123")
    sent = form(route.calls.last.request)
    assert sent["code_verifier"] == "verifier-123"
    assert sent["grant_type"] == "authorization_code"
    assert sent["code"] == "4/0Acode"
    assert sent["client_id"] == "yt-client-id.apps.googleusercontent.com"
    assert tokens.refresh_token == "1//0google-refresh"
    assert tokens.expires_at == NOW + timedelta(seconds=3599)


async def test_refresh_keeps_the_refresh_token_google_does_not_resend(
    youtube: YouTubeClient, mock_api: respx.MockRouter
) -> None:
    route = mock_api.post(TOKEN_URL).respond(200, json=p.google_token(refresh_token=None))
    new = await youtube.refresh(TokenSet(access_token="old", refresh_token="1//0keep"))
    assert form(route.calls.last.request)["refresh_token"] == "1//0keep"
    assert new.access_token == "ya29.google-access"
    assert new.refresh_token == "1//0keep"


async def test_refresh_invalid_grant_is_an_auth_error(youtube: YouTubeClient, mock_api: respx.MockRouter) -> None:
    mock_api.post(TOKEN_URL).respond(
        400, json={"error": "invalid_grant", "error_description": "Token has been expired or revoked."}
    )
    with pytest.raises(ProviderAuthError, match="expired or revoked"):
        await youtube.refresh(TokenSet(access_token="old", refresh_token="1//0dead"))


async def test_invalid_client_is_not_blamed_on_the_account(youtube: YouTubeClient, mock_api: respx.MockRouter) -> None:
    mock_api.post(TOKEN_URL).respond(401, json={"error": "invalid_client", "error_description": "Unauthorized"})
    with pytest.raises(ProviderError) as caught:
        await youtube.refresh(TokenSet(access_token="old", refresh_token="1//0keep"))
    assert not isinstance(caught.value, ProviderAuthError)
    assert "client credentials rejected" in str(caught.value)
    assert "yt-client-secret" not in str(caught.value)


async def test_identity_is_the_users_channel(youtube: YouTubeClient, mock_api: respx.MockRouter) -> None:
    route = mock_api.get(CHANNELS_URL).respond(200, json=p.yt_channels())
    who = await youtube.identity(ACCESS)
    params = route.calls.last.request.url.params
    assert params["mine"] == "true" and params["part"] == "snippet,statistics"
    assert who.external_id == p.YT_CHANNEL_ID
    assert who.display_name == "The Example Band"
    assert who.extra == {"custom_url": "@theexampleband"}


async def test_account_without_channel_is_an_error(youtube: YouTubeClient, mock_api: respx.MockRouter) -> None:
    mock_api.get(CHANNELS_URL).respond(200, json={"kind": "youtube#channelListResponse", "pageInfo": {}})
    with pytest.raises(ProviderError, match="no YouTube channel"):
        await youtube.identity(ACCESS)


async def test_metrics_parse_string_counts_and_daily_report_rows(
    youtube: YouTubeClient, mock_api: respx.MockRouter
) -> None:
    mock_api.get(CHANNELS_URL).respond(200, json=p.yt_channels())
    report = mock_api.get(REPORTS_URL).respond(200, json=p.yt_report(ROWS))
    points = points_by(await youtube.fetch_metrics(ACCESS, p.YT_CHANNEL_ID, START, END))

    subscribers = points[("subscribers", END)]
    assert subscribers.value == 12300 and isinstance(subscribers.value, int)
    assert subscribers.note == SUBSCRIBERS_ROUNDED_NOTE
    assert points[("views_total", END)].value == 1843021
    assert points[("videos", END)].value == 87

    assert points[("views", date(2026, 4, 28))].value == 1520
    assert points[("watch_minutes", date(2026, 4, 29))].value == 4870
    assert points[("subscribers_gained", date(2026, 4, 30))].value == 15
    assert points[("subscribers_lost", date(2026, 4, 30))].value == 2
    # 2026-05-01 is not reported yet (48-72 h lag): absent, not None and not 0.
    assert not any(metric in {"views", "watch_minutes"} and day == END for metric, day in points)

    params = report.calls.last.request.url.params
    assert params["ids"] == f"channel=={p.YT_CHANNEL_ID}"  # the owner's token, for this channel
    assert params["dimensions"] == "day"
    assert params["startDate"] == "2026-04-28" and params["endDate"] == "2026-05-01"
    assert params["metrics"] == "views,estimatedMinutesWatched,subscribersGained,subscribersLost"


async def test_hidden_subscriber_count_is_none(youtube: YouTubeClient, mock_api: respx.MockRouter) -> None:
    mock_api.get(CHANNELS_URL).respond(200, json=p.yt_channels(hidden=True))
    mock_api.get(REPORTS_URL).respond(200, json=p.yt_report(None))
    points = points_by(await youtube.fetch_metrics(ACCESS, p.YT_CHANNEL_ID, START, END))
    subscribers = points[("subscribers", END)]
    assert subscribers.value is None
    assert subscribers.note is not None and subscribers.note.startswith(NOT_PROVIDED)
    assert points[("views_total", END)].value == 1843021


async def test_a_statistics_field_disappearing_gives_none(youtube: YouTubeClient, mock_api: respx.MockRouter) -> None:
    mock_api.get(CHANNELS_URL).respond(200, json=p.yt_channels(drop=("videoCount", "viewCount")))
    mock_api.get(REPORTS_URL).respond(200, json=p.yt_report(None))
    points = points_by(await youtube.fetch_metrics(ACCESS, p.YT_CHANNEL_ID, START, END))
    for metric in ("videos", "views_total"):
        assert points[(metric, END)].value is None
        assert points[(metric, END)].note == NOT_PROVIDED
    assert points[("subscribers", END)].value == 12300


async def test_a_report_column_disappearing_gives_none_for_each_day(
    youtube: YouTubeClient, mock_api: respx.MockRouter
) -> None:
    columns = ("day", "views", "estimatedMinutesWatched", "subscribersGained")
    mock_api.get(CHANNELS_URL).respond(200, json=p.yt_channels())
    mock_api.get(REPORTS_URL).respond(200, json=p.yt_report([row[:4] for row in ROWS], columns))
    points = points_by(await youtube.fetch_metrics(ACCESS, p.YT_CHANNEL_ID, START, END))
    for row in ROWS:
        day = date.fromisoformat(row[0])
        assert points[("subscribers_lost", day)].value is None
        assert points[("subscribers_lost", day)].note == NOT_PROVIDED
        assert points[("views", day)].value == row[1]


async def test_report_without_rows_gives_only_the_snapshot(youtube: YouTubeClient, mock_api: respx.MockRouter) -> None:
    mock_api.get(CHANNELS_URL).respond(200, json=p.yt_channels())
    mock_api.get(REPORTS_URL).respond(200, json=p.yt_report(None))
    points = await youtube.fetch_metrics(ACCESS, p.YT_CHANNEL_ID, START, END)
    assert {pt.metric for pt in points} == {"subscribers", "views_total", "videos"}


async def test_token_of_another_channel_is_an_auth_error(youtube: YouTubeClient, mock_api: respx.MockRouter) -> None:
    """The report is asked for the connected channel: YouTube refuses a token whose user does not own it."""
    mock_api.get(CHANNELS_URL).respond(200, json=p.yt_channels_by_id(["UCsomeoneElse"]))
    mock_api.get(REPORTS_URL).respond(403, json=p.google_error(403, "Forbidden", "forbidden"))
    with pytest.raises(ProviderAuthError, match="does not own channel UCsomeoneElse"):
        await youtube.fetch_metrics(ACCESS, "UCsomeoneElse", START, END)


def test_sync_window_refetches_the_trailing_three_days(youtube: YouTubeClient) -> None:
    assert youtube.reporting_lag_days == 3
    assert youtube.sync_window(date(2026, 5, 4), date(2026, 5, 4)) == (date(2026, 5, 1), date(2026, 5, 4))
    assert youtube.sync_window(date(2026, 4, 1), date(2026, 5, 4)) == (date(2026, 4, 1), date(2026, 5, 4))


async def test_401_is_an_auth_error(youtube: YouTubeClient, mock_api: respx.MockRouter) -> None:
    mock_api.get(CHANNELS_URL).respond(
        401,
        json=p.google_error(
            401, "Request had invalid authentication credentials.", "authError", status="UNAUTHENTICATED"
        ),
    )
    with pytest.raises(ProviderAuthError) as caught:
        await youtube.fetch_metrics(ACCESS, p.YT_CHANNEL_ID, START, END)
    assert caught.value.status == 401
    assert caught.value.provider_message == "Request had invalid authentication credentials."
    assert ACCESS not in str(caught.value)


async def test_quota_exceeded_403_is_rate_limited_until_midnight_pacific(
    youtube: YouTubeClient, mock_api: respx.MockRouter
) -> None:
    mock_api.get(CHANNELS_URL).respond(
        403,
        json=p.google_error(
            403,
            "The request cannot be completed because you have exceeded your quota.",
            "quotaExceeded",
            domain="youtube.quota",
        ),
    )
    with pytest.raises(ProviderRateLimited) as caught:
        await youtube.fetch_metrics(ACCESS, p.YT_CHANNEL_ID, START, END)
    # NOW is 12:00 UTC = 05:00 PDT: 19 hours to the quota reset.
    assert caught.value.retry_after_seconds == 19 * 3600
    assert caught.value.status == 403


def test_quota_reset_is_computed_in_pacific_time() -> None:
    assert seconds_until_quota_reset(NOW) == 19 * 3600
    assert seconds_until_quota_reset(NOW.replace(month=1, day=5)) == 20 * 3600  # PST in winter


async def test_user_rate_limit_403_uses_retry_after(youtube: YouTubeClient, mock_api: respx.MockRouter) -> None:
    mock_api.get(CHANNELS_URL).respond(
        403,
        headers={"Retry-After": "30"},
        json=p.google_error(403, "User Rate Limit Exceeded", "userRateLimitExceeded"),
    )
    with pytest.raises(ProviderRateLimited) as caught:
        await youtube.fetch_metrics(ACCESS, p.YT_CHANNEL_ID, START, END)
    assert caught.value.retry_after_seconds == 30.0


@pytest.mark.parametrize(
    ("retry_after", "seconds"), [("45", 45.0), ("Mon, 04 May 2026 12:10:00 GMT", 600.0)], ids=["seconds", "http-date"]
)
async def test_429_is_rate_limited_for_the_retry_after_time(
    youtube: YouTubeClient, mock_api: respx.MockRouter, retry_after: str, seconds: float
) -> None:
    mock_api.get(CHANNELS_URL).respond(200, json=p.yt_channels())
    mock_api.get(REPORTS_URL).respond(
        429,
        headers={"Retry-After": retry_after},
        json=p.google_error(429, "Resource has been exhausted", "rateLimitExceeded", status="RESOURCE_EXHAUSTED"),
    )
    with pytest.raises(ProviderRateLimited) as caught:
        await youtube.fetch_metrics(ACCESS, p.YT_CHANNEL_ID, START, END)
    assert caught.value.retry_after_seconds == seconds


async def test_5xx_is_unavailable(youtube: YouTubeClient, mock_api: respx.MockRouter) -> None:
    mock_api.get(CHANNELS_URL).respond(
        503, json=p.google_error(503, "The service is currently unavailable.", "backendError", status="UNAVAILABLE")
    )
    with pytest.raises(ProviderUnavailable) as caught:
        await youtube.fetch_metrics(ACCESS, p.YT_CHANNEL_ID, START, END)
    assert caught.value.status == 503


async def test_timeout_is_unavailable(youtube: YouTubeClient, mock_api: respx.MockRouter) -> None:
    mock_api.get(CHANNELS_URL).mock(side_effect=httpx.ReadTimeout("read timed out"))
    with pytest.raises(ProviderUnavailable, match="timed out"):
        await youtube.fetch_metrics(ACCESS, p.YT_CHANNEL_ID, START, END)


async def test_insufficient_scope_is_an_auth_error(youtube: YouTubeClient, mock_api: respx.MockRouter) -> None:
    mock_api.get(CHANNELS_URL).respond(200, json=p.yt_channels())
    mock_api.get(REPORTS_URL).respond(
        403,
        json=p.google_error(
            403,
            "Request had insufficient authentication scopes.",
            "insufficientPermissions",
            status="PERMISSION_DENIED",
        ),
    )
    with pytest.raises(ProviderAuthError, match="insufficient authentication scopes"):
        await youtube.fetch_metrics(ACCESS, p.YT_CHANNEL_ID, START, END)
