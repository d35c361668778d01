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
"""

from __future__ import annotations

import re
from datetime import date
from typing import Any, ClassVar
from urllib.parse import quote, urlencode

import httpx

from arti.providers.base import (
    AccountIdentity,
    MetricPoint,
    ProviderClient,
    ProviderModel,
    TokenSet,
    check_range,
    require_origin,
)

AUTHORIZE_URL = "https://accounts.spotify.com/authorize"
TOKEN_URL = "https://accounts.spotify.com/api/token"  # noqa: S105 (an endpoint, not a secret)
API_URL = "https://api.spotify.com/v1"

DEFAULT_SCOPES = ("user-read-private",)
RELEASE_GROUPS = "album,single"
ALBUMS_PAGE_LIMIT = 10  # the Development Mode maximum for GET /artists/{id}/albums since February 2026
MAX_PAGES = 200
_SPOTIFY_ID = re.compile(r"[0-9A-Za-z]{1,64}")


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
        return f"{AUTHORIZE_URL}?{urlencode(params)}"

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

    async def fetch_metrics(self, access_token: str, external_id: str, start: date, end: date) -> list[MetricPoint]:
        """`followers`, `popularity` and `releases` of the artist `external_id`, recorded on `end`.

        Spotify gives current values only, so nothing is recorded for the other days of the range.
        """
        check_range(start, end)
        payload = await self._get(access_token, self._artist_url(external_id))
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
