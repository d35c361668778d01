"""YouTube client: Google OAuth, the channel (Data API v3) and daily channel reports (Analytics API v2).

* Google OAuth 2.0 for web servers: `accounts.google.com/o/oauth2/v2/auth` with `access_type=offline`
  (and `prompt=consent`, so a refresh token is issued again on re-connect), PKCE S256 supported; tokens
  at `oauth2.googleapis.com/token`. A refresh answer carries no new refresh token: the old one is kept.
* `channels.list?part=snippet,statistics&mine=true`: counts are **strings**; `subscriberCount` is
  rounded by YouTube to three significant figures; `hiddenSubscriberCount: true` means the channel
  hides it (stored as None). Snapshot counts are recorded on the `end` day.
* `youtubeAnalytics.googleapis.com/v2/reports` (`ids=channel==MINE`, `dimensions=day`) returns
  `columnHeaders` + `rows`. Data lags 48-72 h and recent days are simply absent from `rows`: a sync
  should ask `sync_window()` for a range that re-fetches the trailing `reporting_lag_days`.
* Errors: `{"error": {"code", "message", "errors": [{"reason", ...}], "status"}}`. The quota reasons
  (`quotaExceeded`, `dailyLimitExceeded`: daily quota, reset at midnight Pacific time;
  `rateLimitExceeded`, `userRateLimitExceeded`) arrive as 403 and are mapped to `ProviderRateLimited`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime, timedelta, timezone
from typing import Any, ClassVar
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
from pydantic import Field

from arti.providers.base import (
    AccountIdentity,
    MetricPoint,
    ProviderAuthError,
    ProviderClient,
    ProviderError,
    ProviderModel,
    TokenSet,
    check_range,
    to_int,
    to_number,
)

AUTHORIZE_URL = "https://accounts.google.com/o/oauth2/v2/auth"
TOKEN_URL = "https://oauth2.googleapis.com/token"  # noqa: S105 (an endpoint, not a secret)
DATA_API_URL = "https://www.googleapis.com/youtube/v3"
ANALYTICS_URL = "https://youtubeanalytics.googleapis.com/v2/reports"

DEFAULT_SCOPES = (
    "https://www.googleapis.com/auth/youtube.readonly",
    "https://www.googleapis.com/auth/yt-analytics.readonly",
)
REPORT_METRICS: dict[str, str] = {
    "views": "views",
    "estimatedMinutesWatched": "watch_minutes",
    "subscribersGained": "subscribers_gained",
    "subscribersLost": "subscribers_lost",
}
"""Analytics API metric → our metric name."""

SUBSCRIBERS_ROUNDED_NOTE = "rounded by YouTube to 3 significant figures"
DAILY_QUOTA_REASONS = frozenset({"quotaExceeded", "dailyLimitExceeded"})
RATE_REASONS = frozenset({"rateLimitExceeded", "userRateLimitExceeded"})
AUTH_REASONS = frozenset({"authError", "insufficientPermissions"})
LAG_DAYS = 3


class ChannelSnippet(ProviderModel):
    """`snippet` of a channel resource (the fields we use)."""

    title: str | None = None
    custom_url: str | None = Field(default=None, alias="customUrl")


class ChannelStatistics(ProviderModel):
    """`statistics` of a channel resource: counts are strings (uint64 as JSON strings)."""

    view_count: str | int | None = Field(default=None, alias="viewCount")
    subscriber_count: str | int | None = Field(default=None, alias="subscriberCount")
    hidden_subscriber_count: bool | None = Field(default=None, alias="hiddenSubscriberCount")
    video_count: str | int | None = Field(default=None, alias="videoCount")


class Channel(ProviderModel):
    """A channel resource."""

    id: str
    snippet: ChannelSnippet | None = None
    statistics: ChannelStatistics | None = None


class ChannelListResponse(ProviderModel):
    """`channels.list` response."""

    items: list[Channel] | None = None


class ColumnHeader(ProviderModel):
    """One column of an Analytics result table."""

    name: str
    column_type: str | None = Field(default=None, alias="columnType")
    data_type: str | None = Field(default=None, alias="dataType")


class ResultTable(ProviderModel):
    """An Analytics `reports.query` response; `rows` is omitted when there is no data."""

    kind: str | None = None
    column_headers: list[ColumnHeader] | None = Field(default=None, alias="columnHeaders")
    rows: list[list[Any]] | None = None


def seconds_until_quota_reset(now: datetime) -> float:
    """Seconds from `now` until the next midnight Pacific time, when YouTube daily quotas reset."""
    try:
        pacific: Any = ZoneInfo("America/Los_Angeles")
    except ZoneInfoNotFoundError:  # no tz database: assume PST (UTC-8), at worst an hour late
        pacific = timezone(timedelta(hours=-8))
    local = now.astimezone(pacific)
    midnight = datetime.combine(local.date() + timedelta(days=1), datetime.min.time(), tzinfo=pacific)
    return max(0.0, (midnight - local).total_seconds())


class YouTubeClient(ProviderClient):
    """YouTube Data API v3 + YouTube Analytics API v2 client."""

    name: ClassVar[str] = "youtube"
    reporting_lag_days: ClassVar[int] = LAG_DAYS
    default_scopes: ClassVar[tuple[str, ...]] = DEFAULT_SCOPES

    # -- OAuth

    def authorize_url(self, state: str, redirect_uri: str, code_challenge: str | None = None) -> str:
        """The Google consent URL, offline access (refresh token), PKCE S256 when a challenge is given."""
        params = {
            "client_id": self.client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": " ".join(self.scopes),
            "access_type": "offline",
            "include_granted_scopes": "true",
            "prompt": "consent",
            "state": state,
        }
        if code_challenge:
            params |= {"code_challenge": code_challenge, "code_challenge_method": "S256"}
        return f"{AUTHORIZE_URL}?{urlencode(params)}"

    async def exchange_code(self, code: str, redirect_uri: str, code_verifier: str | None = None) -> TokenSet:
        """Exchange the callback's code for tokens (with `code_verifier` when PKCE was used)."""
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "client_id": self.client_id,
            "client_secret": self._client_secret,
        }
        if code_verifier:
            form["code_verifier"] = code_verifier
        payload = await self._json("POST", TOKEN_URL, data=form, secret_values=[code, code_verifier])
        return self._token_set(payload)

    async def refresh(self, token_set: TokenSet) -> TokenSet:
        """New access token; Google does not rotate refresh tokens, so the old one is kept."""
        if not token_set.refresh_token:
            raise ValueError("youtube: this token set has no refresh token (was access_type=offline used?)")
        form = {
            "grant_type": "refresh_token",
            "refresh_token": token_set.refresh_token,
            "client_id": self.client_id,
            "client_secret": self._client_secret,
        }
        payload = await self._json(
            "POST", TOKEN_URL, data=form, secret_values=[token_set.refresh_token, token_set.access_token]
        )
        return self._token_set(payload, fallback_refresh_token=token_set.refresh_token)

    # -- identity

    async def identity(self, access_token: str) -> AccountIdentity:
        """The channel of the authorizing user (`channels.list?mine=true`)."""
        channel = await self._my_channel(access_token)
        snippet = channel.snippet or ChannelSnippet()
        extra = {"custom_url": snippet.custom_url} if snippet.custom_url else {}
        return AccountIdentity(external_id=channel.id, display_name=snippet.title, extra=extra)

    async def _my_channel(self, access_token: str) -> Channel:
        payload = await self._get(
            access_token, f"{DATA_API_URL}/channels", params={"part": "snippet,statistics", "mine": "true"}
        )
        items = self._parse(ChannelListResponse, payload).items or []
        if not items:
            raise ProviderError(self.name, "this Google account has no YouTube channel")
        return items[0]

    # -- metrics

    async def fetch_metrics(self, access_token: str, external_id: str, start: date, end: date) -> list[MetricPoint]:
        """Daily report metrics for each reported day, plus channel totals on `end`.

        Days YouTube has not reported yet are absent (not None): they are filled by a later sync over
        `sync_window()`.
        """
        check_range(start, end)
        channel = await self._my_channel(access_token)
        if channel.id != external_id:
            raise ProviderAuthError(
                self.name, f"the token belongs to channel {channel.id}, not to the connected channel {external_id}"
            )
        points = self._statistics_points(channel, end)
        points += await self._report_points(access_token, start, end)
        return points

    @staticmethod
    def _statistics_points(channel: Channel, day: date) -> list[MetricPoint]:
        stats = channel.statistics
        raw = stats.model_dump(exclude_none=True, by_alias=True) if stats else {}
        if stats is None:
            return [MetricPoint.missing(m, day, raw) for m in ("subscribers", "views_total", "videos")]
        points: list[MetricPoint] = []
        if stats.hidden_subscriber_count:
            points.append(MetricPoint.missing("subscribers", day, raw, why="hidden by the channel"))
        else:
            subscribers = to_int(stats.subscriber_count)
            points.append(
                MetricPoint(metric="subscribers", day=day, value=subscribers, note=SUBSCRIBERS_ROUNDED_NOTE, raw=raw)
                if subscribers is not None
                else MetricPoint.missing("subscribers", day, raw)
            )
        for metric, value in (("views_total", stats.view_count), ("videos", stats.video_count)):
            number = to_int(value)
            points.append(
                MetricPoint(metric=metric, day=day, value=number, raw=raw)
                if number is not None
                else MetricPoint.missing(metric, day, raw)
            )
        return points

    async def _report_points(self, access_token: str, start: date, end: date) -> list[MetricPoint]:
        params = {
            "ids": "channel==MINE",
            "startDate": start.isoformat(),
            "endDate": end.isoformat(),
            "metrics": ",".join(REPORT_METRICS),
            "dimensions": "day",
            "sort": "day",
        }
        table = self._parse(ResultTable, await self._get(access_token, ANALYTICS_URL, params=params))
        return parse_report(table, start, end)

    # -- plumbing

    async def _get(self, access_token: str, url: str, params: dict[str, str]) -> Any:
        return await self._json(
            "GET", url, params=params, headers={"Authorization": f"Bearer {access_token}"}, secret_values=[access_token]
        )

    def _classify_error(self, response: httpx.Response, body: Any, message: str) -> ProviderError | None:
        """Google's `errors[].reason`: quota and rate reasons (403) → rate limited, auth reasons → re-auth."""
        error = body.get("error") if isinstance(body, Mapping) else None
        if not isinstance(error, Mapping):
            return None
        reasons = {str(e.get("reason")) for e in error.get("errors") or [] if isinstance(e, Mapping)}
        status = response.status_code
        if reasons & DAILY_QUOTA_REASONS:
            return self._rate_limited(response, message, default_seconds=seconds_until_quota_reset(self._now()))
        if reasons & RATE_REASONS or error.get("status") == "RESOURCE_EXHAUSTED":
            return self._rate_limited(response, message)
        if status in (401, 403) and reasons & AUTH_REASONS:
            # e.g. insufficient scopes: the owner must connect again and grant them.
            return ProviderAuthError(self.name, message, status=status)
        return None


def parse_report(table: ResultTable, start: date, end: date) -> list[MetricPoint]:
    """MetricPoints from a `dimensions=day` result table, columns found by name.

    A metric column missing from the table gives None ("not provided") for every reported day.
    """
    headers = [h.name for h in table.column_headers or []]
    if "day" not in headers:
        return []
    day_index = headers.index("day")
    points: list[MetricPoint] = []
    for row in table.rows or []:
        try:
            day = date.fromisoformat(str(row[day_index]))
        except (IndexError, ValueError):
            continue
        if not start <= day <= end:
            continue
        raw = dict(zip(headers, row, strict=False))
        for api_name, metric in REPORT_METRICS.items():
            value = to_number(raw.get(api_name)) if api_name in headers else None
            points.append(
                MetricPoint(metric=metric, day=day, value=value, raw=raw)
                if value is not None
                else MetricPoint.missing(metric, day, raw)
            )
    return points
