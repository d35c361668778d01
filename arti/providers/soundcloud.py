"""SoundCloud client: OAuth 2.1 with required PKCE, single-use refresh tokens, the user and track plays.

* Consent at `secure.soundcloud.com/authorize` (`code_challenge` + `S256` are **required**), tokens at
  `secure.soundcloud.com/oauth/token`. Access tokens live about an hour.
* **Refresh tokens are single-use**: each refresh answer carries a new `refresh_token` that replaces
  the old one, which is dead from then on. `refresh()` never falls back to the old refresh token; the
  caller must persist the returned TokenSet (replacing the old one) before anything else can fail.
* API at `api.soundcloud.com` with the header `Authorization: OAuth <token>`. `GET /me` gives `id`,
  `username`, `followers_count`, `track_count`; `GET /users/{id}/tracks?linked_partitioning=true`
  pages with `collection` + `next_href` (absent on the last page). Per-track `playback_count`s are
  summed into `plays_total` (per-track values kept in `raw`).
* SoundCloud gives current counts, not history: everything is recorded on the `end` day.
* Errors: 401 → re-auth; 429 (body `{"errors": [{"meta": {"rate_limit", "reset_time"}}]}`) → rate
  limited until `Retry-After` or else `reset_time`.
* Quota (`QUOTA`, RATE_LIMITS_DOC): limits are per client id; SoundCloud enforces "no limit on the total
  number of calls", only 15,000 requests to playable streams (`/tracks/:id/stream`) in any 24 hours, which
  a sync never makes. Nothing batches across users: a daily sync is `/me` and one page (200 tracks) of
  `/users/{id}/tracks` per account, both with the owner's token.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
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
    ProviderRateLimited,
    TokenSet,
    check_range,
    require_origin,
)
from arti.quotas import ROLLING, Endpoint, QuotaScope, QuotaSpec

AUTHORIZE_URL = "https://secure.soundcloud.com/authorize"
TOKEN_URL = "https://secure.soundcloud.com/oauth/token"  # noqa: S105 (an endpoint, not a secret)
API_URL = "https://api.soundcloud.com"
PAGE_SIZE = 200
MAX_PAGES = 500

RATE_LIMITS_DOC = "https://developers.soundcloud.com/docs/api/rate-limits"
API_DOC = "https://developers.soundcloud.com/docs/api/explorer/open-api"
_API = r"https://api\.soundcloud\.com"
_CALLS = {"api_rolling_24h": 1}

QUOTA = QuotaSpec(
    provider="soundcloud",
    scopes=(
        QuotaScope(
            "plays_rolling_24h", "calls", 15_000, 86_400, ROLLING, source=RATE_LIMITS_DOC,
            note="15,000 requests to playable streams (/tracks/:id/stream) per client id in any 24 hours; syncs "
                 "never stream: they spend nothing here. Exceeded: 429 with reset_time.",
        ),
        QuotaScope(
            "api_rolling_24h", "calls", None, 86_400, ROLLING, source=RATE_LIMITS_DOC,
            note="Every other call: SoundCloud documents no limit on the total number of calls a client "
                 "application makes. Counted, for information.",
        ),
    ),
    endpoints=(
        Endpoint("me", rf"GET {_API}/me", _CALLS, API_DOC, owner_token=True),
        Endpoint("user_tracks", rf"GET {_API}/users/[^/]+/tracks", _CALLS, API_DOC, owner_token=True),
    ),
    daily_calls={"me": 1, "user_tracks": 1},
    note="GET /me, then GET /users/{id}/tracks (one page of 200).",
)


class SoundCloudUser(ProviderModel):
    """`GET /me` (the fields we use)."""

    id: int | str
    urn: str | None = None
    username: str | None = None
    permalink_url: str | None = None
    followers_count: int | None = None
    track_count: int | None = None


class SoundCloudTrack(ProviderModel):
    """A track in `/users/{id}/tracks`; `playback_count` may be missing or null."""

    id: int | str | None = None
    urn: str | None = None
    title: str | None = None
    playback_count: int | None = None


class TrackPage(ProviderModel):
    """A linked-partitioning page: `collection` and `next_href` (absent or null on the last page)."""

    collection: list[SoundCloudTrack] | None = None
    next_href: str | None = None


class SoundCloudClient(ProviderClient):
    """SoundCloud API client."""

    name: ClassVar[str] = "soundcloud"
    refresh_tokens_single_use: ClassVar[bool] = True
    quota: ClassVar[QuotaSpec] = QUOTA

    # -- OAuth

    def authorize_url(self, state: str, redirect_uri: str, code_challenge: str | None = None) -> str:
        """The consent URL. SoundCloud requires PKCE: `code_challenge` (S256) is mandatory."""
        if not code_challenge:
            raise ValueError("soundcloud: PKCE is required, pass the S256 code_challenge")
        params = {
            "client_id": self.client_id,
            "redirect_uri": redirect_uri,
            "response_type": "code",
            "code_challenge": code_challenge,
            "code_challenge_method": "S256",
            "state": state,
        }
        return f"{self._authorize_endpoint(AUTHORIZE_URL)}?{urlencode(params)}"

    async def exchange_code(self, code: str, redirect_uri: str, code_verifier: str | None = None) -> TokenSet:
        """Exchange the callback's code for tokens; `code_verifier` is mandatory."""
        if not code_verifier:
            raise ValueError("soundcloud: PKCE is required, pass the code_verifier kept with the OAuth state")
        form = {
            "grant_type": "authorization_code",
            "client_id": self.client_id,
            "client_secret": self._client_secret,
            "redirect_uri": redirect_uri,
            "code_verifier": code_verifier,
            "code": code,
        }
        payload = await self._json(
            "POST", TOKEN_URL, data=form, headers={"Accept": "application/json"}, secret_values=[code, code_verifier]
        )
        return self._token_set(payload)

    async def refresh(self, token_set: TokenSet) -> TokenSet:
        """Spend the single-use refresh token; the returned set carries its replacement.

        The old refresh token is never reused: if SoundCloud answers without a new one, the returned
        set has `refresh_token=None` and the account will need re-auth when the access token expires.
        """
        if not token_set.refresh_token:
            raise ValueError("soundcloud: this token set has no refresh token (it is single-use: was it spent?)")
        form = {
            "grant_type": "refresh_token",
            "client_id": self.client_id,
            "client_secret": self._client_secret,
            "refresh_token": token_set.refresh_token,
        }
        payload = await self._json(
            "POST",
            TOKEN_URL,
            data=form,
            headers={"Accept": "application/json"},
            secret_values=[token_set.refresh_token, token_set.access_token],
        )
        return self._token_set(payload)  # deliberately no fallback_refresh_token: the old one is spent

    # -- identity

    async def identity(self, access_token: str) -> AccountIdentity:
        """The SoundCloud user (`GET /me`): numeric id as the external id, `urn` kept in `extra`."""
        user = await self._me(access_token)
        extra = {k: v for k, v in {"urn": user.urn, "permalink_url": user.permalink_url}.items() if v}
        return AccountIdentity(external_id=str(user.id), display_name=user.username, extra=extra)

    async def _me(self, access_token: str) -> SoundCloudUser:
        return self._parse(SoundCloudUser, await self._get(access_token, f"{API_URL}/me"))

    # -- metrics

    async def fetch_metrics(self, access_token: str, external_id: str, start: date, end: date, *,
                            public: Any = UNFETCHED) -> list[MetricPoint]:
        """`followers`, `tracks` and `plays_total` now, recorded on `end` (SoundCloud keeps no history).

        Both calls need the owner's token; nothing batches (`public` is unused)."""
        check_range(start, end)
        user = await self._me(access_token)
        if str(user.id) != external_id and user.urn != external_id:
            raise ProviderAuthError(
                self.name, f"the token belongs to user {user.id}, not to the connected user {external_id}"
            )
        raw_user = user.model_dump(exclude_none=True)
        points = [
            _point("followers", end, user.followers_count, raw_user),
            _point("tracks", end, user.track_count, raw_user),
        ]
        tracks, pages = await self._all_tracks(access_token, external_id)
        points.append(plays_total_point(tracks, end, pages))
        return points

    async def _all_tracks(self, access_token: str, user_id: str) -> tuple[list[SoundCloudTrack], int]:
        """Every track of the user, following `next_href` until it is absent."""
        url: str | None = f"{API_URL}/users/{quote(user_id, safe='')}/tracks"
        params: dict[str, str] | None = {"linked_partitioning": "true", "limit": str(PAGE_SIZE)}
        tracks: list[SoundCloudTrack] = []
        pages = 0
        while url and pages < MAX_PAGES:
            page = self._parse(TrackPage, await self._get(access_token, url, params))
            tracks += page.collection or []
            pages += 1
            url = require_origin(page.next_href, API_URL, self.name) if page.next_href else None
            params = None  # next_href already carries the query
        return tracks, pages

    # -- plumbing

    async def _get(self, access_token: str, url: str, params: dict[str, str] | None = None) -> Any:
        return await self._json(
            "GET",
            url,
            params=params,
            headers={"Authorization": f"OAuth {access_token}", "Accept": "application/json"},
            secret_values=[access_token],
        )

    def _classify_error(self, response: httpx.Response, body: Any, message: str) -> ProviderError | None:
        """429: wait for `Retry-After`, else until the `reset_time` given in the body."""
        if response.status_code != 429:
            return None
        error = self._rate_limited(response, message)
        if error.retry_after_seconds is None:
            reset = _reset_time(body)
            if reset is not None:
                seconds = max(0.0, (reset - self._now()).total_seconds())
                return ProviderRateLimited(self.name, message, status=429, retry_after_seconds=seconds)
        return error

    @staticmethod
    def _error_message(body: Any) -> str | None:
        """SoundCloud's `message`/`error`, the `errors[].error_message`, or a rate-limit group."""
        message = ProviderClient._error_message(body)
        if message or not isinstance(body, Mapping):
            return message
        for item in body.get("errors") or []:
            if not isinstance(item, Mapping):
                continue
            if item.get("error_message"):
                return str(item["error_message"])
            meta = item.get("meta")
            if isinstance(meta, Mapping) and isinstance(meta.get("rate_limit"), Mapping):
                return f"rate limit reached ({meta['rate_limit'].get('group', 'unknown')} group)"
        return None


def plays_total_point(tracks: list[SoundCloudTrack], day: date, pages: int = 1) -> MetricPoint:
    """The sum of the tracks' `playback_count`; tracks without one are listed, not counted as 0."""
    per_track = [{"id": t.id, "urn": t.urn, "title": t.title, "playback_count": t.playback_count} for t in tracks]
    counted = [t.playback_count for t in tracks if t.playback_count is not None]
    raw: dict[str, Any] = {"tracks": per_track, "track_count": len(tracks), "pages": pages}
    if not tracks:
        return MetricPoint(metric="plays_total", day=day, value=0, note="no tracks", raw=raw)
    if not counted:
        return MetricPoint.missing("plays_total", day, raw, why="no track has a playback_count")
    missing = len(tracks) - len(counted)
    note = f"partial: {missing} of {len(tracks)} tracks without playback_count" if missing else None
    return MetricPoint(metric="plays_total", day=day, value=sum(counted), note=note, raw=raw)


def _point(metric: str, day: date, value: int | None, raw: dict[str, Any]) -> MetricPoint:
    if value is None:
        return MetricPoint.missing(metric, day, raw)
    return MetricPoint(metric=metric, day=day, value=value, raw=raw)


def _reset_time(body: Any) -> datetime | None:
    """The earliest `reset_time` ("2015/06/01 09:49:40 +0000") of a 429 body."""
    if not isinstance(body, Mapping):
        return None
    times = []
    for item in body.get("errors") or []:
        meta = item.get("meta") if isinstance(item, Mapping) else None
        value = meta.get("reset_time") if isinstance(meta, Mapping) else None
        if isinstance(value, str):
            try:
                times.append(datetime.strptime(value, "%Y/%m/%d %H:%M:%S %z").astimezone(UTC))
            except ValueError:
                continue
    return min(times) if times else None
