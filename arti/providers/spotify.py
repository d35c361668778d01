"""Spotify Web API client: OAuth (authorization code, optional PKCE S256), the user, an artist's metrics.

* Authorize at `accounts.spotify.com/authorize`, tokens at `accounts.spotify.com/api/token` (client
  credentials in a Basic header; a PKCE `code_verifier` is added when one was used).
* `identity()` is the Spotify *user* (`GET /v1/me`); the artist a team connects is chosen by its id and
  checked with `artist_identity()`. Metrics are fetched for that artist id.
* Metrics (snapshots, recorded on the `end` day): `followers` (`followers.total`) and `popularity` from
  `GET /v1/artists/{id}`, `releases` (albums + singles) from `GET /v1/artists/{id}/albums`.
  Since March 2026 Development Mode apps receive neither `followers` nor `popularity`: they are then
  stored as None with the note "not provided", never 0.
* Errors: `{"error": {"status", "message"}}` from the API, `{"error", "error_description"}` from the
  accounts service; 429 carries `Retry-After` in seconds.
* Quota (`QUOTA`): Spotify counts an app's calls in a rolling 30-second window and answers 429 with
  Retry-After beyond it; the number is not published (it depends on the app's mode), so
  private.provider_quotas.quota_limit holds the app's own figure (a conservative 180 by default).
  Public artist data needs no owner: `fetch_public` reads up to 50 artists per call
  (`GET /v1/artists?ids=`, unknown ids answered with `null` in their place); only the albums call is
  per artist. Development Mode apps lost "Get Several Artists" in the February 2026 migration: a 403 on it
  falls back to one `GET /v1/artists/{id}` per artist.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

import httpx

from arti.providers.base import (
    UNFETCHED,
    AccountIdentity,
    MetricPoint,
    ProviderAccountGone,
    ProviderClient,
    ProviderError,
    ProviderModel,
    TokenSet,
    check_range,
    require_origin,
)
from arti.quotas import ROLLING, Endpoint, QuotaScope, QuotaSpec

AUTHORIZE_URL = "https://accounts.spotify.com/authorize"
TOKEN_URL = "https://accounts.spotify.com/api/token"  # noqa: S105 (an endpoint, not a secret)
API_URL = "https://api.spotify.com/v1"

DEFAULT_SCOPES = ("user-read-private",)
RELEASE_GROUPS = "album,single"
ALBUMS_PAGE_LIMIT = 10  # the Development Mode maximum for GET /artists/{id}/albums since February 2026
MAX_PAGES = 200
_SPOTIFY_ID = re.compile(r"[0-9A-Za-z]{1,64}")
SEVERAL_ARTISTS_MAX = 50

RATE_LIMITS_DOC = "https://developer.spotify.com/documentation/web-api/concepts/rate-limits"
SEVERAL_ARTISTS_DOC = "https://developer.spotify.com/documentation/web-api/reference/get-multiple-artists"
ARTIST_DOC = "https://developer.spotify.com/documentation/web-api/reference/get-an-artist"
ALBUMS_DOC = "https://developer.spotify.com/documentation/web-api/reference/get-an-artists-albums"
MIGRATION_DOC = "https://developer.spotify.com/documentation/web-api/tutorials/february-2026-migration-guide"
_API = r"https://api\.spotify\.com/v1"
_WINDOW = {"rolling_30s": 1}

QUOTA = QuotaSpec(
    provider="spotify",
    scopes=(
        QuotaScope(
            "rolling_30s", "calls", 180, 30, ROLLING, source=RATE_LIMITS_DOC,
            note="Calls per app in a rolling 30-second window; the number depends on the app's mode and is not "
                 "published: set quota_limit to your app's. Exceeded: 429 with Retry-After (seconds).",
        ),
    ),
    endpoints=(
        Endpoint("artists.several", rf"GET {_API}/artists", _WINDOW, SEVERAL_ARTISTS_DOC,
                 batch_max=SEVERAL_ARTISTS_MAX),
        Endpoint("artists.get", rf"GET {_API}/artists/[^/]+", _WINDOW, ARTIST_DOC),
        Endpoint("artists.albums", rf"GET {_API}/artists/[^/]+/albums", _WINDOW, ALBUMS_DOC),
        Endpoint("me", rf"GET {_API}/me", _WINDOW, "https://developer.spotify.com/documentation/web-api/reference/"
                 "get-current-users-profile"),
    ),
    daily_calls={"artists.albums": 1},
    batched="artists.several",
    batch_size=SEVERAL_ARTISTS_MAX,
    note="GET /v1/artists?ids= per 50 artists; GET /v1/artists/{id}/albums per artist.",
)


class SpotifyFollowers(ProviderModel):
    """The followers object: `total` (and an always-null `href`)."""

    total: int | None = None


class SpotifyArtist(ProviderModel):
    """A full artist object (`GET /v1/artists/{id}`)."""

    id: str
    name: str | None = None
    uri: str | None = None
    genres: list[str] | None = None
    followers: SpotifyFollowers | None = None
    popularity: int | None = None


class SpotifyUser(ProviderModel):
    """The current user's profile (`GET /v1/me`)."""

    id: str
    display_name: str | None = None
    uri: str | None = None
    country: str | None = None
    product: str | None = None


class SpotifyPage(ProviderModel):
    """A paging object: `items`, `total`, `next` (absolute URL or null)."""

    href: str | None = None
    items: list[dict[str, Any]] | None = None
    limit: int | None = None
    offset: int | None = None
    total: int | None = None
    next: str | None = None


class SpotifyClient(ProviderClient):
    """Spotify Web API client."""

    name: ClassVar[str] = "spotify"
    default_scopes: ClassVar[tuple[str, ...]] = DEFAULT_SCOPES
    quota: ClassVar[QuotaSpec] = QUOTA

    # -- OAuth

    def authorize_url(self, state: str, redirect_uri: str, code_challenge: str | None = None) -> str:
        """The Spotify consent URL (PKCE S256 when `code_challenge` is given)."""
        params = {
            "client_id": self.client_id,
            "response_type": "code",
            "redirect_uri": redirect_uri,
            "state": state,
            "scope": " ".join(self.scopes),
        }
        if code_challenge:
            params |= {"code_challenge_method": "S256", "code_challenge": code_challenge}
        return f"{self._authorize_endpoint(AUTHORIZE_URL)}?{urlencode(params)}"

    async def exchange_code(self, code: str, redirect_uri: str, code_verifier: str | None = None) -> TokenSet:
        """Exchange the callback's code for tokens (sends `code_verifier` when PKCE was used)."""
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}
        if code_verifier:
            form |= {"code_verifier": code_verifier, "client_id": self.client_id}
        payload = await self._token_request(form, secret_values=[code, code_verifier])
        return self._token_set(payload)

    async def refresh(self, token_set: TokenSet) -> TokenSet:
        """New access token; Spotify may rotate the refresh token, otherwise the old one is kept."""
        if not token_set.refresh_token:
            raise ValueError("spotify: this token set has no refresh token")
        form = {"grant_type": "refresh_token", "refresh_token": token_set.refresh_token}
        payload = await self._token_request(form, secret_values=[token_set.refresh_token, token_set.access_token])
        return self._token_set(payload, fallback_refresh_token=token_set.refresh_token)

    async def _token_request(self, form: dict[str, str], *, secret_values: list[str | None]) -> Any:
        return await self._json(
            "POST",
            TOKEN_URL,
            data=form,
            auth=httpx.BasicAuth(self.client_id, self._client_secret),
            secret_values=secret_values,
        )

    # -- identity

    async def identity(self, access_token: str) -> AccountIdentity:
        """The Spotify user who granted access (`GET /v1/me`)."""
        user = self._parse(SpotifyUser, await self._get(access_token, f"{API_URL}/me"))
        extra = {k: v for k, v in {"uri": user.uri, "country": user.country, "product": user.product}.items() if v}
        return AccountIdentity(external_id=user.id, display_name=user.display_name, extra=extra)

    async def artist_identity(self, access_token: str, artist_id: str) -> AccountIdentity:
        """The artist a team connects (`GET /v1/artists/{id}`): its id is the account's external id."""
        artist = self._parse(SpotifyArtist, await self._get(access_token, self._artist_url(artist_id)))
        extra: dict[str, Any] = {"uri": artist.uri, "genres": artist.genres or []}
        return AccountIdentity(external_id=artist.id, display_name=artist.name, extra=extra)

    # -- metrics

    async def fetch_public(self, access_token: str, external_ids: list[str]) -> dict[str, Any]:
        """Artist objects by id, 50 per call (`GET /v1/artists?ids=`); None for an id Spotify has no artist for.

        One id is one `GET /v1/artists/{id}` (same cost, and it exists in every mode). A 403 on the batch call
        (Development Mode apps lost it in February 2026, see MIGRATION_DOC) falls back to one call per artist.
        """
        found: dict[str, Any] = {}
        ids = list(dict.fromkeys(external_ids))
        for artist_id in ids:
            self._artist_url(artist_id)  # validates the id
        for i in range(0, len(ids), SEVERAL_ARTISTS_MAX):
            chunk = ids[i: i + SEVERAL_ARTISTS_MAX]
            if len(chunk) == 1:
                found |= await self._one_artist(access_token, chunk[0])
                continue
            try:
                payload = await self._get(access_token, f"{API_URL}/artists", params={"ids": ",".join(chunk)})
            except ProviderError as exc:
                if exc.status != 403 or type(exc) is not ProviderError:
                    raise
                for artist_id in chunk:
                    found |= await self._one_artist(access_token, artist_id)
                continue
            artists = payload.get("artists") if isinstance(payload, dict) else None
            if not isinstance(artists, list) or len(artists) != len(chunk):
                raise ProviderError(self.name, "unexpected several-artists response (fields: artists)")
            for artist_id, artist in zip(chunk, artists, strict=True):
                found[artist_id] = artist if isinstance(artist, dict) and artist.get("id") else None
        return found

    async def _one_artist(self, access_token: str, artist_id: str) -> dict[str, Any]:
        try:
            return {artist_id: await self._get(access_token, self._artist_url(artist_id))}
        except ProviderError as exc:
            if exc.status in (400, 404) and type(exc) is ProviderError:
                return {artist_id: None}
            raise

    async def fetch_metrics(self, access_token: str, external_id: str, start: date, end: date, *,
                            public: Any = UNFETCHED) -> list[MetricPoint]:
        """`followers`, `popularity` and `releases` of the artist `external_id`, recorded on `end`.

        Spotify gives current values only, so nothing is recorded for the other days of the range. `public` is
        the artist object from `fetch_public` (None: Spotify has no artist with this id any more).
        """
        check_range(start, end)
        if public is UNFETCHED:
            payload = await self._get(access_token, self._artist_url(external_id))
        elif public is None:
            raise ProviderAccountGone(self.name, f"Spotify has no artist {external_id} any more (removed, or the id "
                                                 "is wrong); reconnect the artist")
        else:
            payload = public
        artist = self._parse(SpotifyArtist, payload)
        releases = await self._releases_point(access_token, external_id, end)
        return [*self._artist_points(artist, payload, end), releases]

    @staticmethod
    def _artist_points(artist: SpotifyArtist, payload: Any, day: date) -> list[MetricPoint]:
        followers = artist.followers.total if artist.followers else None
        raw_followers = {"followers": payload.get("followers")} if isinstance(payload, dict) else {}
        raw_popularity = {"popularity": payload.get("popularity")} if isinstance(payload, dict) else {}
        return [
            MetricPoint(metric="followers", day=day, value=followers, raw=raw_followers)
            if followers is not None
            else MetricPoint.missing("followers", day, raw_followers),
            MetricPoint(metric="popularity", day=day, value=artist.popularity, raw=raw_popularity)
            if artist.popularity is not None
            else MetricPoint.missing("popularity", day, raw_popularity),
        ]

    async def _releases_point(self, access_token: str, artist_id: str, day: date) -> MetricPoint:
        """The number of albums and singles: the paging `total`, or the items counted page by page."""
        params = {"include_groups": RELEASE_GROUPS, "limit": str(ALBUMS_PAGE_LIMIT)}
        page = self._parse(
            SpotifyPage, await self._get(access_token, f"{self._artist_url(artist_id)}/albums", params=params)
        )
        raw: dict[str, Any] = {"include_groups": RELEASE_GROUPS, "total": page.total}
        if page.total is not None:
            return MetricPoint(metric="releases", day=day, value=page.total, raw=raw)
        if page.items is None:
            return MetricPoint.missing("releases", day, raw)
        count, pages = len(page.items), 1
        while page.next and pages < MAX_PAGES:
            next_url = require_origin(page.next, API_URL, self.name)
            page = self._parse(SpotifyPage, await self._get(access_token, next_url))
            count += len(page.items or [])
            pages += 1
        raw |= {"counted_items": count, "pages": pages}
        return MetricPoint(metric="releases", day=day, value=count, note="counted from paged items", raw=raw)

    # -- plumbing

    @staticmethod
    def _artist_url(artist_id: str) -> str:
        if not _SPOTIFY_ID.fullmatch(artist_id):
            raise ValueError("spotify: an artist id is a base-62 string")
        return f"{API_URL}/artists/{quote(artist_id, safe='')}"

    async def _get(self, access_token: str, url: str, params: dict[str, str] | None = None) -> Any:
        return await self._json(
            "GET",
            url,
            params=params,
            headers={"Authorization": f"Bearer {access_token}"},
            secret_values=[access_token],
        )
