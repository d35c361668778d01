"""Instagram client (Instagram API with Instagram Login) against documentation-shaped responses."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import respx

from arti.providers import (
    NOT_PROVIDED,
    InstagramClient,
    ProviderAuthError,
    ProviderRateLimited,
    ProviderUnavailable,
    TokenSet,
)
from arti.providers.instagram import InsightsResponse, parse_insights
from tests.unit.providers import payloads as p
from tests.unit.providers.conftest import NOW, fixed_clock

SHORT_TOKEN_URL = "https://api.instagram.com/oauth/access_token"
GRAPH = "https://graph.instagram.com"
INSIGHTS_URL = f"{GRAPH}/{p.IG_USER_ID}/insights"
ACCESS = "IGAAaccess-token-value"
START, END = date(2026, 4, 28), date(2026, 4, 29)


def ts(day: date) -> str:
    return str(int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp()))


@pytest.fixture
def instagram(http: httpx.AsyncClient) -> InstagramClient:
    return InstagramClient("990602627938098", "ig-app-secret", http, clock=fixed_clock)


def points_by(points: list) -> dict:
    return {(pt.metric, pt.day): pt for pt in points}


def mock_metrics(mock_api: respx.MockRouter, *, reach: dict, per_day: dict[date, dict], profile: dict) -> None:
    mock_api.get(f"{GRAPH}/{p.IG_USER_ID}").respond(200, json=profile)
    mock_api.get(INSIGHTS_URL, params={"metric": "reach"}).respond(200, json=reach)
    for day, body in per_day.items():
        mock_api.get(INSIGHTS_URL, params={"metric_type": "total_value", "since": ts(day)}).respond(200, json=body)


def test_authorize_url_is_business_login_without_pkce(instagram: InstagramClient) -> None:
    url = instagram.authorize_url("st", "https://app.example/cb", code_challenge="ignored")
    parts = urlsplit(url)
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == "https://www.instagram.com/oauth/authorize"
    assert query["scope"] == "instagram_business_basic,instagram_business_manage_insights"
    assert query["response_type"] == "code" and query["state"] == "st"
    assert "code_challenge" not in query


async def test_exchange_code_gets_a_long_lived_token(instagram: InstagramClient, mock_api: respx.MockRouter) -> None:
    short = mock_api.post(SHORT_TOKEN_URL).respond(200, json=p.ig_short_token())
    long = mock_api.get(f"{GRAPH}/access_token").respond(200, json=p.ig_long_token())
    tokens = await instagram.exchange_code("AQBcode#_", "https://app.example/cb", code_verifier="unused")

    sent = {k: v[0] for k, v in parse_qs(short.calls.last.request.content.decode()).items()}
    assert sent["code"] == "AQBcode"  # the "#_" Instagram appends is stripped
    assert sent["grant_type"] == "authorization_code"
    assert "code_verifier" not in sent
    params = long.calls.last.request.url.params
    assert params["grant_type"] == "ig_exchange_token"
    assert params["access_token"] == "IGAAshort-lived"
    assert tokens.access_token == "IGAAlong-lived-1"
    assert tokens.refresh_token is None
    assert tokens.expires_at == NOW + timedelta(seconds=5183944)
    assert tokens.scope == "instagram_business_basic,instagram_business_manage_insights"


async def test_refresh_refreshes_the_long_lived_token(instagram: InstagramClient, mock_api: respx.MockRouter) -> None:
    route = mock_api.get(f"{GRAPH}/refresh_access_token").respond(200, json=p.ig_long_token("IGAAlong-lived-2"))
    new = await instagram.refresh(TokenSet(access_token="IGAAlong-lived-1", scope="instagram_business_basic"))
    params = route.calls.last.request.url.params
    assert params["grant_type"] == "ig_refresh_token"
    assert params["access_token"] == "IGAAlong-lived-1"
    assert new.access_token == "IGAAlong-lived-2"
    assert new.expires_at == NOW + timedelta(seconds=5183944)
    assert new.scope == "instagram_business_basic"


async def test_refresh_network_error_does_not_leak_the_token(
    instagram: InstagramClient, mock_api: respx.MockRouter
) -> None:
    url = f"{GRAPH}/refresh_access_token?grant_type=ig_refresh_token&access_token=IGAAlong-lived-1"
    mock_api.get(f"{GRAPH}/refresh_access_token").mock(side_effect=httpx.ConnectError(f"cannot reach {url}"))
    with pytest.raises(ProviderUnavailable) as caught:
        await instagram.refresh(TokenSet(access_token="IGAAlong-lived-1"))
    assert "IGAAlong-lived-1" not in str(caught.value)


async def test_identity_is_the_professional_account(instagram: InstagramClient, mock_api: respx.MockRouter) -> None:
    route = mock_api.get(f"{GRAPH}/me").respond(200, json=p.ig_me())
    who = await instagram.identity(ACCESS)
    assert route.calls.last.request.url.params["fields"] == "user_id,username,account_type"
    assert route.calls.last.request.headers["Authorization"] == f"Bearer {ACCESS}"
    assert who.external_id == p.IG_USER_ID
    assert who.display_name == "theexampleband"
    assert who.extra == {"account_type": "BUSINESS", "app_scoped_id": "7234567890123456"}


async def test_metrics_from_profile_time_series_and_total_value_insights(
    instagram: InstagramClient, mock_api: respx.MockRouter
) -> None:
    reach = p.ig_insights(
        p.ig_time_series("reach", [(1204, "2026-04-29T07:00:00+0000"), (980, "2026-04-30T07:00:00+0000")])
    )
    per_day = {
        date(2026, 4, 28): p.ig_insights(p.ig_total_value("views", 5230), p.ig_total_value("accounts_engaged", 310)),
        date(2026, 4, 29): p.ig_insights(p.ig_total_value("views", 4100), p.ig_total_value("accounts_engaged", 280)),
    }
    mock_metrics(mock_api, reach=reach, per_day=per_day, profile=p.ig_profile())
    points = points_by(await instagram.fetch_metrics(ACCESS, p.IG_USER_ID, START, END))

    assert points[("followers", END)].value == 15230
    assert points[("media_count", END)].value == 312
    assert ("followers", START) not in points  # snapshots only on the end day
    assert points[("reach", date(2026, 4, 28))].value == 1204
    assert points[("reach", date(2026, 4, 29))].value == 980
    assert points[("views", date(2026, 4, 28))].value == 5230
    assert points[("views", date(2026, 4, 29))].value == 4100
    assert points[("accounts_engaged", date(2026, 4, 29))].value == 280
    assert len(points) == 8


async def test_insights_requests_use_since_until_and_period_day(
    instagram: InstagramClient, mock_api: respx.MockRouter
) -> None:
    mock_metrics(
        mock_api,
        reach=p.ig_insights(),
        per_day={d: p.ig_insights() for d in (START, END)},
        profile=p.ig_profile(),
    )
    await instagram.fetch_metrics(ACCESS, p.IG_USER_ID, START, END)
    insights = [c.request.url.params for c in mock_api.calls if c.request.url.path.endswith("/insights")]
    series = next(q for q in insights if q["metric"] == "reach")
    assert (series["period"], series["since"], series["until"]) == ("day", ts(START), ts(END + timedelta(days=1)))
    totals = [q for q in insights if q.get("metric_type") == "total_value"]
    assert [(q["metric"], q["since"], q["until"]) for q in totals] == [
        ("views,accounts_engaged", ts(START), ts(END)),
        ("views,accounts_engaged", ts(END), ts(END + timedelta(days=1))),
    ]


def test_parser_accepts_both_shapes_for_the_same_metric() -> None:
    days = [date(2026, 4, 28)]
    as_series = InsightsResponse.model_validate(
        p.ig_insights(p.ig_time_series("views", [(77, "2026-04-29T07:00:00+0000")]))
    )
    as_total = InsightsResponse.model_validate(p.ig_insights(p.ig_total_value("views", 77)))
    from_series = parse_insights(as_series, ("views",), days)
    from_total = parse_insights(as_total, ("views",), days, total_value_day=days[0])
    assert [(pt.metric, pt.day, pt.value) for pt in from_series] == [("views", days[0], 77)]
    assert [(pt.metric, pt.day, pt.value) for pt in from_total] == [("views", days[0], 77)]


async def test_metrics_missing_from_the_answer_are_none_not_zero(
    instagram: InstagramClient, mock_api: respx.MockRouter
) -> None:
    per_day = {
        START: p.ig_insights(p.ig_total_value("views", 5230)),  # accounts_engaged absent
        END: p.ig_insights(p.ig_total_value("views", None), p.ig_total_value("accounts_engaged", 12)),
    }
    mock_metrics(mock_api, reach=p.ig_insights(), per_day=per_day, profile=p.ig_profile(drop=("followers_count",)))
    points = points_by(await instagram.fetch_metrics(ACCESS, p.IG_USER_ID, START, END))
    for key in [("accounts_engaged", START), ("views", END), ("followers", END), ("reach", START), ("reach", END)]:
        assert points[key].value is None, key
        assert points[key].note == NOT_PROVIDED, key
    assert points[("media_count", END)].value == 312
    assert points[("accounts_engaged", END)].value == 12


async def test_code_190_is_an_auth_error(instagram: InstagramClient, mock_api: respx.MockRouter) -> None:
    mock_api.get(f"{GRAPH}/{p.IG_USER_ID}").respond(
        400, json=p.graph_error(190, "Error validating access token: Session has expired.", subcode=463)
    )
    with pytest.raises(ProviderAuthError) as caught:
        await instagram.fetch_metrics(ACCESS, p.IG_USER_ID, START, END)
    assert caught.value.status == 400
    assert "Session has expired" in caught.value.provider_message
    assert ACCESS not in str(caught.value)


async def test_401_is_an_auth_error(instagram: InstagramClient, mock_api: respx.MockRouter) -> None:
    mock_api.get(f"{GRAPH}/me").respond(401, json={"error": {"message": "Unauthorized", "type": "OAuthException"}})
    with pytest.raises(ProviderAuthError):
        await instagram.identity(ACCESS)


@pytest.mark.parametrize("code", [4, 17, 32, 613])
async def test_graph_rate_limit_codes_are_rate_limited(
    instagram: InstagramClient, mock_api: respx.MockRouter, code: int
) -> None:
    mock_api.get(f"{GRAPH}/{p.IG_USER_ID}").respond(
        403, json=p.graph_error(code, f"(#{code}) Application request limit reached", transient=True)
    )
    with pytest.raises(ProviderRateLimited) as caught:
        await instagram.fetch_metrics(ACCESS, p.IG_USER_ID, START, END)
    assert caught.value.retry_after_seconds is None  # the Graph API does not say how long


@pytest.mark.parametrize(
    ("retry_after", "seconds"), [("60", 60.0), ("Mon, 04 May 2026 13:00:00 GMT", 3600.0)], ids=["seconds", "http-date"]
)
async def test_429_is_rate_limited_for_the_retry_after_time(
    instagram: InstagramClient, mock_api: respx.MockRouter, retry_after: str, seconds: float
) -> None:
    mock_api.get(f"{GRAPH}/{p.IG_USER_ID}").respond(
        429, headers={"Retry-After": retry_after}, json=p.graph_error(4, "(#4) Application request limit reached")
    )
    with pytest.raises(ProviderRateLimited) as caught:
        await instagram.fetch_metrics(ACCESS, p.IG_USER_ID, START, END)
    assert caught.value.retry_after_seconds == seconds


@pytest.mark.parametrize(
    ("status", "body"),
    [(500, p.graph_error(1, "An unknown error occurred", transient=True)), (503, None), (400, p.graph_error(2, "x"))],
)
async def test_5xx_and_temporary_codes_are_unavailable(
    instagram: InstagramClient, mock_api: respx.MockRouter, status: int, body: dict | None
) -> None:
    route = mock_api.get(f"{GRAPH}/{p.IG_USER_ID}")
    if body is None:
        route.respond(status, text="Service Unavailable")
    else:
        route.respond(status, json=body)
    with pytest.raises(ProviderUnavailable) as caught:
        await instagram.fetch_metrics(ACCESS, p.IG_USER_ID, START, END)
    assert caught.value.status == status


async def test_non_numeric_account_id_is_refused(instagram: InstagramClient) -> None:
    with pytest.raises(ValueError, match="numeric"):
        await instagram.fetch_metrics(ACCESS, "../me", START, END)


def test_sync_window_refetches_the_trailing_two_days(instagram: InstagramClient) -> None:
    assert instagram.sync_window(date(2026, 5, 4), date(2026, 5, 4)) == (date(2026, 5, 2), date(2026, 5, 4))
