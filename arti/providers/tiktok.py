"""TikTok client: Login Kit v2 for web, the account's counts (Display API user info) and its recent videos.

From TikTok for Developers' own pages:

* OAuth (LOGIN_KIT_WEB_DOC): consent at `www.tiktok.com/v2/auth/authorize/` with `client_key`, `scope`
  (comma-separated), `response_type=code`, `redirect_uri` (registered, https, static) and `state`. Login Kit for
  Web documents no PKCE: the token endpoint takes `code_verifier` "for mobile and desktop apps" only
  (GET_TOKEN_DOC), and the desktop flow's challenge is the hex SHA-256, not RFC 7636's base64url. So no PKCE is
  used for web (handlers.oauth.PKCE_SUPPORT "none"), like Instagram: the state, the park-and-complete step and
  the client secret at the token endpoint protect the flow.
* Scopes (SCOPES_DOC, USER_INFO_DOC): `user.info.basic` (open_id, union_id, display_name), `user.info.stats`
  (follower_count, following_count, likes_count, video_count), `video.list` (the user's public videos). Users may
  grant a subset: a call that needs a scope they did not grant answers `scope_not_authorized` (401) or
  `scope_permission_missed` (400), and the account is marked needs_reauth with that message.
* Tokens (`POST open.tiktokapis.com/v2/oauth/token/`, form-encoded, `client_key` + `client_secret`). TikTok's
  pages disagree on lifetimes: the OAuth v2 token management page (TOKEN_MANAGEMENT_DOC) says the access token is
  valid 24 hours and the refresh token 365 days; the pages updated in November 2026 (TOKEN_LIFETIMES_DOC,
  REFRESH_DOC) say 2 hours and 180 days, and tell to use `expires_in` / `refresh_expires_in` rather than
  hard-coded lifetimes. `expires_at` therefore comes from `expires_in` only. Rotation: REFRESH_DOC says refresh
  tokens are rotated ("a successful refresh request will return a new refresh_token in place of the one you
  sent. The previous refresh token stops working once a new one is issued"); the older page does not say. Both
  are handled: a refresh answer's `refresh_token` replaces the stored one (arti.tokens stores it in the same
  transaction, under the row lock), and an answer without one keeps the old one.
* Revocation (REVOKE_DOC): `POST /v2/oauth/revoke/` with `client_key`, `client_secret` and `token` (the access
  token); see handlers.provider_revoke.
* Stats: `GET /v2/user/info/?fields=...` (USER_INFO_DOC) answers `{"data": {"user": {...}}, "error": {"code":
  "ok", ...}}`; the counts are current values, recorded on the `end` day as running totals (followers,
  following, likes_total, videos). `POST /v2/video/list/?fields=...` with the JSON body `{"cursor", "max_count"}`
  (max_count at most 20; VIDEO_LIST_DOC) pages the user's public videos newest first with `data.cursor` and
  `data.has_more` (a page may hold fewer than max_count videos even when has_more is true). The 60 most recent
  videos are read (RECENT_VIDEOS, at most MAX_VIDEO_PAGES calls). Each video's counts are lifetime totals.
* Daily views over recent videos (`views`, a daily flow): the sum, over the recent videos, of each video's
  view_count minus its view_count in the previous day's snapshot (the sync passes that stored point back as
  `previous`, see `previous_point_metric`); a video posted since that snapshot counts in full. The per-video
  counts (views, likes, comments, shares) are the point's `raw`, so they are kept in public.metric_snapshots and
  are the next day's baseline. Without a snapshot of the previous day (first sync, a missed day) `views` is
  NULL with a note saying why, never 0. A video that takes off is a spike of `views`, which
  private.detect_anomalies finds like any daily flow; `raw.top_video` names it.
* Errors (ERRORS_DOC): `{"error": {"code", "message", "log_id"}}`, `code` a string, `ok` on success.
  `access_token_invalid` (401), `scope_not_authorized` (401), `scope_permission_missed` (400) → re-auth;
  `rate_limit_exceeded` (429) → rate limited; `internal_error` (500) → retry later; `invalid_params` (400) →
  error. The code decides, also on a 2xx answer. OAuth errors (OAUTH_ERRORS_DOC) are `{"error",
  "error_description", "log_id"}`: `invalid_grant` → re-auth, `invalid_client` → our app's credentials. The
  log_id is kept in the message (TikTok support asks for it).
* Quota (RATE_LIMITS_DOC, `QUOTA`): 600 requests per minute, a one-minute sliding window, per endpoint,
  enforced separately (/v2/user/info/, /v2/video/list/, /v2/video/query/); beyond: HTTP 429 with
  `rate_limit_exceeded`. TikTok documents no Retry-After: without one the wait is the window (60 s). Nothing
  batches across users (every call needs the owner's token): a daily sync is one user info call and up to three
  video list pages.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date
from typing import Any, ClassVar
from urllib.parse import urlencode

import httpx

from arti.providers.base import (
    UNFETCHED,
    AccountIdentity,
    MetricPoint,
    PreviousPoint,
    ProviderAuthError,
    ProviderClient,
    ProviderError,
    ProviderModel,
    ProviderRateLimited,
    ProviderUnavailable,
    TokenSet,
    check_range,
    parse_retry_after,
    redact,
    to_int,
)
from arti.quotas import ROLLING, Endpoint, QuotaScope, QuotaSpec

AUTHORIZE_URL = "https://www.tiktok.com/v2/auth/authorize/"
TOKEN_URL = "https://open.tiktokapis.com/v2/oauth/token/"  # noqa: S105 (an endpoint, not a secret)
REVOKE_URL = "https://open.tiktokapis.com/v2/oauth/revoke/"
API_URL = "https://open.tiktokapis.com/v2"
USER_INFO_URL = f"{API_URL}/user/info/"
VIDEO_LIST_URL = f"{API_URL}/video/list/"

LOGIN_KIT_WEB_DOC = "https://developers.tiktok.com/doc/login-kit-web"
SCOPES_DOC = "https://developers.tiktok.com/doc/scopes-overview"
GET_TOKEN_DOC = "https://developers.tiktok.com/doc/oauth-get-a-user-access-token"  # noqa: S105 (a page, not a secret)
TOKEN_MANAGEMENT_DOC = "https://developers.tiktok.com/doc/oauth-user-access-token-management"  # noqa: S105 (a page, not a secret)
TOKEN_LIFETIMES_DOC = "https://developers.tiktok.com/docs/zh-Hans/oauth-user-access-token-management"  # noqa: S105 (a page, not a secret)
REFRESH_DOC = "https://developers.tiktok.com/docs/en/oauth-refresh-a-user-access-token"
REVOKE_DOC = "https://developers.tiktok.com/docs/en/oauth-revoke-a-user-access-token"
USER_INFO_DOC = "https://developers.tiktok.com/doc/tiktok-api-v2-get-user-info"
VIDEO_LIST_DOC = "https://developers.tiktok.com/doc/tiktok-api-v2-video-list"
ERRORS_DOC = "https://developers.tiktok.com/doc/tiktok-api-v2-error-handling"
OAUTH_ERRORS_DOC = "https://developers.tiktok.com/doc/oauth-error-handling"
RATE_LIMITS_DOC = "https://developers.tiktok.com/doc/tiktok-api-v2-rate-limit"

DEFAULT_SCOPES = ("user.info.basic", "user.info.stats", "video.list")
IDENTITY_FIELDS = ("open_id", "union_id", "display_name")
USER_METRICS: dict[str, str] = {
    "follower_count": "followers",
    "following_count": "following",
    "likes_count": "likes_total",
    "video_count": "videos",
}
"""User info field (scope user.info.stats) → our metric, a running total recorded on the `end` day."""
VIDEO_FIELDS = ("id", "create_time", "title", "view_count", "like_count", "comment_count", "share_count")
VIEWS_METRIC = "views"
PAGE_SIZE = 20
"""The documented maximum of max_count."""
RECENT_VIDEOS = 60
"""The recent videos whose views are summed: three full pages."""
MAX_VIDEO_PAGES = 5
"""A page may hold fewer videos than asked (TikTok's trust and safety filtering): at most this many calls."""
TITLE_CHARS = 150
RATE_WINDOW_SECONDS = 60.0

AUTH_CODES = frozenset({"access_token_invalid", "scope_not_authorized", "scope_permission_missed"})
RATE_LIMIT_CODES = frozenset({"rate_limit_exceeded"})
TRANSIENT_CODES = frozenset({"internal_error"})

_API = r"https://open\.tiktokapis\.com/v2"
QUOTA = QuotaSpec(
    provider="tiktok",
    scopes=(
        QuotaScope(
            "user_info_rolling_60s", "calls", 600, 60, ROLLING, source=RATE_LIMITS_DOC,
            note="/v2/user/info/: 600 requests in a one-minute sliding window, limited separately from the other "
                 "endpoints. Exceeded: 429 rate_limit_exceeded (no Retry-After documented: wait the window).",
        ),
        QuotaScope(
            "video_list_rolling_60s", "calls", 600, 60, ROLLING, source=RATE_LIMITS_DOC,
            note="/v2/video/list/: 600 requests in a one-minute sliding window, limited separately from the other "
                 "endpoints. Exceeded: 429 rate_limit_exceeded (no Retry-After documented: wait the window).",
        ),
    ),
    endpoints=(
        Endpoint("user.info", rf"GET {_API}/user/info/", {"user_info_rolling_60s": 1}, USER_INFO_DOC,
                 owner_token=True),
        Endpoint("video.list", rf"POST {_API}/video/list/", {"video_list_rolling_60s": 1}, VIDEO_LIST_DOC,
                 owner_token=True),
    ),
    daily_calls={"user.info": 1, "video.list": RECENT_VIDEOS // PAGE_SIZE},
    note="GET /v2/user/info/ (counts), then POST /v2/video/list/ for the 60 most recent videos (3 pages of 20).",
)


class TikTokUser(ProviderModel):
    """The `data.user` object of `/v2/user/info/` (the fields we ask for)."""

    open_id: str | None = None
    union_id: str | None = None
    display_name: str | None = None
    follower_count: int | None = None
    following_count: int | None = None
    likes_count: int | None = None
    video_count: int | None = None


class TikTokVideo(ProviderModel):
    """A video object of `/v2/video/list/` (counts are lifetime totals; `create_time` is UTC epoch seconds)."""

    id: str | int
    create_time: int | None = None
    title: str | None = None
    view_count: int | None = None
    like_count: int | None = None
    comment_count: int | None = None
    share_count: int | None = None


class VideoListData(ProviderModel):
    """The `data` object of `/v2/video/list/`: `videos`, `cursor` (UTC epoch milliseconds) and `has_more`."""

    videos: list[TikTokVideo] | None = None
    cursor: int | None = None
    has_more: bool | None = None


def _video_raw(video: TikTokVideo) -> dict[str, Any]:
    title = (video.title or "")[:TITLE_CHARS] or None
    return {"id": str(video.id), "create_time": video.create_time, "title": title, "view_count": video.view_count,
            "like_count": video.like_count, "comment_count": video.comment_count, "share_count": video.share_count}


def _baseline(previous: PreviousPoint) -> dict[str, int]:
    """Video id → view_count in the previous snapshot's `views` point (videos without a count left out)."""
    found: dict[str, int] = {}
    for entry in previous.raw.get("videos") or []:
        if isinstance(entry, Mapping) and entry.get("id") is not None:
            count = to_int(entry.get("view_count"))
            if count is not None:
                found[str(entry["id"])] = count
    return found


def daily_views_point(videos: list[TikTokVideo], day: date, previous: PreviousPoint | None, *, pages: int = 1,
                      more: bool = False) -> MetricPoint:
    """`views` on `day`: the views the recent videos gained since the previous day's snapshot (see the module doc).

    The per-video counts are the point's raw (tomorrow's baseline). NULL with a note when there is nothing to
    compare with: no snapshot, a snapshot older than the day before, or no video both counted and baselined.
    """
    raw: dict[str, Any] = {"videos": [_video_raw(v) for v in videos], "video_count": len(videos), "pages": pages,
                           "more_videos": more}
    if previous is None:
        return MetricPoint.missing(VIEWS_METRIC, day, raw, why="first snapshot of these videos: daily views start "
                                                               "with the next day's sync")
    gap = (day - previous.day).days
    raw["baseline"] = {"day": previous.day.isoformat(), "taken_at": previous.taken_at.isoformat()}
    if gap != 1:
        return MetricPoint.missing(VIEWS_METRIC, day, raw, why=f"the last snapshot is from {previous.day}, "
                                                               f"{gap} days before: not one day's views")
    if not videos:
        return MetricPoint(metric=VIEWS_METRIC, day=day, value=0, note="no public videos", raw=raw)
    before = _baseline(previous)
    taken = previous.taken_at.timestamp()
    gained, compared, posted, unbaselined, uncounted = 0, 0, 0, 0, 0
    top: dict[str, Any] | None = None
    for video in videos:
        if video.view_count is None:
            uncounted += 1
            continue
        key = str(video.id)
        if key in before:
            delta, compared = video.view_count - before[key], compared + 1
        elif video.create_time is not None and video.create_time >= taken:
            delta, posted = video.view_count, posted + 1  # posted since the snapshot: all its views are new
        else:
            unbaselined += 1
            continue
        gained += delta
        if top is None or delta > top["views_gained"]:
            top = {"id": key, "title": (video.title or "")[:TITLE_CHARS] or None, "views_gained": delta,
                   "view_count": video.view_count}
    raw["baseline"] |= {"compared": compared, "posted_since": posted, "without_baseline": unbaselined,
                        "without_view_count": uncounted}
    raw["top_video"] = top
    if compared + posted == 0:
        return MetricPoint.missing(VIEWS_METRIC, day, raw, why="no video with a view_count to compare with the "
                                                               "previous snapshot")
    notes = []
    if uncounted:
        notes.append(f"{uncounted} of {len(videos)} videos without view_count")
    if unbaselined:
        notes.append(f"{unbaselined} videos not in the previous snapshot")
    note = "partial: " + "; ".join(notes) if notes else None
    return MetricPoint(metric=VIEWS_METRIC, day=day, value=gained, note=note, raw=raw)


class TikTokClient(ProviderClient):
    """TikTok Login Kit (web) + Display API client."""

    name: ClassVar[str] = "tiktok"
    default_scopes: ClassVar[tuple[str, ...]] = DEFAULT_SCOPES
    refresh_tokens_single_use: ClassVar[bool] = True  # REFRESH_DOC: rotated, the previous one stops working
    quota: ClassVar[QuotaSpec] = QUOTA
    previous_point_metric: ClassVar[str | None] = VIEWS_METRIC

    # -- OAuth

    def authorize_url(self, state: str, redirect_uri: str, code_challenge: str | None = None) -> str:
        """The Login Kit for Web consent URL. Web documents no PKCE: `code_challenge` is not sent."""
        params = {
            "client_key": self.client_id,
            "scope": ",".join(self.scopes),
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "state": state,
        }
        return f"{self._authorize_endpoint(AUTHORIZE_URL)}?{urlencode(params)}"

    async def exchange_code(self, code: str, redirect_uri: str, code_verifier: str | None = None) -> TokenSet:
        """Exchange the callback's code (`code_verifier` only when one was used: mobile and desktop apps)."""
        form = {
            "client_key": self.client_id,
            "client_secret": self._client_secret,
            "code": code,
            "grant_type": "authorization_code",
            "redirect_uri": redirect_uri,
        }
        if code_verifier:
            form["code_verifier"] = code_verifier
        payload = await self._token_request(form, [code, code_verifier])
        return self._token_set(payload)

    async def refresh(self, token_set: TokenSet) -> TokenSet:
        """New tokens; the answer's refresh token replaces the sent one (rotated), which is kept when none comes."""
        if not token_set.refresh_token:
            raise ValueError("tiktok: this token set has no refresh token")
        form = {
            "client_key": self.client_id,
            "client_secret": self._client_secret,
            "grant_type": "refresh_token",
            "refresh_token": token_set.refresh_token,
        }
        payload = await self._token_request(form, [token_set.refresh_token, token_set.access_token])
        refreshed = self._token_set(payload, fallback_refresh_token=token_set.refresh_token)
        return refreshed.model_copy(update={"scope": refreshed.scope or token_set.scope})

    async def _token_request(self, form: dict[str, str], secret_values: list[str | None]) -> Any:
        payload = await self._json("POST", TOKEN_URL, data=form, secret_values=secret_values,
                                   headers={"Content-Type": "application/x-www-form-urlencoded",
                                            "Cache-Control": "no-cache"})
        if isinstance(payload, Mapping) and isinstance(payload.get("error"), str) and not payload.get("access_token"):
            # An OAuth error in a 2xx answer: mapped as it would be on a 4xx.
            message = redact(self._error_message(payload) or payload["error"], [*secret_values, self._client_secret])
            if payload["error"] == "invalid_grant":
                raise ProviderAuthError(self.name, message)
            if payload["error"] == "invalid_client":
                raise ProviderError(self.name, f"client credentials rejected: {message}")
            raise ProviderError(self.name, message)
        return payload

    # -- identity

    async def identity(self, access_token: str) -> AccountIdentity:
        """The TikTok user (`open_id`, unique to this app, is the external id; `union_id` kept in `extra`)."""
        user = await self._user(access_token, IDENTITY_FIELDS)
        if not user.open_id:
            raise ProviderError(self.name, "unexpected user info response (fields: open_id)")
        extra = {"union_id": user.union_id} if user.union_id else {}
        return AccountIdentity(external_id=user.open_id, display_name=user.display_name, extra=extra)

    async def _user(self, access_token: str, fields: Iterable[str]) -> TikTokUser:
        payload = await self._api("GET", USER_INFO_URL, access_token, params={"fields": ",".join(fields)})
        data = payload.get("data") if isinstance(payload, Mapping) else None
        return self._parse(TikTokUser, data.get("user") if isinstance(data, Mapping) else None)

    # -- metrics

    async def fetch_metrics(self, access_token: str, external_id: str, start: date, end: date, *,
                            public: Any = UNFETCHED, previous: PreviousPoint | None = None) -> list[MetricPoint]:
        """`followers`, `following`, `likes_total` and `videos` now, and `views` of the recent videos, on `end`.

        TikTok gives current values only, so nothing is recorded for the other days of the range. `previous` is the
        `views` point of the latest snapshot before `end` (see `daily_views_point`). Both calls need the owner's
        token; nothing batches (`public` is unused).
        """
        check_range(start, end)
        user = await self._user(access_token, ("open_id", *USER_METRICS))
        if user.open_id is not None and user.open_id != external_id:
            raise ProviderAuthError(self.name, f"the token belongs to user {user.open_id}, not to the connected user "
                                               f"{external_id}")
        raw_user = user.model_dump(exclude_none=True)
        points = []
        for field, metric in USER_METRICS.items():
            value = getattr(user, field)
            points.append(MetricPoint(metric=metric, day=end, value=value, raw=raw_user) if value is not None
                          else MetricPoint.missing(metric, end, raw_user))
        videos, pages, more = await self._recent_videos(access_token)
        points.append(daily_views_point(videos, end, previous, pages=pages, more=more))
        return points

    async def _recent_videos(self, access_token: str) -> tuple[list[TikTokVideo], int, bool]:
        """The RECENT_VIDEOS most recent public videos (newest first), the pages read, and whether more exist."""
        videos: list[TikTokVideo] = []
        cursor: int | None = None
        pages, more = 0, True
        while more and len(videos) < RECENT_VIDEOS and pages < MAX_VIDEO_PAGES:
            body: dict[str, int] = {"max_count": min(PAGE_SIZE, RECENT_VIDEOS - len(videos))}
            if cursor is not None:
                body["cursor"] = cursor
            payload = await self._api("POST", VIDEO_LIST_URL, access_token, params={"fields": ",".join(VIDEO_FIELDS)},
                                      json=body)
            page = self._parse(VideoListData, payload.get("data") if isinstance(payload, Mapping) else None)
            pages += 1
            videos += page.videos or []
            more = bool(page.has_more)
            if page.cursor is None or page.cursor == cursor:
                break  # nothing to page on with: stop rather than read the same page again
            cursor = page.cursor
        return videos[:RECENT_VIDEOS], pages, more

    # -- plumbing

    async def _api(self, method: str, url: str, access_token: str, **kwargs: Any) -> Any:
        """A Display API call; an `error` object whose code is not `ok` is an error even in a 2xx answer."""
        payload = await self._json(method, url, headers={"Authorization": f"Bearer {access_token}"},
                                   secret_values=[access_token], **kwargs)
        error = payload.get("error") if isinstance(payload, Mapping) else None
        if isinstance(error, Mapping) and error.get("code") not in (None, "ok"):
            secrets = [access_token, self._client_secret]
            message = redact(self._error_message(payload) or str(error.get("code")), secrets)
            raise self._for_code(str(error["code"]), message, None, method, url, None) or ProviderError(
                self.name, message)
        return payload

    def _for_code(self, code: str, message: str, status: int | None, method: str, url: str | httpx.URL,
                  retry_after: float | None) -> ProviderError | None:
        if code in AUTH_CODES:
            return ProviderAuthError(self.name, message, status=status)
        if code in RATE_LIMIT_CODES:
            endpoint = QUOTA.endpoint_for(method, url)
            return ProviderRateLimited(
                self.name, message, status=status,
                retry_after_seconds=retry_after if retry_after is not None else RATE_WINDOW_SECONDS,
                applies_to="app", scope=next(iter(endpoint.costs)) if endpoint else None)
        if code in TRANSIENT_CODES:
            return ProviderUnavailable(self.name, message, status=status)
        return None

    def _classify_error(self, response: httpx.Response, body: Any, message: str) -> ProviderError | None:
        """The error object's code decides (scope_permission_missed comes as 400, yet needs re-auth)."""
        error = body.get("error") if isinstance(body, Mapping) else None
        if not isinstance(error, Mapping) or not error.get("code"):
            if response.status_code == 429:  # a 429 without TikTok's error object: still the one-minute window
                return self._rate_limited(response, message, default_seconds=RATE_WINDOW_SECONDS)
            return None
        url: str | httpx.URL
        try:
            method, url = response.request.method, response.request.url
        except RuntimeError:  # a response built without its request
            method, url = "", ""
        retry_after = parse_retry_after(response.headers.get("Retry-After"), self._now())
        return self._for_code(str(error["code"]), message, response.status_code, method, url, retry_after)

    @staticmethod
    def _error_message(body: Any) -> str | None:
        """`code: message (log_id …)` of the API error object, `error: description (log_id …)` of an OAuth one."""
        if not isinstance(body, Mapping):
            return None
        error = body.get("error")
        if isinstance(error, Mapping):
            code, text, log_id = error.get("code"), error.get("message"), error.get("log_id")
        elif isinstance(error, str):
            code, text, log_id = error, body.get("error_description"), body.get("log_id")
        else:
            return ProviderClient._error_message(body)
        message = ": ".join(str(part) for part in (code, text) if part)
        return f"{message} (log_id {log_id})" if log_id and message else message or None
