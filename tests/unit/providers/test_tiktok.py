"""TikTok client (Login Kit for web, Display API) against responses and errors shaped as TikTok documents them."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx

from arti.providers import (
    NOT_PROVIDED,
    PreviousPoint,
    ProviderAuthError,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
    TikTokClient,
    TokenSet,
)
from arti.providers.tiktok import PAGE_SIZE, RECENT_VIDEOS, TikTokVideo, daily_views_point
from tests.unit.providers import payloads as p
from tests.unit.providers.conftest import NOW, fixed_clock

TOKEN_URL = "https://open.tiktokapis.com/v2/oauth/token/"
USER_URL = "https://open.tiktokapis.com/v2/user/info/"
VIDEOS_URL = "https://open.tiktokapis.com/v2/video/list/"
ACCESS = "act.tiktok-access-value"
START, END = date(2026, 4, 28), date(2026, 5, 3)
TAKEN = datetime(2026, 5, 3, 2, 0, tzinfo=UTC)  # the previous day's snapshot (May 2), taken by the 02:00 sync


@pytest.fixture
def tiktok(http: httpx.AsyncClient) -> TikTokClient:
    return TikTokClient("tt-client-key", "tt-client-secret", http, clock=fixed_clock)


def form(request: httpx.Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(request.content.decode()).items()}


def by_metric(points: list) -> dict:
    return {pt.metric: pt for pt in points}


def previous(videos: dict[str, int], *, day: date = END - timedelta(days=1), taken: datetime = TAKEN) -> PreviousPoint:
    """The `views` point of the previous snapshot, as the sync reads it back from public.metric_snapshots."""
    stored = [{"id": k, "view_count": v} for k, v in videos.items()]
    return PreviousPoint(day=day, taken_at=taken, raw={"videos": stored})


# --------------------------------------------------------------------------------------------- OAuth


def test_authorize_url_is_login_kit_for_web_with_the_documented_parameters(tiktok: TikTokClient) -> None:
    url = tiktok.authorize_url("st-123", "https://api.example/functions/v1/oauth/tiktok/callback",
                               code_challenge="ignored")
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://www.tiktok.com/v2/auth/authorize/"
    assert query == {"client_key": "tt-client-key", "scope": "user.info.basic,user.info.stats,video.list",
                     "response_type": "code", "redirect_uri": "https://api.example/functions/v1/oauth/tiktok/callback",
                     "state": "st-123"}, "no PKCE for web: Login Kit for Web documents none"


async def test_exchange_code_posts_the_documented_form(tiktok: TikTokClient, mock_api: respx.MockRouter) -> None:
    route = mock_api.post(TOKEN_URL).respond(200, json=p.tt_token())
    tokens = await tiktok.exchange_code("tt-code", "https://app.example/cb")
    sent = form(route.calls.last.request)
    assert sent == {"client_key": "tt-client-key", "client_secret": "tt-client-secret", "code": "tt-code",
                    "grant_type": "authorization_code", "redirect_uri": "https://app.example/cb"}
    assert route.calls.last.request.headers["Content-Type"] == "application/x-www-form-urlencoded"
    assert (tokens.access_token, tokens.refresh_token) == ("act.tiktok-access-1", "rft.tiktok-refresh-1")
    assert tokens.expires_at == NOW + timedelta(seconds=7200), "from expires_in, never a hard-coded lifetime"
    assert tokens.scope == "user.info.basic,user.info.stats,video.list"


async def test_refresh_rotates_the_refresh_token(tiktok: TikTokClient, mock_api: respx.MockRouter) -> None:
    route = mock_api.post(TOKEN_URL)
    route.side_effect = [httpx.Response(200, json=p.tt_token("act.2", "rft.2")),
                         httpx.Response(200, json=p.tt_token("act.3", "rft.3"))]
    second = await tiktok.refresh(TokenSet(access_token="act.1", refresh_token="rft.1"))
    third = await tiktok.refresh(second)
    assert [form(c.request)["refresh_token"] for c in route.calls] == ["rft.1", "rft.2"], "always the latest"
    assert form(route.calls[0].request)["grant_type"] == "refresh_token"
    assert form(route.calls[0].request)["client_key"] == "tt-client-key"
    assert (third.access_token, third.refresh_token) == ("act.3", "rft.3")
    assert tiktok.refresh_tokens_single_use is True


async def test_a_refresh_answer_without_a_refresh_token_keeps_the_old_one(tiktok: TikTokClient,
                                                                         mock_api: respx.MockRouter) -> None:
    """The older token page does not say refresh tokens rotate: an answer without one leaves the old one in use."""
    mock_api.post(TOKEN_URL).respond(200, json=p.tt_token("act.2", None))
    new = await tiktok.refresh(TokenSet(access_token="act.1", refresh_token="rft.1", scope="user.info.basic"))
    assert (new.access_token, new.refresh_token) == ("act.2", "rft.1")


@pytest.mark.parametrize("status", [400, 200], ids=["4xx", "in-a-2xx"])
async def test_a_refused_refresh_token_is_an_auth_error(tiktok: TikTokClient, mock_api: respx.MockRouter,
                                                        status: int) -> None:
    mock_api.post(TOKEN_URL).respond(status, json=p.tt_oauth_error("invalid_grant", "Refresh token is invalid."))
    with pytest.raises(ProviderAuthError) as caught:
        await tiktok.refresh(TokenSet(access_token="act.1", refresh_token="rft.secret-1"))
    text = str(caught.value)
    assert "invalid_grant" in text and p.TT_LOG_ID in text, "TikTok support asks for the log_id"
    assert "rft.secret-1" not in text and "tt-client-secret" not in text


@pytest.mark.parametrize("status", [401, 200], ids=["4xx", "in-a-2xx"])
async def test_rejected_client_credentials_are_not_the_accounts_fault(tiktok: TikTokClient,
                                                                      mock_api: respx.MockRouter, status: int) -> None:
    mock_api.post(TOKEN_URL).respond(status, json=p.tt_oauth_error("invalid_client", "Client key or secret invalid."))
    with pytest.raises(ProviderError, match="client credentials rejected") as caught:
        await tiktok.exchange_code("tt-code", "https://app.example/cb")
    assert type(caught.value) is ProviderError


# --------------------------------------------------------------------------------------------- identity


async def test_identity_is_the_open_id_with_a_bearer_token(tiktok: TikTokClient, mock_api: respx.MockRouter) -> None:
    route = mock_api.get(USER_URL).respond(200, json=p.tt_user(drop=("follower_count", "following_count",
                                                                     "likes_count", "video_count")))
    who = await tiktok.identity(ACCESS)
    request = route.calls.last.request
    assert request.headers["Authorization"] == f"Bearer {ACCESS}"
    assert request.url.params["fields"] == "open_id,union_id,display_name", "user.info.basic fields only"
    assert (who.external_id, who.display_name) == (p.TT_OPEN_ID, "lunavale")
    assert who.extra == {"union_id": "c9c60f44-a68e-4f5d-84dd-ce22faeb0ba1"}


async def test_identity_without_open_id_is_a_shape_error(tiktok: TikTokClient, mock_api: respx.MockRouter) -> None:
    mock_api.get(USER_URL).respond(200, json=p.tt_user(drop=("open_id",)))
    with pytest.raises(ProviderError, match="open_id"):
        await tiktok.identity(ACCESS)


# --------------------------------------------------------------------------------------------- metrics


def mock_pages(mock_api: respx.MockRouter, *pages: dict) -> respx.Route:
    route = mock_api.post(VIDEOS_URL)
    route.side_effect = [httpx.Response(200, json=page) for page in pages]
    return route


async def test_counts_and_daily_views_since_the_previous_snapshot(tiktok: TikTokClient,
                                                                  mock_api: respx.MockRouter) -> None:
    user = mock_api.get(USER_URL).respond(200, json=p.tt_user())
    posted_today = int((TAKEN + timedelta(hours=5)).timestamp())
    videos = mock_pages(
        mock_api,
        p.tt_videos([p.tt_video("7400000000000000003", 900, create_time=posted_today),
                     p.tt_video("7400000000000000002", 250_000)], cursor=1776000000000, has_more=True),
        p.tt_videos([p.tt_video("7400000000000000001", 10_500)], has_more=False),
    )
    before = previous({"7400000000000000002": 200_000, "7400000000000000001": 10_000})
    points = by_metric(await tiktok.fetch_metrics(ACCESS, p.TT_OPEN_ID, START, END, previous=before))

    assert {pt.day for pt in points.values()} == {END}, "current values only: recorded on the end day"
    assert {m: points[m].value for m in ("followers", "following", "likes_total", "videos")} == {
        "followers": 48210, "following": 312, "likes_total": 1204533, "videos": 87}
    views = points["views"]
    assert views.value == 900 + 50_000 + 500 and views.note is None
    assert views.raw["top_video"]["id"] == "7400000000000000002"
    assert views.raw["top_video"]["views_gained"] == 50_000
    assert views.raw["baseline"].items() >= {"compared": 2, "posted_since": 1, "without_baseline": 0}.items()
    kept = {v["id"]: v for v in views.raw["videos"]}
    assert kept["7400000000000000002"] == {
        "id": "7400000000000000002", "create_time": 1777000000, "title": "Moonrise teaser 002", "view_count": 250_000,
        "like_count": 25_000, "comment_count": 1250, "share_count": 1666}, "per-video counts go to the snapshot"

    assert user.calls.last.request.url.params["fields"] == (
        "open_id,follower_count,following_count,likes_count,video_count")
    first, second = (json.loads(c.request.content) for c in videos.calls)
    assert first == {"max_count": 20} and second == {"max_count": 20, "cursor": 1776000000000}
    fields = "id,create_time,title,view_count,like_count,comment_count,share_count"
    for call in videos.calls:
        assert call.request.url.params["fields"] == fields
        assert call.request.headers["Authorization"] == f"Bearer {ACCESS}"
        assert call.request.headers["Content-Type"] == "application/json"


async def test_the_first_snapshot_has_no_daily_views_yet(tiktok: TikTokClient, mock_api: respx.MockRouter) -> None:
    mock_api.get(USER_URL).respond(200, json=p.tt_user())
    mock_pages(mock_api, p.tt_videos([p.tt_video("7400000000000000001", 10_500)]))
    views = by_metric(await tiktok.fetch_metrics(ACCESS, p.TT_OPEN_ID, START, END))["views"]
    assert views.value is None and views.note is not None and views.note.startswith(NOT_PROVIDED)
    assert "first snapshot" in views.note
    assert views.raw["videos"][0]["view_count"] == 10_500, "still kept: it is tomorrow's baseline"


def test_a_snapshot_older_than_the_day_before_is_not_one_days_views() -> None:
    videos = [p.tt_video("1", 500)]
    point = daily_views_point([TikTokVideo.model_validate(v) for v in videos], END,
                              previous({"1": 100}, day=END - timedelta(days=3)))
    assert point.value is None and "3 days before" in (point.note or "")


async def test_a_count_that_disappeared_is_null_with_a_note_never_zero(tiktok: TikTokClient,
                                                                       mock_api: respx.MockRouter) -> None:
    mock_api.get(USER_URL).respond(200, json=p.tt_user(drop=("follower_count", "likes_count")))
    mock_pages(mock_api, p.tt_videos([p.tt_video("7400000000000000002", 250_000),
                                      p.tt_video("7400000000000000001", None, drop=("view_count",))]))
    points = by_metric(await tiktok.fetch_metrics(ACCESS, p.TT_OPEN_ID, START, END,
                                                  previous=previous({"7400000000000000002": 249_000,
                                                                     "7400000000000000001": 10_000})))
    for metric in ("followers", "likes_total"):
        assert points[metric].value is None and points[metric].note == NOT_PROVIDED
    assert points["videos"].value == 87
    assert points["views"].value == 1000
    assert points["views"].note == "partial: 1 of 2 videos without view_count"


async def test_no_video_with_a_count_gives_null_views(tiktok: TikTokClient, mock_api: respx.MockRouter) -> None:
    mock_api.get(USER_URL).respond(200, json=p.tt_user())
    mock_pages(mock_api, p.tt_videos([p.tt_video("7400000000000000001", None, drop=("view_count",))]))
    views = by_metric(await tiktok.fetch_metrics(ACCESS, p.TT_OPEN_ID, START, END,
                                                 previous=previous({"7400000000000000001": 10_000})))["views"]
    assert views.value is None and (views.note or "").startswith(NOT_PROVIDED)


async def test_an_old_video_missing_from_the_snapshot_is_left_out_and_said(tiktok: TikTokClient,
                                                                           mock_api: respx.MockRouter) -> None:
    mock_api.get(USER_URL).respond(200, json=p.tt_user())
    mock_pages(mock_api, p.tt_videos([p.tt_video("7400000000000000002", 5_000), p.tt_video("7400000000000000001", 99)]))
    views = by_metric(await tiktok.fetch_metrics(ACCESS, p.TT_OPEN_ID, START, END,
                                                 previous=previous({"7400000000000000002": 4_000})))["views"]
    assert views.value == 1000
    assert views.note == "partial: 1 videos not in the previous snapshot"


async def test_paging_stops_at_the_recent_window(tiktok: TikTokClient,
                                                                       mock_api: respx.MockRouter) -> None:
    mock_api.get(USER_URL).respond(200, json=p.tt_user())

    def page(start: int, cursor: int) -> dict:
        return p.tt_videos([p.tt_video(f"74{n:017d}", 100) for n in range(start, start + PAGE_SIZE)], cursor=cursor,
                           has_more=True)

    route = mock_pages(mock_api, page(0, 3), page(20, 2), page(40, 1), page(60, 0))
    views = by_metric(await tiktok.fetch_metrics(ACCESS, p.TT_OPEN_ID, START, END))["views"]
    assert route.call_count == RECENT_VIDEOS // PAGE_SIZE == 3
    assert views.raw["video_count"] == RECENT_VIDEOS and views.raw["more_videos"] is True


async def test_paging_stops_on_a_cursor_that_does_not_move(tiktok: TikTokClient, mock_api: respx.MockRouter) -> None:
    mock_api.get(USER_URL).respond(200, json=p.tt_user())
    stuck = mock_pages(mock_api, p.tt_videos([p.tt_video("1", 1)], cursor=5, has_more=True),
                       p.tt_videos([p.tt_video("2", 1)], cursor=5, has_more=True))
    views = by_metric(await tiktok.fetch_metrics(ACCESS, p.TT_OPEN_ID, START, END))["views"]
    assert stuck.call_count == 2 and views.raw["video_count"] == 2


async def test_a_page_with_fewer_videos_than_asked_still_pages_on(tiktok: TikTokClient,
                                                                  mock_api: respx.MockRouter) -> None:
    """TikTok may answer fewer than max_count while has_more is true (trust and safety filtering)."""
    mock_api.get(USER_URL).respond(200, json=p.tt_user())
    route = mock_pages(mock_api, p.tt_videos([p.tt_video("3", 1)], cursor=30, has_more=True),
                       p.tt_videos([p.tt_video("2", 1)], cursor=20, has_more=True),
                       p.tt_videos([], cursor=10, has_more=False))
    await tiktok.fetch_metrics(ACCESS, p.TT_OPEN_ID, START, END)
    assert route.call_count == 3


async def test_token_of_another_user_is_an_auth_error(tiktok: TikTokClient, mock_api: respx.MockRouter) -> None:
    mock_api.get(USER_URL).respond(200, json=p.tt_user(open_id="-000someoneelse"))
    with pytest.raises(ProviderAuthError, match="not to the connected user"):
        await tiktok.fetch_metrics(ACCESS, p.TT_OPEN_ID, START, END)


# --------------------------------------------------------------------------------------------- errors


@pytest.mark.parametrize(("status", "code"), [
    (401, "access_token_invalid"), (401, "scope_not_authorized"), (400, "scope_permission_missed"),
    (200, "access_token_invalid"),
])
async def test_token_and_scope_errors_need_reauth(tiktok: TikTokClient, mock_api: respx.MockRouter, status: int,
                                                  code: str) -> None:
    mock_api.get(USER_URL).respond(status, json=p.tt_error(code, "Please authorize and retry."))
    with pytest.raises(ProviderAuthError) as caught:
        await tiktok.fetch_metrics(ACCESS, p.TT_OPEN_ID, START, END)
    assert caught.value.provider_message == f"{code}: Please authorize and retry. (log_id {p.TT_LOG_ID})"
    assert ACCESS not in str(caught.value)


async def test_rate_limit_waits_the_one_minute_window_of_that_endpoint(tiktok: TikTokClient,
                                                                       mock_api: respx.MockRouter) -> None:
    mock_api.get(USER_URL).respond(200, json=p.tt_user())
    mock_api.post(VIDEOS_URL).respond(429, json=p.tt_error("rate_limit_exceeded", "API rate limit exceeded."))
    with pytest.raises(ProviderRateLimited) as caught:
        await tiktok.fetch_metrics(ACCESS, p.TT_OPEN_ID, START, END)
    error = caught.value
    assert (error.retry_after_seconds, error.applies_to, error.scope) == (60.0, "app", "video_list_rolling_60s")


async def test_rate_limit_honours_a_retry_after_header(tiktok: TikTokClient, mock_api: respx.MockRouter) -> None:
    mock_api.get(USER_URL).respond(429, headers={"Retry-After": "17"},
                                   json=p.tt_error("rate_limit_exceeded", "API rate limit exceeded."))
    with pytest.raises(ProviderRateLimited) as caught:
        await tiktok.identity(ACCESS)
    assert (caught.value.retry_after_seconds, caught.value.scope) == (17.0, "user_info_rolling_60s")


@pytest.mark.parametrize("status", [500, 200])
async def test_internal_error_is_unavailable(tiktok: TikTokClient, mock_api: respx.MockRouter, status: int) -> None:
    mock_api.get(USER_URL).respond(status, json=p.tt_error("internal_error", "Something went wrong."))
    with pytest.raises(ProviderUnavailable):
        await tiktok.identity(ACCESS)


@pytest.mark.parametrize("status", [502, 503, 504])
async def test_5xx_without_a_body_is_unavailable(tiktok: TikTokClient, mock_api: respx.MockRouter,
                                                 status: int) -> None:
    mock_api.get(USER_URL).respond(200, json=p.tt_user())
    mock_api.post(VIDEOS_URL).respond(status, text="<html>Bad Gateway</html>")
    with pytest.raises(ProviderUnavailable) as caught:
        await tiktok.fetch_metrics(ACCESS, p.TT_OPEN_ID, START, END)
    assert caught.value.status == status


async def test_invalid_params_is_a_plain_error(tiktok: TikTokClient, mock_api: respx.MockRouter) -> None:
    mock_api.get(USER_URL).respond(400, json=p.tt_error("invalid_params", "max_count must be at most 20."))
    with pytest.raises(ProviderError) as caught:
        await tiktok.identity(ACCESS)
    assert type(caught.value) is ProviderError and caught.value.status == 400


async def test_non_json_success_body_is_unavailable(tiktok: TikTokClient, mock_api: respx.MockRouter) -> None:
    mock_api.get(USER_URL).respond(200, text="<html>maintenance</html>")
    with pytest.raises(ProviderUnavailable, match="not JSON"):
        await tiktok.identity(ACCESS)
