"""Instagram client: professional accounts through the Instagram API with Instagram Login (graph.instagram.com).

* Business Login: consent at `www.instagram.com/oauth/authorize`, code exchanged at
  `api.instagram.com/oauth/access_token` for a short-lived token (1 h), immediately exchanged
  (`GET graph.instagram.com/access_token?grant_type=ig_exchange_token`) for a long-lived one (60 days).
  There is no refresh token: the long-lived access token itself is refreshed
  (`GET graph.instagram.com/refresh_access_token?grant_type=ig_refresh_token`) once it is 24 h old.
  Instagram does not document PKCE: a `code_challenge`/`code_verifier` is accepted and not sent.
* `GET /me?fields=user_id,username,account_type` gives the identity; `GET /{id}?fields=followers_count,
  media_count` the snapshot counts (recorded on the `end` day).
* `GET /{id}/insights?metric=...&period=day&since&until` answers
  `{"data": [{"name", "period", "values": [{"value", "end_time"}], "title", "description", "id"}]}`
  for time-series metrics (`reach`), or `{"total_value": {"value"}}` instead of `values` for
  total-value metrics (`views`, `accounts_engaged`), which are therefore asked one day at a time. The
  parser accepts either shape for any metric. Instagram returns no entry (not 0) when it has no data.
* Errors: `{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}`; code 190 (and 102)
  = the token is invalid (re-auth), codes 4/17/32/613 (and 80002) = rate limited, 1/2 = temporary.
* Quota (`QUOTA`, RATE_LIMITS_DOC): Instagram Platform calls are under Business Use Case limits, per
  account: 4800 x the account's impressions in a rolling 24 hours. No number we can plan with, but Meta
  reports the usage in every response: `X-Business-Use-Case-Usage` (`{"<id>": [{"type", "call_count",
  "total_cputime", "total_time", "estimated_time_to_regain_access"}]}`, percentages and minutes) for the
  account, `X-App-Usage` (`{"call_count", "total_cputime", "total_time"}`, percentages) for the app.
  `usage_report` reads them: an account at its limit (or told to wait) blocks that account's syncs for the
  time given, the app at 100 % pauses the provider; error 80002 (and 17, 32) is the account's limit,
  4 and 613 the app's. A daily sync's calls (the minimum for a window of 3 days, the reporting lag):
  the profile, one reach series, and one total-value request per day.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

import httpx

from arti.providers.base import (
    UNFETCHED,
    AccountIdentity,
    MetricPoint,
    ProviderAuthError,
    ProviderClient,
    ProviderError,
    ProviderModel,
    ProviderUnavailable,
    TokenSet,
    check_range,
    days_between,
    to_number,
)
from arti.quotas import ROLLING, Endpoint, QuotaScope, QuotaSpec, UsageReport

AUTHORIZE_URL = "https://www.instagram.com/oauth/authorize"
SHORT_TOKEN_URL = "https://api.instagram.com/oauth/access_token"  # noqa: S105 (an endpoint, not a secret)
GRAPH_URL = "https://graph.instagram.com"

DEFAULT_SCOPES = ("instagram_business_basic", "instagram_business_manage_insights")
TIME_SERIES_METRICS = ("reach",)
TOTAL_VALUE_METRICS = ("views", "accounts_engaged")
PROFILE_METRICS = {"followers_count": "followers", "media_count": "media_count"}
MAX_INSIGHTS_RANGE_DAYS = 30

_IG_ID = re.compile(r"\d{1,32}")

AUTH_CODES = frozenset({190, 102})
RATE_LIMIT_CODES = frozenset({4, 17, 32, 613, 80002})
ACCOUNT_RATE_LIMIT_CODES = frozenset({17, 32, 80002})
"""Throttling of one user, page or Instagram account (Business Use Case); 4 and 613 are the app's."""
TRANSIENT_CODES = frozenset({1, 2})
APP_USAGE_PAUSE_SECONDS = 300
"""X-App-Usage at 100 %: Meta throttles until the hour's calls age out; the provider pauses this long."""
ACCOUNT_USAGE_PAUSE_SECONDS = 900
"""An account's Business Use Case usage at 100 % without estimated_time_to_regain_access: wait this long."""

RATE_LIMITS_DOC = "https://developers.facebook.com/docs/graph-api/overview/rate-limiting"
INSIGHTS_DOC = "https://developers.facebook.com/docs/instagram-platform/api-reference/instagram-user/insights"
USER_DOC = "https://developers.facebook.com/docs/instagram-platform/api-reference/instagram-user"
_GRAPH = r"https://graph\.instagram\.com(?:/v[0-9]+\.[0-9]+)?"
_BUC = {"buc_per_account": 1}
DAILY_WINDOW_DAYS = 3
"""Days one daily sync fetches: yesterday and the two days insights may still revise (reporting_lag_days)."""

QUOTA = QuotaSpec(
    provider="instagram",
    scopes=(
        QuotaScope(
            "buc_per_account", "calls", None, 86_400, ROLLING, applies_to="account", source=RATE_LIMITS_DOC,
            note="Business Use Case limit of the Instagram Platform: 4800 x impressions per account in a rolling 24 "
                 "hours. Usage (percent) in X-Business-Use-Case-Usage with estimated_time_to_regain_access "
                 "(minutes); error 80002.",
        ),
    ),
    endpoints=(
        Endpoint("insights", rf"GET {_GRAPH}/[0-9]+/insights", _BUC, INSIGHTS_DOC, owner_token=True),
        Endpoint("profile", rf"GET {_GRAPH}/[0-9]+", _BUC, USER_DOC, owner_token=True),
        Endpoint("me", rf"GET {_GRAPH}/me", _BUC, USER_DOC, owner_token=True),
    ),
    daily_calls={"profile": 1, "insights": 1 + DAILY_WINDOW_DAYS},
    note="GET /{id} (counts), /{id}/insights reach (3 days), /{id}/insights total_value once per day (3 days).",
)


class InstagramMe(ProviderModel):
    """`GET /me?fields=user_id,username,account_type`."""

    id: str | None = None
    user_id: str | int | None = None
    username: str | None = None
    account_type: str | None = None


class InstagramProfile(ProviderModel):
    """`GET /{id}?fields=followers_count,media_count`."""

    id: str | None = None
    followers_count: int | None = None
    media_count: int | None = None


class InsightValue(ProviderModel):
    """One `values[]` entry of a time-series metric (`end_time` closes the day it covers)."""

    value: Any = None
    end_time: str | None = None


class InsightTotal(ProviderModel):
    """`total_value` of a total-value metric (may also carry `breakdowns`)."""

    value: Any = None


class InsightMetric(ProviderModel):
    """One entry of `data[]` in an insights response: either `values` or `total_value`."""

    name: str
    period: str | None = None
    values: list[InsightValue] | None = None
    total_value: InsightTotal | None = None
    title: str | None = None
    description: str | None = None
    id: str | None = None


class InsightsResponse(ProviderModel):
    """`GET /{id}/insights`."""

    data: list[InsightMetric] | None = None


def _day_start(day: date) -> int:
    """The UNIX timestamp of midnight UTC starting `day` (the `since`/`until` values we send)."""
    return int(datetime.combine(day, time.min, tzinfo=UTC).timestamp())


def _parse_end_time(value: str) -> datetime | None:
    for fmt in ("%Y-%m-%dT%H:%M:%S%z",):
        try:
            return datetime.strptime(value, fmt)
        except ValueError:
            pass
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def value_day(end_time: str | None) -> date | None:
    """The day a daily value covers: the day before its `end_time` (which is the next day's start)."""
    if not end_time:
        return None
    parsed = _parse_end_time(end_time)
    return (parsed - timedelta(days=1)).date() if parsed else None


def parse_insights(
    response: InsightsResponse, requested: tuple[str, ...], days: list[date], *, total_value_day: date | None = None
) -> list[MetricPoint]:
    """MetricPoints from an insights response, whichever shape each metric came in.

    * `values` → one point per day inside `days` (days Instagram did not report are left out: a later
      sync over the trailing window fills them).
    * `total_value` → one point on `total_value_day` (the single day that was asked).
    * a requested metric missing from `data` → None ("not provided") for each of `days`.
    """
    points: list[MetricPoint] = []
    wanted = set(days)
    seen: set[str] = set()
    for entry in response.data or []:
        if entry.name not in requested:
            continue
        seen.add(entry.name)
        raw_entry = entry.model_dump(exclude_none=True, exclude={"title", "description"})
        if entry.values is not None:
            for item in entry.values:
                day = value_day(item.end_time)
                if day is None or day not in wanted:
                    continue
                value = to_number(item.value)
                raw = {"name": entry.name, "period": entry.period, **item.model_dump()}
                points.append(
                    MetricPoint(metric=entry.name, day=day, value=value, raw=raw)
                    if value is not None
                    else MetricPoint.missing(entry.name, day, raw)
                )
        elif total_value_day is not None:
            value = to_number(entry.total_value.value) if entry.total_value else None
            points.append(
                MetricPoint(metric=entry.name, day=total_value_day, value=value, raw=raw_entry)
                if value is not None
                else MetricPoint.missing(entry.name, total_value_day, raw_entry)
            )
    for name in requested:
        if name not in seen:
            points.extend(MetricPoint.missing(name, day, {"metric": name}) for day in days)
    return points


class InstagramClient(ProviderClient):
    """Instagram API with Instagram Login client (professional accounts)."""

    name: ClassVar[str] = "instagram"
    reporting_lag_days: ClassVar[int] = DAILY_WINDOW_DAYS - 1  # insights can be delayed up to 48 hours
    quota: ClassVar[QuotaSpec] = QUOTA

    default_scopes: ClassVar[tuple[str, ...]] = DEFAULT_SCOPES
    # Long-lived tokens last 60 days and are refreshed with themselves: renew a week ahead.
    refreshes_with_access_token: ClassVar[bool] = True
    refresh_margin_seconds: ClassVar[float] = 7 * 24 * 3600

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        http: httpx.AsyncClient | None = None,
        *,
        api_version: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(client_id, client_secret, http, **kwargs)
        self.graph_url = f"{GRAPH_URL}/{api_version}" if api_version else GRAPH_URL

    # -- OAuth

    def authorize_url(self, state: str, redirect_uri: str, code_challenge: str | None = None) -> str:
        """The Business Login consent URL. PKCE is not supported by Instagram: `code_challenge` is ignored."""
        params = {
            "client_id": self.client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "scope": ",".join(self.scopes),
            "state": state,
        }
        return f"{self._authorize_endpoint(AUTHORIZE_URL)}?{urlencode(params)}"

    async def exchange_code(self, code: str, redirect_uri: str, code_verifier: str | None = None) -> TokenSet:
        """Code → short-lived token → long-lived token (60 days). `code_verifier` is not used by Instagram."""
        code = code.removesuffix("#_")  # Instagram appends "#_" to the redirect
        form = {
            "client_id": self.client_id,
            "client_secret": self._client_secret,
            "grant_type": "authorization_code",
            "redirect_uri": redirect_uri,
            "code": code,
        }
        payload = await self._json("POST", SHORT_TOKEN_URL, data=form, secret_values=[code])
        entry = _short_lived_entry(payload)
        short = entry.get("access_token")
        if not short:
            raise ProviderError(self.name, "token response carries no access_token")
        short = str(short)
        params = {"grant_type": "ig_exchange_token", "client_secret": self._client_secret, "access_token": short}
        long_lived = await self._json("GET", f"{GRAPH_URL}/access_token", params=params, secret_values=[short])
        token_set = self._token_set(long_lived)
        permissions = entry.get("permissions")
        if isinstance(permissions, list):
            permissions = ",".join(str(p) for p in permissions)
        if permissions and not token_set.scope:
            token_set = token_set.model_copy(update={"scope": str(permissions)})
        return token_set

    async def refresh(self, token_set: TokenSet) -> TokenSet:
        """Refresh the long-lived access token itself (it must be at least 24 h old and unexpired)."""
        params = {"grant_type": "ig_refresh_token", "access_token": token_set.access_token}
        payload = await self._json(
            "GET", f"{GRAPH_URL}/refresh_access_token", params=params, secret_values=[token_set.access_token]
        )
        refreshed = self._token_set(payload)
        return refreshed.model_copy(update={"scope": refreshed.scope or token_set.scope})

    # -- identity

    async def identity(self, access_token: str) -> AccountIdentity:
        """The professional account: `user_id` (falling back to the app-scoped `id`), username, type."""
        me = self._parse(InstagramMe, await self._get(access_token, "me", {"fields": "user_id,username,account_type"}))
        external_id = me.user_id if me.user_id is not None else me.id
        if external_id is None:
            raise ProviderError(self.name, "unexpected /me response (fields: user_id, id)")
        extra = {k: v for k, v in {"account_type": me.account_type, "app_scoped_id": me.id}.items() if v}
        return AccountIdentity(external_id=str(external_id), display_name=me.username, extra=extra)

    # -- metrics

    async def fetch_metrics(self, access_token: str, external_id: str, start: date, end: date, *,
                            public: Any = UNFETCHED) -> list[MetricPoint]:
        """`followers` and `media_count` on `end`; daily `reach`, `views` and `accounts_engaged`.

        Every call needs the account's own token: Instagram has no batched public read (`public` is unused)."""
        check_range(start, end)
        if not _IG_ID.fullmatch(external_id):
            raise ValueError("instagram: an account id is a numeric string")
        points = await self._profile_points(access_token, external_id, end)
        for chunk in _chunks(days_between(start, end), MAX_INSIGHTS_RANGE_DAYS):
            params = {
                "metric": ",".join(TIME_SERIES_METRICS),
                "period": "day",
                "since": str(_day_start(chunk[0])),
                "until": str(_day_start(chunk[-1] + timedelta(days=1))),
            }
            response = self._parse(InsightsResponse, await self._get(access_token, f"{external_id}/insights", params))
            points += parse_insights(response, TIME_SERIES_METRICS, chunk)
        for day in days_between(start, end):
            params = {
                "metric": ",".join(TOTAL_VALUE_METRICS),
                "period": "day",
                "metric_type": "total_value",
                "since": str(_day_start(day)),
                "until": str(_day_start(day + timedelta(days=1))),
            }
            response = self._parse(InsightsResponse, await self._get(access_token, f"{external_id}/insights", params))
            points += parse_insights(response, TOTAL_VALUE_METRICS, [day], total_value_day=day)
        return points

    async def _profile_points(self, access_token: str, external_id: str, day: date) -> list[MetricPoint]:
        payload = await self._get(access_token, external_id, {"fields": ",".join(PROFILE_METRICS)})
        profile = self._parse(InstagramProfile, payload)
        raw = profile.model_dump(exclude_none=True)
        points = []
        for field, metric in PROFILE_METRICS.items():
            value = getattr(profile, field)
            points.append(
                MetricPoint(metric=metric, day=day, value=value, raw=raw)
                if value is not None
                else MetricPoint.missing(metric, day, raw)
            )
        return points

    # -- plumbing

    async def _get(self, access_token: str, path: str, params: dict[str, str]) -> Any:
        segments = "/".join(quote(part, safe="") for part in path.split("/"))
        return await self._json(
            "GET",
            f"{self.graph_url}/{segments}",
            params=params,
            headers={"Authorization": f"Bearer {access_token}"},
            secret_values=[access_token],
        )

    def usage_report(self, response: httpx.Response) -> UsageReport | None:
        """Meta's usage headers: X-App-Usage (the app) and X-Business-Use-Case-Usage (the account)."""
        app = _json_header(response, "X-App-Usage")
        buc = _json_header(response, "X-Business-Use-Case-Usage")
        if not isinstance(app, Mapping) and not isinstance(buc, Mapping):
            return None
        report = UsageReport()
        if isinstance(app, Mapping):
            report.app = {k: app[k] for k in ("call_count", "total_cputime", "total_time") if k in app}
            if _max_percent(report.app) >= 100:
                report.app_blocked_seconds = APP_USAGE_PAUSE_SECONDS
        if isinstance(buc, Mapping):
            entries = [e for value in buc.values() if isinstance(value, list) for e in value if isinstance(e, Mapping)]
            report.account = {str(k): v for k, v in buc.items()}
            regain = max((to_number(e.get("estimated_time_to_regain_access")) or 0 for e in entries), default=0)
            if regain > 0:
                report.account_blocked_seconds = float(regain) * 60
            elif max((_max_percent(e) for e in entries), default=0) >= 100:
                report.account_blocked_seconds = ACCOUNT_USAGE_PAUSE_SECONDS
        return report

    def _classify_error(self, response: httpx.Response, body: Any, message: str) -> ProviderError | None:
        """Graph API error codes decide, whatever the HTTP status (190 usually comes as 400)."""
        error = body.get("error") if isinstance(body, Mapping) else None
        if not isinstance(error, Mapping):
            return None
        code = error.get("code")
        status = response.status_code
        if code in AUTH_CODES:
            return ProviderAuthError(self.name, message, status=status)
        if code in RATE_LIMIT_CODES:
            # The error itself does not say how long; the usage headers may (estimated_time_to_regain_access).
            report = self.usage_report(response)
            if code in ACCOUNT_RATE_LIMIT_CODES:
                return self._rate_limited(response, message, applies_to="account",
                                          default_seconds=report.account_blocked_seconds if report else None)
            return self._rate_limited(response, message,
                                      default_seconds=report.app_blocked_seconds if report else None)
        if code in TRANSIENT_CODES or error.get("is_transient") is True:
            return ProviderUnavailable(self.name, message, status=status)
        return None


def _json_header(response: httpx.Response, name: str) -> Any:
    value = response.headers.get(name)
    if not value:
        return None
    try:
        return json.loads(value)
    except ValueError:
        return None


def _max_percent(usage: Mapping[str, Any]) -> float:
    """The largest of Meta's usage percentages (call_count, total_cputime, total_time)."""
    return max((float(to_number(usage.get(k)) or 0) for k in ("call_count", "total_cputime", "total_time")), default=0)


def _short_lived_entry(payload: Any) -> Mapping[str, Any]:
    """The code exchange answer's token entry: `{"data": [{access_token, user_id, permissions}]}` or flat."""
    if not isinstance(payload, Mapping):
        return {}
    data = payload.get("data")
    if isinstance(data, list):
        return data[0] if data and isinstance(data[0], Mapping) else {}
    return payload


def _chunks(days: list[date], size: int) -> list[list[date]]:
    return [days[i : i + size] for i in range(0, len(days), size)]
