"""Fake Spotify, YouTube (Data + Analytics), Instagram, SoundCloud and TikTok APIs on loopback that enforce the quotas.

Workers reach it through ARTI_PROVIDER_GATEWAY (the original URL travels in X-Arti-Original-Url). Every answer
is shaped as the provider documents it, including the refusals, and comes after a realistic latency (uniform in
`latency`, 100-300 ms by default):

* Spotify: calls of the app in any rolling 30 seconds above `spotify_limit` get 429 with Retry-After (seconds)
  and the Web API error object; `GET /v1/artists?ids=` answers `{"artists": [...]}` in the order asked, `null`
  for an id with no artist; `GET /v1/artists/{id}/albums` a paging object with `total`.
* YouTube Data API: channels.list costs 1 unit per call (whatever the number of ids, up to 50) out of
  `youtube_daily_units` per Pacific day; beyond it, 403 with the documented quotaExceeded error body
  (domain youtube.quota). An id YouTube has no channel for is absent from `items`. Analytics reports.query:
  rows per day up to two days before endDate (the reporting lag); 403 forbidden when the token's owner is not
  the channel's.
* Instagram: each response carries X-App-Usage and X-Business-Use-Case-Usage (percent of 200 calls per user per
  hour and of 4800 x impressions per account per 24 hours); an account listed in `instagram_throttled` answers
  error 80002 with estimated_time_to_regain_access in the header.
* SoundCloud: `/me` identifies the token's user; `/users/{id}/tracks` a linked-partitioning page.
* TikTok: `/v2/user/info/` and `/v2/video/list/` (three pages of 20 videos, `cursor` and `has_more`) answer TikTok's
  `{"data", "error": {"code": "ok"}}`; calls of the app to one endpoint in any rolling 60 seconds above
  `tiktok_limit` (600, the documented default) get 429 with the error code rate_limit_exceeded.

Tokens are `tok-<external id>`: the fake knows whose a token is (YouTube's owner check, SoundCloud's /me).
Counted: calls per provider and endpoint, calls per account, quota violations (every 429/403 quota answer) and
the largest number of calls any rolling 30-second window of Spotify saw.
"""

from __future__ import annotations

import json
import random
import threading
import time
from collections import Counter, deque
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

from arti.http import ORIGINAL_URL_HEADER

PACIFIC = ZoneInfo("America/Los_Angeles")
TOKEN_PREFIX = "tok-"
TIKTOK_CURSOR = 1_760_000_000_000
TIKTOK_PAGE_MS = 20 * 86_400_000
YOUTUBE_QUOTA_MESSAGE = ('The request cannot be completed because you have exceeded your '
                         '<a href="/youtube/v3/getting-started#quota">quota</a>.')


def token_for(external_id: str) -> str:
    """The access token the fake accepts as `external_id`'s owner."""
    return f"{TOKEN_PREFIX}{external_id}"


class QuotaFakeProviders:
    """The five providers' APIs behind one loopback port, enforcing their quotas; see the module docstring."""

    def __init__(self, *, latency: tuple[float, float] = (0.1, 0.3), spotify_limit: int | None = None,
                 spotify_window: float = 30.0, youtube_daily_units: int = 10_000, tiktok_limit: int = 600,
                 seed: int = 20261130) -> None:
        self.latency = latency
        self.spotify_limit = spotify_limit
        self.spotify_window = spotify_window
        self.youtube_daily_units = youtube_daily_units
        self.tiktok_limit = tiktok_limit
        self._tiktok_calls: dict[str, deque[float]] = {"user.info": deque(), "video.list": deque()}
        self.youtube_units: Counter[str] = Counter()  # Pacific day -> units spent
        self.gone: set[str] = set()
        self.instagram_throttled: dict[str, int] = {}  # account id -> minutes to regain access
        self.instagram_accounts: set[str] = set()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._local = threading.local()
        self._spotify_calls: deque[float] = deque()
        self.spotify_peak_window = 0
        self.calls: Counter[tuple[str, str]] = Counter()
        self.account_calls: Counter[tuple[str, str]] = Counter()
        self.violations: list[dict[str, Any]] = []
        self.log: list[tuple[float, str, str, int]] = []  # (arrival, provider, endpoint, status), monotonic
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return

            def do_GET(self) -> None:
                fake._handle(self)

            def do_POST(self) -> None:
                fake._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.request_queue_size = 256
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> QuotaFakeProviders:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    # ------------------------------------------------------------------------------------ bookkeeping

    def reset_counts(self) -> None:
        with self._lock:
            self.calls.clear()
            self.account_calls.clear()
            self.violations.clear()
            self.log.clear()
            self._spotify_calls.clear()
            self.spotify_peak_window = 0

    def provider_calls(self, provider: str) -> int:
        return sum(n for (p, _), n in self.calls.items() if p == provider)

    def _count(self, provider: str, endpoint: str, status: int, account: str | None = None) -> None:
        with self._lock:
            self.calls[(provider, endpoint)] += 1
            if account:
                self.account_calls[(provider, account)] += 1
            self.log.append((getattr(self._local, "arrival", time.monotonic()), provider, endpoint, status))

    def _violation(self, provider: str, what: str) -> None:
        with self._lock:
            self.violations.append({"provider": provider, "what": what, "at": time.time()})

    # ------------------------------------------------------------------------------------ HTTP

    def _handle(self, request: BaseHTTPRequestHandler) -> None:
        self._local.arrival = time.monotonic()
        length = int(request.headers.get("Content-Length") or 0)
        self._local.body = request.rfile.read(length) if length else b""
        original = request.headers.get(ORIGINAL_URL_HEADER, "")
        parts = urlsplit(original)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        auth = request.headers.get("Authorization", "")
        token = auth.split(" ", 1)[1] if " " in auth else ""
        owner = token[len(TOKEN_PREFIX):] if token.startswith(TOKEN_PREFIX) else None
        low, high = self.latency
        if high > 0:
            time.sleep(low + (high - low) * self._rng.random())
        try:
            status, body, headers = self._route(request.command, parts.netloc, parts.path, query, owner)
        except Exception as exc:  # a fake answers 500 rather than hang up
            status, body, headers = 500, {"error": {"status": 500, "message": f"fake error: {exc}"}}, {}
        raw = json.dumps(body).encode()
        try:
            request.send_response(status)
            request.send_header("Content-Type", "application/json")
            request.send_header("Content-Length", str(len(raw)))
            for key, value in headers.items():
                request.send_header(key, value)
            request.end_headers()
            request.wfile.write(raw)
        except OSError:
            pass

    def _route(self, method: str, host: str, path: str, query: dict[str, str], owner: str | None
               ) -> tuple[int, Any, dict[str, str]]:
        if host == "open.tiktokapis.com":
            return self._tiktok(path, query, owner)
        if (method == "POST" and path.endswith("/token")) or path.endswith("access_token"):
            return 200, {"access_token": f"{TOKEN_PREFIX}{owner or 'refreshed'}", "token_type": "Bearer",
                         "expires_in": 3600, "refresh_token": "refresh-fake"}, {}
        if host == "api.spotify.com":
            return self._spotify(path, query)
        if host == "www.googleapis.com":
            return self._youtube_data(path, query)
        if host == "youtubeanalytics.googleapis.com":
            return self._youtube_analytics(query, owner)
        if host == "graph.instagram.com":
            return self._instagram(path, query)
        if host == "api.soundcloud.com":
            return self._soundcloud(path, owner)
        return 404, {"error": {"status": 404, "message": f"no fake for {host}{path}"}}, {}

    # ------------------------------------------------------------------------------------ Spotify

    def _spotify(self, path: str, query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        now = time.monotonic()
        with self._lock:
            window = self._spotify_calls
            while window and window[0] <= now - self.spotify_window:
                window.popleft()
            if self.spotify_limit is not None and len(window) >= self.spotify_limit:
                retry = max(1, int(window[0] + self.spotify_window - now) + 1)
                over = True
            else:
                window.append(now)
                self.spotify_peak_window = max(self.spotify_peak_window, len(window))
                over = False
        endpoint = "artists.several" if path == "/v1/artists" else (
            "artists.albums" if path.endswith("/albums") else "artists.get")
        artist = path.split("/")[3] if path.count("/") >= 3 else None
        if over:
            self._count("spotify", endpoint, 429, artist)
            self._violation("spotify", f"more than {self.spotify_limit} calls in {self.spotify_window:.0f} s")
            return 429, {"error": {"status": 429, "message": "API rate limit exceeded"}}, {"Retry-After": str(retry)}
        if endpoint == "artists.several":
            ids = [i for i in query.get("ids", "").split(",") if i]
            self._count("spotify", endpoint, 200)
            return 200, {"artists": [None if i in self.gone else _spotify_artist(i) for i in ids]}, {}
        self._count("spotify", endpoint, 200, artist)
        if artist in self.gone:
            return 404, {"error": {"status": 404, "message": "Resource not found"}}, {}
        if endpoint == "artists.albums":
            limit = int(query.get("limit", "20"))
            total = 3 + sum(map(ord, artist or "")) % 40
            return 200, {"href": f"https://api.spotify.com{path}", "limit": limit, "next": None, "offset": 0,
                         "previous": None, "total": total, "items": []}, {}
        return 200, _spotify_artist(artist or ""), {}

    # ------------------------------------------------------------------------------------ YouTube

    def _youtube_data(self, path: str, query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        day = datetime.now(PACIFIC).date().isoformat()
        with self._lock:
            exhausted = self.youtube_units[day] + 1 > self.youtube_daily_units
            if not exhausted:
                self.youtube_units[day] += 1
        if exhausted:
            self._count("youtube", "channels.list", 403)
            self._violation("youtube", "Data API call beyond the day's units")
            error = {"message": YOUTUBE_QUOTA_MESSAGE, "domain": "youtube.quota", "reason": "quotaExceeded"}
            return 403, {"error": {"code": 403, "message": YOUTUBE_QUOTA_MESSAGE, "errors": [error]}}, {}
        ids = [i for i in query.get("id", "").split(",") if i]
        self._count("youtube", "channels.list", 200)
        items = [_youtube_channel(i) for i in ids if i not in self.gone]
        return 200, {"kind": "youtube#channelListResponse", "etag": "fake",
                     "pageInfo": {"totalResults": len(items), "resultsPerPage": len(items)}, "items": items}, {}

    def _youtube_analytics(self, query: dict[str, str], owner: str | None) -> tuple[int, Any, dict[str, str]]:
        channel = query.get("ids", "").removeprefix("channel==")
        self._count("youtube", "reports.query", 200, channel)
        if owner != channel:
            error = {"message": "Forbidden", "domain": "global", "reason": "forbidden"}
            return 403, {"error": {"code": 403, "message": "Forbidden", "errors": [error]}}, {}
        start, end = date.fromisoformat(query["startDate"]), date.fromisoformat(query["endDate"])
        last = end - timedelta(days=2)
        rows = [[(start + timedelta(days=d)).isoformat(), 1000 + d, 3000 + d, 5, 1]
                for d in range((last - start).days + 1)]
        headers = [{"name": n, "columnType": "DIMENSION" if n == "day" else "METRIC",
                    "dataType": "STRING" if n == "day" else "INTEGER"}
                   for n in ("day", "views", "estimatedMinutesWatched", "subscribersGained", "subscribersLost")]
        body: dict[str, Any] = {"kind": "youtubeAnalytics#resultTable", "columnHeaders": headers}
        if rows:
            body["rows"] = rows
        return 200, body, {}

    # ------------------------------------------------------------------------------------ Instagram

    def _instagram(self, path: str, query: dict[str, str]) -> tuple[int, Any, dict[str, str]]:
        segments = [s for s in path.split("/") if s]
        if segments and segments[0].startswith("v") and "." in segments[0]:
            segments = segments[1:]
        account = segments[0] if segments else ""
        endpoint = "insights" if len(segments) > 1 and segments[1] == "insights" else "profile"
        with self._lock:
            self.instagram_accounts.add(account)
            used = self.account_calls[("instagram", account)] + 1
            users = max(1, len(self.instagram_accounts))
            app_calls = self.provider_calls("instagram") + 1
        buc = {"type": "instagram", "call_count": min(100, used * 100 // 4800), "total_cputime": 0, "total_time": 0,
               "estimated_time_to_regain_access": 0}
        app = {"call_count": min(100, app_calls * 100 // (200 * users)), "total_cputime": 0, "total_time": 0}
        if account in self.instagram_throttled:
            buc.update(call_count=100, estimated_time_to_regain_access=self.instagram_throttled[account])
        headers = {"X-App-Usage": json.dumps(app), "X-Business-Use-Case-Usage": json.dumps({account: [buc]})}
        self._count("instagram", endpoint, 200, account)
        if account in self.instagram_throttled:
            self._violation("instagram", f"account {account} beyond its Business Use Case limit")
            error = {"message": "There have been too many calls to this Instagram account. Wait a bit and try again.",
                     "type": "OAuthException", "code": 80002, "fbtrace_id": "Afake"}
            return 400, {"error": error}, headers
        if endpoint == "profile":
            return 200, {"followers_count": 5000 + int(account[-3:] or 0), "media_count": 120, "id": account}, headers
        metrics = query.get("metric", "").split(",")
        since = datetime.fromtimestamp(int(query["since"]), UTC)
        until = datetime.fromtimestamp(int(query["until"]), UTC)
        data = []
        for name in metrics:
            entry: dict[str, Any] = {"name": name, "period": "day", "title": name, "description": name,
                                     "id": f"{account}/insights/{name}/day"}
            if query.get("metric_type") == "total_value":
                entry["total_value"] = {"value": 321}
            else:
                days = (until - since).days
                entry["values"] = [{"value": 900 + d, "end_time": (since + timedelta(days=d + 1)).strftime(
                    "%Y-%m-%dT%H:%M:%S+0000")} for d in range(days)]
            data.append(entry)
        return 200, {"data": data}, headers

    # ------------------------------------------------------------------------------------ SoundCloud

    def _soundcloud(self, path: str, owner: str | None) -> tuple[int, Any, dict[str, str]]:
        if path == "/me":
            self._count("soundcloud", "me", 200, owner)
            if owner is None:
                return 401, {"code": 401, "message": "invalid_token"}, {}
            return 200, {"id": int(owner), "urn": f"soundcloud:users:{owner}", "username": f"user{owner}",
                         "permalink_url": f"https://soundcloud.com/user{owner}", "followers_count": 700,
                         "track_count": 3}, {}
        user = path.split("/")[2]
        self._count("soundcloud", "user_tracks", 200, user)
        tracks = [{"id": int(user) * 10 + t, "urn": f"soundcloud:tracks:{int(user) * 10 + t}", "title": f"Track {t}",
                   "playback_count": 100 * (t + 1)} for t in range(3)]
        return 200, {"collection": tracks}, {}


    # ------------------------------------------------------------------------------------ TikTok

    def _tiktok(self, path: str, query: dict[str, str], owner: str | None) -> tuple[int, Any, dict[str, str]]:
        ok = {"code": "ok", "message": "", "log_id": "fake-log-id"}
        if path == "/v2/oauth/token/":
            return 200, {"access_token": f"{TOKEN_PREFIX}refreshed", "expires_in": 7200, "open_id": "refreshed",
                         "refresh_expires_in": 15552000, "refresh_token": "refresh-fake",
                         "scope": "user.info.basic,user.info.stats,video.list", "token_type": "Bearer"}, {}
        endpoint = "user.info" if path == "/v2/user/info/" else "video.list" if path == "/v2/video/list/" else None
        if endpoint is None:
            return 404, {"data": {}, "error": {"code": "invalid_params", "message": f"no fake for {path}",
                                               "log_id": "fake-log-id"}}, {}
        now = time.monotonic()
        with self._lock:
            window = self._tiktok_calls[endpoint]
            while window and window[0] <= now - 60:
                window.popleft()
            over = len(window) >= self.tiktok_limit
            if not over:
                window.append(now)
        if over:
            self._count("tiktok", endpoint, 429, owner)
            self._violation("tiktok", f"more than {self.tiktok_limit} calls to {endpoint} in 60 s")
            return 429, {"data": {}, "error": {"code": "rate_limit_exceeded", "message": "API rate limit exceeded.",
                                               "log_id": "fake-log-id"}}, {}
        self._count("tiktok", endpoint, 200, owner)
        if owner is None:
            return 401, {"data": {}, "error": {"code": "access_token_invalid", "message": "Access token is invalid.",
                                               "log_id": "fake-log-id"}}, {}
        if endpoint == "user.info":
            seed = sum(map(ord, owner))
            return 200, {"data": {"user": {"open_id": owner, "display_name": f"user{owner[-4:]}",
                                           "follower_count": 1000 + seed % 90_000, "following_count": 100,
                                           "likes_count": 50_000 + seed, "video_count": 60}}, "error": ok}, {}
        # Three full pages of 20, newest first; the page follows from the cursor the body carries (none: the first).
        try:
            cursor = json.loads(getattr(self._local, "body", b"") or b"{}").get("cursor")
        except ValueError:
            cursor = None
        page = 0 if cursor is None else min(2, (TIKTOK_CURSOR - int(cursor)) // TIKTOK_PAGE_MS)
        videos = [{"id": f"74{page * 20 + n:017d}", "create_time": 1_760_000_000 - (page * 20 + n) * 86_400,
                   "title": f"Video {page * 20 + n}", "view_count": 10_000 + n, "like_count": 900, "comment_count": 40,
                   "share_count": 12} for n in range(20)]
        return 200, {"data": {"videos": videos, "cursor": TIKTOK_CURSOR - (page + 1) * TIKTOK_PAGE_MS,
                              "has_more": page < 2}, "error": ok}, {}


def _spotify_artist(artist_id: str) -> dict[str, Any]:
    return {
        "external_urls": {"spotify": f"https://open.spotify.com/artist/{artist_id}"},
        "followers": {"href": None, "total": 1000 + sum(map(ord, artist_id)) % 50_000},
        "genres": ["indie pop"], "href": f"https://api.spotify.com/v1/artists/{artist_id}", "id": artist_id,
        "images": [], "name": f"Artist {artist_id[-4:]}", "popularity": 40 + sum(map(ord, artist_id)) % 50,
        "type": "artist", "uri": f"spotify:artist:{artist_id}",
    }


def _youtube_channel(channel_id: str) -> dict[str, Any]:
    subscribers = 1000 + sum(map(ord, channel_id)) % 90_000
    return {
        "kind": "youtube#channel", "etag": f"etag-{channel_id}", "id": channel_id,
        "snippet": {"title": f"Channel {channel_id[-4:]}", "description": "", "publishedAt": "2015-01-01T00:00:00Z",
                    "thumbnails": {}, "localized": {"title": f"Channel {channel_id[-4:]}", "description": ""}},
        "statistics": {"viewCount": str(subscribers * 150), "subscriberCount": str(subscribers),
                       "hiddenSubscriberCount": False, "videoCount": "42"},
    }


def external_id(provider: str, n: int) -> str:
    """A valid id at `provider` for the bench's account number `n` (what each client's checks accept)."""
    if provider == "spotify":
        return f"0bench{n:016d}"
    if provider == "youtube":
        return f"UCbench{n:017d}"
    if provider == "instagram":
        return f"1784100{n:010d}"
    if provider == "tiktok":
        return f"-000bench{n:026d}"
    return str(100_000_000 + n)
