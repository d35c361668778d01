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
* Quota (`QUOTA`, from DATA_QUOTA_DOC): a project has 10,000 Data API units a day, reset at midnight
  Pacific Time, and channels.list costs 1 unit whatever the number of ids it is given (`id` takes a
  comma-separated list; 50 per call, the API's page size). Public statistics need no owner: a daily sync
  reads them for 50 channels at a time (`fetch_public`), with any token of the project. Only the
  Analytics report needs the owner's token (`ids=channel==<id>`: "the user who authorizes the request must
  be the owner of the channel", REPORTS_DOC), and it counts against the Analytics API's own quota, not
  Data API units. The first design spent 1 unit per account (`channels.list?mine=true`): 10,000 channels
  would have exhausted the day's quota before any report.
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
    UNFETCHED,
    AccountIdentity,
    MetricPoint,
    ProviderAccountGone,
    ProviderAuthError,
    ProviderClient,
    ProviderError,
    ProviderModel,
    TokenSet,
    check_range,
    to_int,
    to_number,
)
from arti.quotas import DAILY, Endpoint, QuotaScope, QuotaSpec

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
CHANNELS_PER_CALL = 50
PACIFIC = "America/Los_Angeles"

DATA_QUOTA_DOC = "https://developers.google.com/youtube/v3/determine_quota_cost"
CHANNELS_DOC = "https://developers.google.com/youtube/v3/docs/channels/list"
REPORTS_DOC = "https://developers.google.com/youtube/analytics/reference/reports/query"
ERRORS_DOC = "https://developers.google.com/youtube/v3/docs/errors"

QUOTA = QuotaSpec(
    provider="youtube",
    scopes=(
        QuotaScope(
            "data_api_daily", "units", 10_000, 86_400, DAILY, reset_time_zone=PACIFIC, source=DATA_QUOTA_DOC,
            note="YouTube Data API: 10,000 units a day per project, reset at midnight Pacific Time; channels.list "
                 "costs 1 unit whatever the number of ids (up to 50). Exhausted: 403 quotaExceeded.",
        ),
        QuotaScope(
            "analytics_daily", "calls", None, 86_400, DAILY, reset_time_zone=PACIFIC, source=REPORTS_DOC,
            note="YouTube Analytics API reports.query: its own per-project quota (Google Cloud console), not Data "
                 "API units; one call per channel with the owner's token. No number to plan with: counted, "
                 "enforced by quotaExceeded.",
        ),
    ),
    endpoints=(
        Endpoint("channels.list", r"GET https://www\.googleapis\.com/youtube/v3/channels", {"data_api_daily": 1},
                 CHANNELS_DOC, batch_max=CHANNELS_PER_CALL),
        Endpoint("reports.query", r"GET https://youtubeanalytics\.googleapis\.com/v2/reports",
                 {"analytics_daily": 1}, REPORTS_DOC, owner_token=True),
    ),
    daily_calls={"reports.query": 1},
    batched="channels.list",
    batch_size=CHANNELS_PER_CALL,
    note="channels.list?id= (public statistics) per 50 channels; reports.query per channel (owner).",
)


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
    quota: ClassVar[QuotaSpec] = QUOTA

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
        return f"{self._authorize_endpoint(AUTHORIZE_URL)}?{urlencode(params)}"

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

    async def fetch_public(self, access_token: str, external_ids: list[str]) -> dict[str, Any]:
        """Channel resources (snippet, statistics) by id, 50 per call and 1 unit per call; None for an id YouTube
        returns nothing for (deleted, terminated or not public). Any token of the project will do."""
        found: dict[str, Any] = {}
        ids = list(dict.fromkeys(external_ids))
        for i in range(0, len(ids), CHANNELS_PER_CALL):
            chunk = ids[i: i + CHANNELS_PER_CALL]
            payload = await self._get(access_token, f"{DATA_API_URL}/channels", params={
                "part": "snippet,statistics", "id": ",".join(chunk), "maxResults": str(CHANNELS_PER_CALL)})
            self._parse(ChannelListResponse, payload)
            items = {raw["id"]: raw for raw in payload.get("items") or [] if isinstance(raw, dict)}
            found |= {channel_id: items.get(channel_id) for channel_id in chunk}
        return found

    async def fetch_metrics(self, access_token: str, external_id: str, start: date, end: date, *,
                            public: Any = UNFETCHED) -> list[MetricPoint]:
        """Daily report metrics for each reported day, plus channel totals on `end`.

        Days YouTube has not reported yet are absent (not None): they are filled by a later sync over
        `sync_window()`. `public` is the channel resource from `fetch_public` (None: YouTube has no such channel
        any more); the report is asked for this channel with the owner's token, so a token of another channel is
        refused by YouTube.
        """
        check_range(start, end)
        if public is UNFETCHED:
            public = (await self.fetch_public(access_token, [external_id])).get(external_id)
        if public is None:
            raise ProviderAccountGone(self.name, f"YouTube has no channel {external_id} any more (deleted, "
                                                 "terminated or no longer public)")
        channel = self._parse(Channel, public)
        points = self._statistics_points(channel, end)
        points += await self._report_points(access_token, external_id, start, end)
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

    async def _report_points(self, access_token: str, channel_id: str, start: date, end: date) -> list[MetricPoint]:
        params = {
            "ids": f"channel=={channel_id}",
            "startDate": start.isoformat(),
            "endDate": end.isoformat(),
            "metrics": ",".join(REPORT_METRICS),
            "dimensions": "day",
            "sort": "day",
        }
        try:
            payload = await self._get(access_token, ANALYTICS_URL, params=params)
        except ProviderError as exc:
            if type(exc) is ProviderError and exc.status == 403:
                # "The user who authorizes the request must be the owner of the channel": the owner must reconnect.
                raise ProviderAuthError(self.name, f"the token's user does not own channel {channel_id}: "
                                                   f"{exc.provider_message}", status=403) from None
            raise
        return parse_report(self._parse(ResultTable, payload), start, end)

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
            scope = "analytics_daily" if response.request.url.host == "youtubeanalytics.googleapis.com" else (
                "data_api_daily")
            return self._rate_limited(response, message, default_seconds=seconds_until_quota_reset(self._now()),
                                      scope=scope)
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
