"""The local provider sandbox: provider-shaped HTTP on loopback, so that connect → sync → dashboard → ask can be
tried without a Spotify, Google, Meta, SoundCloud or TikTok app.

`ARTI_PROVIDER_SANDBOX=1` works in embedded mode only. Any other mode, or an API listener opened beyond loopback
(ARTI_HTTP_BIND), is refused at start with one line (`Settings.check_edge_security`, which `arti platform start`,
the handlers and this module's `main` call first). When it is on:

* the supervisor starts the sandbox as one more child (`python -m arti.sandbox`, bound to 127.0.0.1:
  ARTI_SANDBOX_PORT, 8090 by default; there is no option to bind elsewhere);
* the clients' consent URL is the sandbox's `/{provider}/authorize` (`Settings.provider_authorize_base`, derived
  from the sandbox, never a setting of its own). It checks the request as the provider would (the sandbox's client
  id, `response_type=code`, a state, a loopback `redirect_uri`, an S256 challenge where the provider requires one)
  and redirects straight back with a single-use code (10 minutes): no consent screen, nobody to sign in as.
  `&account=NAME` added to that URL connects another sandbox account (each provider has one per name; default
  `demo`);
* every server-side call (token exchange, identity, metrics, refresh, revocation) goes through
  ARTI_PROVIDER_GATEWAY, which sandbox mode sets to the sandbox: the original URL arrives in X-Arti-Original-Url
  (arti/http.py) and is answered in the provider's documented shape (the same shapes as the unit tests' payloads,
  tests/unit/providers/payloads.py, compared by tests/unit/test_sandbox.py), errors included;
* every provider's client id and secret are the sandbox's own (`sandbox-<provider>-client`, `-secret`), replacing
  any configured ones: no real credential is sent to it, and a real provider would refuse them.

Tokens are `sbx.<provider>.<account>.<kind>.<nonce>`: the sandbox keeps no state but its pending codes, so it can
be restarted without disconnecting anything. A token it did not issue (a real account's, connected before sandbox
mode was turned on) is refused as the provider refuses an invalid token: the sync marks that account
needs_reauth and writes no invented number into it.

Numbers are invented and deterministic: a function of the provider, the account and the day (running totals grow
day by day, daily flows have a weekly rhythm and, about one day in 30, a spike that anomaly detection finds), so
two syncs agree and a backfill has history. TikTok's video view counts grow with the clock, so the next day's sync
has daily views. The browser pages `/` (what this is) and `/connected` (where the OAuth flow lands in sandbox mode
unless ARTI_FRONTEND_URLS is set: the completion secret and the request that completes it) are plain HTML.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import html
import json
import logging
import math
import re
import secrets
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from arti.http import ORIGINAL_URL_HEADER
from arti.settings import SANDBOX_PROVIDERS, sandbox_client_id, sandbox_client_secret

log = logging.getLogger("arti.sandbox")

CODE_TTL_SECONDS = 600
DEFAULT_ACCOUNT = "demo"
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
EPOCH = date(2026, 1, 1)
"""Day 0 of the invented running totals."""
ACCESS_TTL = {"spotify": 3600, "youtube": 3599, "soundcloud": 3599, "tiktok": 7200}
INSTAGRAM_LONG_TTL = 5_183_944
_ACCOUNT = re.compile(r"[a-z0-9][a-z0-9-]{0,31}")
_SPOTIFY_ID = re.compile(r"[0-9A-Za-z]{1,64}")
_YT_CHANNEL = re.compile(r"UC[0-9A-Za-z_-]{22}")
_GRAPH_VERSION = re.compile(r"^/v[0-9]+\.[0-9]+(?=/)")
LOG_ID = "20261130000000SANDBOX0000000000000"


# --------------------------------------------------------------------------------------------- invented numbers


def _unit(*parts: object) -> float:
    """A number in [0, 1) fixed by `parts`."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _between(low: int, high: int, *parts: object) -> int:
    return low + int(_unit(*parts) * (high - low))


def running_total(key: tuple[str, ...], metric: str, day: date, low: int, high: int, per_day: float) -> int:
    """A count that grows day by day (followers, totals): its base and growth rate are fixed by the account."""
    base = _between(low, high, *key, metric, "base")
    rate = per_day * (0.5 + _unit(*key, metric, "rate"))
    n = (day - EPOCH).days
    return max(0, round(base + rate * n + rate * 0.3 * math.sin(n / 3.5)))


def daily_flow(key: tuple[str, ...], metric: str, day: date, low: int, high: int) -> int:
    """A day's activity (views, reach): a weekly rhythm, and a spike on about one day in 30."""
    base = _between(low, high, *key, metric, "base")
    n = day.toordinal()
    spike = 2.5 if _unit(*key, metric, "spike", n) < 0.033 else 1.0
    return max(0, round(base * (1 + 0.12 * math.sin(n * 2 * math.pi / 7)) * spike))


def _digits(count: int, *parts: object) -> str:
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()
    return str(int(digest, 16))[:count]


def youtube_channel_id(account: str) -> str:
    digest = hashlib.sha256(f"youtube|{account}".encode()).digest()
    return "UC" + base64.urlsafe_b64encode(digest).decode()[:22]


def instagram_user_id(account: str) -> str:
    return "17841" + _digits(12, "instagram", account)


def soundcloud_user_id(account: str) -> int:
    return int("7" + _digits(8, "soundcloud", account))


def tiktok_open_id(account: str) -> str:
    digest = hashlib.sha256(f"tiktok|{account}".encode()).digest()
    return "-000" + base64.urlsafe_b64encode(digest).decode()[:32]


# --------------------------------------------------------------------------------------------- replies


@dataclass
class Reply:
    """What the sandbox answers: JSON (`body`), an empty body (`body` None), HTML, or a redirect (`location`)."""

    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    html: str | None = None
    location: str | None = None


def _json(body: Any, status: int = 200, **headers: str) -> Reply:
    return Reply(status, body, dict(headers))


@dataclass(frozen=True)
class Grant:
    """A code handed out by /authorize, until it is exchanged (once) or expires."""

    provider: str
    account: str
    client_id: str
    redirect_uri: str
    code_challenge: str | None
    expires: float


@dataclass(frozen=True)
class Token:
    provider: str
    account: str
    kind: str


def issue(provider: str, account: str, kind: str) -> str:
    return f"sbx.{provider}.{account}.{kind}.{secrets.token_urlsafe(12)}"


def parse_token(value: str | None, provider: str, kind: str) -> Token | None:
    """The sandbox token `value`, if it is one of `provider`'s of that kind."""
    if not value:
        return None
    parts = value.split(".")
    if len(parts) != 5 or parts[0] != "sbx" or parts[1] != provider or parts[3] != kind:
        return None
    if not _ACCOUNT.fullmatch(parts[2]):
        return None
    return Token(provider, parts[2], kind)


def _s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in params]
    return urlunsplit(parts._replace(query=urlencode([*query, *params.items()])))


def _page(title: str, body: str, status: int = 200) -> Reply:
    document = (f"<!doctype html><html><head><meta charset=utf-8><title>{html.escape(title)}</title>"
                "<style>body{font:15px/1.5 system-ui,sans-serif;max-width:52rem;margin:2rem auto;padding:0 1rem}"
                "code,pre{background:#f3f3f3;padding:.1rem .3rem}pre{padding:.8rem;white-space:pre-wrap}</style>"
                f"</head><body><h1>{html.escape(title)}</h1>{body}</body></html>")
    return Reply(status, html=document, headers={"Referrer-Policy": "no-referrer", "Cache-Control": "no-store"})


# --------------------------------------------------------------------------------------------- the sandbox


class Sandbox:
    """The providers' consent pages and APIs, answered from invented, deterministic data (see the module doc)."""

    def __init__(self, *, entry_point: str = "http://localhost:8080",
                 now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.entry_point = entry_point.rstrip("/")
        self.now = now
        self._codes: dict[str, Grant] = {}
        self._lock = threading.Lock()

    # -- the browser's side ---------------------------------------------------------------------------------

    def browser(self, method: str, target: str) -> Reply:
        """A request the browser sends to the sandbox itself (no X-Arti-Original-Url)."""
        parts = urlsplit(target)
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        segments = [s for s in parts.path.split("/") if s]
        if method == "GET" and len(segments) == 2 and segments[1] == "authorize" and segments[0] in SANDBOX_PROVIDERS:
            return self.authorize(segments[0], query)
        if method == "GET" and parts.path in ("", "/"):
            return self.index()
        if method == "GET" and parts.path == "/connected":
            return self.connected(query)
        return _page("Not found", "<p>The provider sandbox has no such page.</p>", 404)

    def authorize(self, provider: str, query: dict[str, str]) -> Reply:
        """The consent step: checked as the provider checks it, then straight back to redirect_uri with a code."""
        id_param = "client_key" if provider == "tiktok" else "client_id"
        if query.get(id_param) != sandbox_client_id(provider):
            return _page("Unknown application", f"<p>{id_param} is not the sandbox's {provider} application "
                         f"(<code>{sandbox_client_id(provider)}</code>).</p>", 400)
        redirect_uri = query.get("redirect_uri", "")
        target = urlsplit(redirect_uri)
        if target.scheme not in ("http", "https") or target.hostname not in LOOPBACK_HOSTS or target.fragment:
            return _page("Redirect refused", "<p>The sandbox sends the browser back to loopback addresses only "
                         f"(localhost, 127.0.0.1, [::1]); redirect_uri was <code>{html.escape(redirect_uri)}</code>."
                         "</p>", 400)
        state = query.get("state")
        if not state:
            return _page("No state", "<p>The request carries no state.</p>", 400)
        if query.get("response_type") != "code":
            return Reply(302, location=_with_query(redirect_uri, error="unsupported_response_type", state=state))
        challenge = query.get("code_challenge") or None
        if challenge is not None and query.get("code_challenge_method") != "S256":
            return Reply(302, location=_with_query(redirect_uri, error="invalid_request", state=state,
                                                   error_description="code_challenge_method must be S256"))
        if provider == "soundcloud" and challenge is None:
            return Reply(302, location=_with_query(redirect_uri, error="invalid_request", state=state,
                                                   error_description="PKCE is required"))
        account = query.get("account", DEFAULT_ACCOUNT)
        if not _ACCOUNT.fullmatch(account):
            return _page("Unknown account", "<p>account: 1 to 32 lower-case letters, digits or dashes.</p>", 400)
        code = secrets.token_urlsafe(24)
        with self._lock:
            now = time.monotonic()
            self._codes = {k: g for k, g in self._codes.items() if g.expires > now}
            self._codes[code] = Grant(provider, account, query[id_param], redirect_uri, challenge,
                                      now + CODE_TTL_SECONDS)
        log.info("%s: consent for sandbox account %r, back to %s", provider, account, target.netloc)
        return Reply(302, location=_with_query(redirect_uri, code=code, state=state))

    def index(self) -> Reply:
        rows = "".join(f"<li><code>/{p}/authorize</code></li>" for p in SANDBOX_PROVIDERS)
        return _page("ARTi provider sandbox", (
            "<p>Not a real provider: an embedded-mode stand-in (ARTI_PROVIDER_SANDBOX=1) that answers the OAuth "
            "consent and the APIs of Spotify, YouTube, Instagram, SoundCloud and TikTok with invented numbers, on "
            f"loopback only.</p><p>Consent pages:</p><ul>{rows}</ul>"
            f"<p>Start a connection at <code>{html.escape(self.entry_point)}/functions/v1/oauth/&lt;provider&gt;"
            "/start</code> with a manager's token (see the README, First run).</p>"))

    def connected(self, query: dict[str, str]) -> Reply:
        """Where the OAuth flow sends the browser back in sandbox mode (a frontend's job otherwise)."""
        status, provider = query.get("status", ""), query.get("provider", "")
        completion = query.get("completion")
        if status != "pending" or not completion or provider not in SANDBOX_PROVIDERS:
            return _page("Connection not completed", f"<p>status <code>{html.escape(status)}</code>"
                         f"{' (' + html.escape(query['reason']) + ')' if query.get('reason') else ''}.</p>")
        url = f"{self.entry_point}/functions/v1/oauth/{provider}/complete"
        body = json.dumps({"completion": completion})
        command = (f"curl -X POST {url} -H \"Authorization: Bearer $JWT\" "
                   f"-H 'Content-Type: application/json' -d '{body}'")
        return _page(f"{provider}: consent given", (
            "<p>The platform parked the connection. The user who started it completes it within 10 minutes (a "
            "frontend does this at once), with the same JWT:</p>"
            f"<pre>{html.escape(command)}</pre><p>The account's backfill sync is then queued.</p>"))

    # -- the platform's side (through ARTI_PROVIDER_GATEWAY) -----------------------------------------------

    def api(self, method: str, url: str, headers: dict[str, str], body: bytes) -> Reply:
        """A provider request the platform sent through the gateway (`url` is the original URL)."""
        parts = urlsplit(url)
        host, path = parts.hostname or "", parts.path
        query = dict(parse_qsl(parts.query, keep_blank_values=True))
        form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)) \
            if "json" not in headers.get("content-type", "") else {}
        route = ROUTES.get(host)
        if route is None:
            return _json({"error": "not_found", "message": f"the sandbox does not serve {host}"}, 404)
        return route(self, method, path, query, form, headers, body)

    # OAuth: the code exchange and refresh every provider shares, in its own shape ---------------------------

    def _client_ok(self, provider: str, form: dict[str, str], headers: dict[str, str]) -> bool:
        id_key = "client_key" if provider == "tiktok" else "client_id"
        basic = headers.get("authorization", "")
        if basic.lower().startswith("basic "):
            try:
                user, _, password = base64.b64decode(basic[6:]).decode().partition(":")
            except ValueError:
                return False
            return user == sandbox_client_id(provider) and password == sandbox_client_secret(provider)
        return form.get(id_key) == sandbox_client_id(provider) and \
            form.get("client_secret") == sandbox_client_secret(provider)

    def _redeem(self, provider: str, form: dict[str, str]) -> tuple[str | None, str | None]:
        """(account, None) for a valid code, else (None, why). The code is spent whatever the outcome."""
        with self._lock:
            grant = self._codes.pop(form.get("code", ""), None)
        if grant is None or grant.provider != provider or grant.expires <= time.monotonic():
            return None, "the authorization code is unknown, used or expired"
        if form.get("redirect_uri") != grant.redirect_uri:
            return None, "redirect_uri differs from the one of the authorization request"
        if grant.code_challenge is not None:
            verifier = form.get("code_verifier")
            if not verifier or _s256(verifier) != grant.code_challenge:
                return None, "code_verifier does not match the code_challenge"
        return grant.account, None

    def token_grant(self, provider: str, form: dict[str, str],
                    headers: dict[str, str]) -> tuple[str | None, Reply | None]:
        """The account a token request is for, or the OAuth error reply (RFC 6749 section 5.2)."""
        if not self._client_ok(provider, form, headers):
            return None, _json({"error": "invalid_client", "error_description": "unknown client or wrong secret"},
                               401)
        grant_type = form.get("grant_type")
        if grant_type == "authorization_code":
            account, why = self._redeem(provider, form)
        elif grant_type == "refresh_token":
            token = parse_token(form.get("refresh_token"), provider, "refresh")
            account, why = (token.account, None) if token else (None, "the refresh token was not issued here")
        else:
            return None, _json({"error": "unsupported_grant_type", "error_description": str(grant_type)}, 400)
        if account is None:
            return None, _json({"error": "invalid_grant", "error_description": why}, 400)
        return account, None

    @staticmethod
    def bearer(headers: dict[str, str], provider: str, scheme: str = "bearer") -> Token | None:
        value = headers.get("authorization", "")
        prefix, _, token = value.partition(" ")
        return parse_token(token.strip(), provider, "access") if prefix.lower() == scheme else None

    def today(self) -> date:
        return self.now().date()


# --------------------------------------------------------------------------------------------- Spotify


def spotify_artist(artist_id: str, today: date) -> dict[str, Any]:
    key = ("spotify", artist_id)
    name = f"Sandbox Artist {artist_id[-4:]}"
    return {
        "external_urls": {"spotify": f"https://open.spotify.com/artist/{artist_id}"},
        "followers": {"href": None, "total": running_total(key, "followers", today, 4_000, 90_000, 40)},
        "genres": ["indie pop"] if _unit(*key, "genre") < 0.5 else ["electronic"],
        "href": f"https://api.spotify.com/v1/artists/{artist_id}",
        "id": artist_id,
        "images": [{"url": "https://i.scdn.co/image/sandbox", "height": 640, "width": 640}],
        "name": name,
        "popularity": min(100, 30 + _between(0, 30, *key, "pop") + (today - EPOCH).days // 60),
        "type": "artist",
        "uri": f"spotify:artist:{artist_id}",
    }


def _spotify_error(status: int, message: str) -> Reply:
    return _json({"error": {"status": status, "message": message}}, status)


def _spotify(sb: Sandbox, method: str, path: str, query: dict[str, str], form: dict[str, str],
             headers: dict[str, str], body: bytes) -> Reply:
    token = sb.bearer(headers, "spotify")
    if token is None:
        return _spotify_error(401, "Invalid access token")
    today = sb.today()
    if method == "GET" and path == "/v1/me":
        user = f"sandbox-{token.account}"
        return _json({
            "country": "SE", "display_name": f"Sandbox user ({token.account})",
            "explicit_content": {"filter_enabled": False, "filter_locked": False},
            "external_urls": {"spotify": f"https://open.spotify.com/user/{user}"},
            "followers": {"href": None, "total": 4}, "href": f"https://api.spotify.com/v1/users/{user}",
            "id": user, "images": [], "product": "premium", "type": "user", "uri": f"spotify:user:{user}"})
    if method == "GET" and path == "/v1/artists":
        ids = [i for i in query.get("ids", "").split(",") if i]
        if not ids or len(ids) > 50 or not all(_SPOTIFY_ID.fullmatch(i) for i in ids):
            return _spotify_error(400, "invalid ids")
        return _json({"artists": [spotify_artist(i, today) for i in ids]})
    match = re.fullmatch(r"/v1/artists/([^/]+)(/albums)?", path)
    if method == "GET" and match:
        artist_id = match.group(1)
        if not _SPOTIFY_ID.fullmatch(artist_id):
            return _spotify_error(400, "invalid id")
        if not match.group(2):
            return _json(spotify_artist(artist_id, today))
        return _json(spotify_albums(artist_id, today, query))
    return _spotify_error(404, "Service not found")


def spotify_albums(artist_id: str, today: date, query: dict[str, str]) -> dict[str, Any]:
    total = 3 + _between(0, 10, "spotify", artist_id, "releases") + (today - EPOCH).days // 90
    limit = min(50, max(1, int(query.get("limit", "20") or 20)))
    offset = max(0, int(query.get("offset", "0") or 0))
    base = f"https://api.spotify.com/v1/artists/{artist_id}/albums"
    items = [{
        "album_type": "single", "total_tracks": 1,
        "external_urls": {"spotify": f"https://open.spotify.com/album/sbx{artist_id[-4:]}{n}"},
        "href": f"https://api.spotify.com/v1/albums/sbx{artist_id[-4:]}{n}", "id": f"sbx{artist_id[-4:]}{n}",
        "images": [], "name": f"Sandbox Single {n + 1}", "release_date": (EPOCH + timedelta(days=20 * n)).isoformat(),
        "release_date_precision": "day", "type": "album", "uri": f"spotify:album:sbx{artist_id[-4:]}{n}",
        "artists": [{"id": artist_id, "name": f"Sandbox Artist {artist_id[-4:]}", "type": "artist"}],
        "album_group": "single",
    } for n in range(offset, min(total, offset + limit))]
    groups = query.get("include_groups", "album,single")
    following = offset + limit
    return {
        "href": f"{base}?offset={offset}&limit={limit}&include_groups={groups}", "limit": limit,
        "next": f"{base}?offset={following}&limit={limit}&include_groups={groups}" if following < total else None,
        "offset": offset, "previous": None, "items": items, "total": total,
    }


def _spotify_accounts(sb: Sandbox, method: str, path: str, query: dict[str, str], form: dict[str, str],
                      headers: dict[str, str], body: bytes) -> Reply:
    if method != "POST" or path != "/api/token":
        return _json({"error": "not_found", "error_description": path}, 404)
    account, error = sb.token_grant("spotify", form, headers)
    if error is not None:
        return error
    assert account is not None
    reply: dict[str, Any] = {"access_token": issue("spotify", account, "access"), "token_type": "Bearer",
                             "scope": "user-read-private", "expires_in": ACCESS_TTL["spotify"]}
    if form.get("grant_type") == "authorization_code":  # a refresh answer carries none: the old one is kept
        reply["refresh_token"] = issue("spotify", account, "refresh")
    return _json(reply)


# --------------------------------------------------------------------------------------------- YouTube (Google)


def youtube_channel(channel_id: str, today: date) -> dict[str, Any]:
    key = ("youtube", channel_id)
    subscribers = running_total(key, "subscribers", today, 8_000, 200_000, 60)
    title = f"Sandbox Channel {channel_id[-4:]}"
    return {
        "kind": "youtube#channel", "etag": f"sbx-{channel_id[-6:]}", "id": channel_id,
        "snippet": {
            "title": title, "description": "An invented channel of the ARTi provider sandbox.",
            "customUrl": f"@sandbox{channel_id[-4:].lower()}", "publishedAt": "2015-01-01T00:00:00Z",
            "thumbnails": {"default": {"url": "https://yt3.ggpht.com/sandbox", "width": 88, "height": 88}},
            "localized": {"title": title, "description": "An invented channel of the ARTi provider sandbox."},
            "country": "GB",
        },
        "statistics": {
            # YouTube rounds subscriberCount to three significant figures, and sends counts as strings.
            "viewCount": str(running_total(key, "views_total", today, 1_000_000, 40_000_000, 20_000)),
            "subscriberCount": str(int(float(f"{subscribers:.3g}"))),
            "hiddenSubscriberCount": False,
            "videoCount": str(running_total(key, "videos", today, 20, 300, 0.1)),
        },
    }


def _google_error(code: int, message: str, reason: str, status: str) -> Reply:
    return _json({"error": {"code": code, "message": message, "errors": [
        {"message": message, "domain": "global", "reason": reason}], "status": status}}, code)


def _youtube_data(sb: Sandbox, method: str, path: str, query: dict[str, str], form: dict[str, str],
                  headers: dict[str, str], body: bytes) -> Reply:
    token = sb.bearer(headers, "youtube")
    if token is None:
        return _google_error(401, "Request had invalid authentication credentials.", "authError", "UNAUTHENTICATED")
    if method != "GET" or path != "/youtube/v3/channels":
        return _google_error(404, "Not Found", "notFound", "NOT_FOUND")
    if query.get("mine") == "true":
        ids = [youtube_channel_id(token.account)]
    else:
        ids = [i for i in query.get("id", "").split(",") if i]
        if not ids or len(ids) > 50:
            return _google_error(400, "Invalid id parameter.", "invalidParameter", "INVALID_ARGUMENT")
    # An id YouTube has no channel for is simply absent from the answer.
    items = [youtube_channel(i, sb.today()) for i in dict.fromkeys(ids) if _YT_CHANNEL.fullmatch(i)]
    return _json({"kind": "youtube#channelListResponse", "etag": "sbx-list",
                  "pageInfo": {"totalResults": len(items), "resultsPerPage": len(items)}, "items": items})


REPORT_COLUMNS = ("day", "views", "estimatedMinutesWatched", "subscribersGained", "subscribersLost")


def youtube_report_row(channel_id: str, day: date) -> list[Any]:
    key = ("youtube", channel_id)
    views = daily_flow(key, "views", day, 2_000, 40_000)
    gained = daily_flow(key, "subscribersGained", day, 20, 200)
    return [day.isoformat(), views, round(views * (2.5 + _unit(*key, "minutes") * 2)), gained,
            round(gained * 0.15)]


def _youtube_analytics(sb: Sandbox, method: str, path: str, query: dict[str, str], form: dict[str, str],
                       headers: dict[str, str], body: bytes) -> Reply:
    token = sb.bearer(headers, "youtube")
    if token is None:
        return _google_error(401, "Request had invalid authentication credentials.", "authError", "UNAUTHENTICATED")
    if method != "GET" or path != "/v2/reports":
        return _google_error(404, "Not Found", "notFound", "NOT_FOUND")
    channel = query.get("ids", "").removeprefix("channel==")
    if channel not in ("MINE", youtube_channel_id(token.account)):
        return _google_error(403, "Forbidden", "forbidden", "PERMISSION_DENIED")
    channel = youtube_channel_id(token.account)
    try:
        start, end = date.fromisoformat(query["startDate"]), date.fromisoformat(query["endDate"])
    except (KeyError, ValueError):
        return _google_error(400, "Invalid startDate or endDate.", "badRequest", "INVALID_ARGUMENT")
    days = [start + timedelta(days=i) for i in range(max(0, (min(end, sb.today()) - start).days + 1))]
    headers_ = [{"name": c, "columnType": "DIMENSION" if c == "day" else "METRIC",
                 "dataType": "STRING" if c == "day" else "INTEGER"} for c in REPORT_COLUMNS]
    return _json({"kind": "youtubeAnalytics#resultTable", "columnHeaders": headers_,
                  "rows": [youtube_report_row(channel, d) for d in days]})


def _google_oauth(sb: Sandbox, method: str, path: str, query: dict[str, str], form: dict[str, str],
                  headers: dict[str, str], body: bytes) -> Reply:
    if method == "POST" and path == "/revoke":
        token = form.get("token", "")
        if parse_token(token, "youtube", "refresh") or parse_token(token, "youtube", "access"):
            return _json({})
        return _json({"error": "invalid_token", "error_description": "Token expired or revoked"}, 400)
    if method != "POST" or path != "/token":
        return _json({"error": "not_found"}, 404)
    account, error = sb.token_grant("youtube", form, headers)
    if error is not None:
        return error
    assert account is not None
    reply: dict[str, Any] = {"access_token": issue("youtube", account, "access"), "expires_in": ACCESS_TTL["youtube"],
                             "scope": "https://www.googleapis.com/auth/youtube.readonly "
                                      "https://www.googleapis.com/auth/yt-analytics.readonly",
                             "token_type": "Bearer"}
    if form.get("grant_type") == "authorization_code":  # Google's refresh answers carry no refresh token
        reply["refresh_token"] = issue("youtube", account, "refresh")
    return _json(reply)


# --------------------------------------------------------------------------------------------- Instagram


def _graph_error(code: int, message: str, status: int = 400) -> Reply:
    return _json({"error": {"message": message, "type": "OAuthException", "code": code,
                            "fbtrace_id": "SandboxTrace"}}, status)


USAGE_HEADERS = {"X-App-Usage": json.dumps({"call_count": 1, "total_cputime": 1, "total_time": 1})}


def _instagram_graph(sb: Sandbox, method: str, path: str, query: dict[str, str], form: dict[str, str],
                     headers: dict[str, str], body: bytes) -> Reply:
    path = _GRAPH_VERSION.sub("", path)
    if method == "GET" and path == "/access_token":  # the short-lived token exchanged for a long-lived one
        short = parse_token(query.get("access_token"), "instagram", "short")
        if query.get("grant_type") != "ig_exchange_token" or query.get("client_secret") != \
                sandbox_client_secret("instagram") or short is None:
            return _graph_error(190, "Invalid OAuth access token - Cannot parse access token")
        return _json({"access_token": issue("instagram", short.account, "access"), "token_type": "bearer",
                      "expires_in": INSTAGRAM_LONG_TTL})
    if method == "GET" and path == "/refresh_access_token":
        current = parse_token(query.get("access_token"), "instagram", "access")
        if query.get("grant_type") != "ig_refresh_token" or current is None:
            return _graph_error(190, "Invalid OAuth access token - Cannot parse access token")
        return _json({"access_token": issue("instagram", current.account, "access"), "token_type": "bearer",
                      "expires_in": INSTAGRAM_LONG_TTL})
    token = sb.bearer(headers, "instagram")
    if token is None:
        return _graph_error(190, "Invalid OAuth access token - Cannot parse access token")
    user_id = instagram_user_id(token.account)
    usage = USAGE_HEADERS | {"X-Business-Use-Case-Usage": json.dumps({user_id: [{
        "type": "instagram", "call_count": 1, "total_cputime": 1, "total_time": 1,
        "estimated_time_to_regain_access": 0}]})}
    if method == "GET" and path == "/me":
        return Reply(200, {"user_id": user_id, "username": f"sandbox.{token.account}", "account_type": "BUSINESS",
                           "id": "7" + _digits(15, "instagram-app", token.account)}, usage)
    key = ("instagram", user_id)
    today = sb.today()
    if method == "GET" and path == f"/{user_id}":
        return Reply(200, {"followers_count": running_total(key, "followers", today, 3_000, 60_000, 25),
                           "media_count": running_total(key, "media_count", today, 50, 600, 0.3), "id": user_id},
                     usage)
    if method == "GET" and path == f"/{user_id}/insights":
        try:
            since = datetime.fromtimestamp(int(query["since"]), UTC).date()
            until = datetime.fromtimestamp(int(query["until"]), UTC).date()
        except (KeyError, ValueError):
            return _graph_error(100, "(#100) since and until are required")
        metrics = [m for m in query.get("metric", "").split(",") if m]
        days = [since + timedelta(days=i) for i in range((until - since).days)]
        data = []
        for name in metrics:
            entry: dict[str, Any] = {"name": name, "period": "day", "title": name.replace("_", " ").capitalize(),
                                     "description": f"Description of {name}.",
                                     "id": f"{user_id}/insights/{name}/day"}
            if query.get("metric_type") == "total_value":
                entry["total_value"] = {"value": sum(daily_flow(key, name, d, 800, 20_000) for d in days)}
            else:
                entry["values"] = [{"value": daily_flow(key, name, d, 800, 20_000),
                                    "end_time": f"{(d + timedelta(days=1)).isoformat()}T08:00:00+0000"}
                                   for d in days if d <= today]
            data.append(entry)
        return Reply(200, {"data": data, "paging": {
            "previous": f"https://graph.instagram.com/{user_id}/insights?since={query['since']}",
            "next": f"https://graph.instagram.com/{user_id}/insights?until={query['until']}"}}, usage)
    if re.fullmatch(r"/[0-9]+(/insights)?", path):
        # Another account's id: the token cannot read it.
        return _graph_error(100, "(#100) Unsupported get request: missing permissions")
    return _graph_error(100, f"(#100) Unknown path {path}", 404)


def _instagram_api(sb: Sandbox, method: str, path: str, query: dict[str, str], form: dict[str, str],
                   headers: dict[str, str], body: bytes) -> Reply:
    if method != "POST" or path != "/oauth/access_token":
        return _json({"error_type": "OAuthException", "code": 404, "error_message": "Unknown path"}, 404)
    account, error = sb.token_grant("instagram", form, headers)
    if error is not None:
        return _json({"error_type": "OAuthException", "code": 400,
                      "error_message": error.body.get("error_description", "invalid request")}, 400)
    assert account is not None
    return _json({"data": [{"access_token": issue("instagram", account, "short"),
                            "user_id": instagram_user_id(account),
                            "permissions": "instagram_business_basic,instagram_business_manage_insights"}]})


# --------------------------------------------------------------------------------------------- SoundCloud


def _sc_error(code: int, error_code: str, status: str) -> Reply:
    return _json({"code": code, "message": "", "link": "https://developers.soundcloud.com/docs/api/explorer/open-api",
                  "status": status, "errors": [{"error_message": error_code}], "error": None,
                  "error_code": error_code}, code)


def soundcloud_user(account: str, today: date) -> dict[str, Any]:
    user_id = soundcloud_user_id(account)
    key = ("soundcloud", str(user_id))
    return {
        "avatar_url": "https://i1.sndcdn.com/avatars-sandbox-large.jpg", "city": "Berlin", "country": "Germany",
        "description": None, "discogs_name": None, "first_name": "Sandbox",
        "followers_count": running_total(key, "followers", today, 1_000, 30_000, 8),
        "followings_count": 120, "full_name": f"Sandbox {account}", "id": user_id, "kind": "user",
        "last_modified": "2026/01/01 10:00:00 +0000", "last_name": account,
        "permalink": f"sandbox-{account}", "permalink_url": f"https://soundcloud.com/sandbox-{account}",
        "plan": "Pro Unlimited", "playlist_count": 2, "public_favorites_count": 12, "reposts_count": 3,
        "track_count": _track_count(user_id, today), "uri": f"https://api.soundcloud.com/users/{user_id}",
        "urn": f"soundcloud:users:{user_id}", "username": f"sandbox-{account}", "website": None,
    }


def _track_count(user_id: int, today: date) -> int:
    return 3 + _between(0, 6, "soundcloud", user_id, "tracks") + (today - EPOCH).days // 120


def soundcloud_track(user_id: int, n: int, today: date) -> dict[str, Any]:
    track_id = int(f"{user_id}{n:03d}")
    return {
        "kind": "track", "id": track_id, "urn": f"soundcloud:tracks:{track_id}", "title": f"Sandbox Track {n + 1}",
        "created_at": "2025/06/01 12:00:00 +0000", "duration": 201000, "access": "playable",
        "permalink_url": f"https://soundcloud.com/sandbox/track-{n + 1}",
        "playback_count": running_total(("soundcloud", str(track_id)), "plays", today, 2_000, 300_000, 150),
        "favoritings_count": 40, "comment_count": 2, "reposts_count": 1,
        "user": {"id": user_id, "kind": "user", "username": "sandbox"},
    }


def _soundcloud_api(sb: Sandbox, method: str, path: str, query: dict[str, str], form: dict[str, str],
                    headers: dict[str, str], body: bytes) -> Reply:
    token = sb.bearer(headers, "soundcloud", scheme="oauth")
    if token is None:
        return _sc_error(401, "invalid_token", "401 - Unauthorized")
    today = sb.today()
    if method == "GET" and path == "/me":
        return _json(soundcloud_user(token.account, today))
    match = re.fullmatch(r"/users/([0-9]+)/tracks", path)
    if method == "GET" and match:
        user_id = int(match.group(1))
        limit = min(200, max(1, int(query.get("limit", "50") or 50)))
        offset = max(0, int(query.get("offset", "0") or 0))
        total = _track_count(user_id, today)
        collection = [soundcloud_track(user_id, n, today) for n in range(offset, min(total, offset + limit))]
        following = offset + limit
        next_href = (f"https://api.soundcloud.com/users/{user_id}/tracks?linked_partitioning=true&limit={limit}"
                     f"&offset={following}") if following < total else None
        return _json({"collection": collection, "next_href": next_href})
    return _sc_error(404, "not_found", "404 - Not Found")


def _soundcloud_secure(sb: Sandbox, method: str, path: str, query: dict[str, str], form: dict[str, str],
                       headers: dict[str, str], body: bytes) -> Reply:
    if method == "POST" and path == "/sign-out":
        try:
            token = json.loads(body or b"{}").get("access_token")
        except (ValueError, AttributeError):
            token = None
        return _json({}) if parse_token(token, "soundcloud", "access") else _sc_error(401, "invalid_token",
                                                                                     "401 - Unauthorized")
    if method != "POST" or path != "/oauth/token":
        return _sc_error(404, "not_found", "404 - Not Found")
    account, error = sb.token_grant("soundcloud", form, headers)
    if error is not None:
        return error
    assert account is not None
    # Single-use refresh tokens: every answer carries the replacement.
    return _json({"access_token": issue("soundcloud", account, "access"), "expires_in": ACCESS_TTL["soundcloud"],
                  "scope": "", "token_type": "bearer", "refresh_token": issue("soundcloud", account, "refresh")})


# --------------------------------------------------------------------------------------------- TikTok


def _tt_error(status: int, code: str, message: str) -> Reply:
    return _json({"data": {}, "error": {"code": code, "message": message, "log_id": LOG_ID}}, status)


TT_OK = {"code": "ok", "message": "", "log_id": LOG_ID}
TT_VIDEO_FIELDS = ("id", "create_time", "title", "view_count", "like_count", "comment_count", "share_count")


def tiktok_videos(open_id: str, now: datetime) -> list[dict[str, Any]]:
    """Every public video of the account at `now`, newest first; lifetime counts grow with the clock."""
    key = ("tiktok", open_id)
    period = timedelta(hours=60 + _between(0, 60, *key, "period"))
    first = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=_between(0, 48, *key, "first"))
    videos = []
    n = 0
    while first + n * period <= now and n < 400:
        created = first + n * period
        hours = (now - created).total_seconds() / 3600
        rate = 40 + _between(0, 400, *key, "rate", n)
        views = round(rate * hours ** 0.85)
        videos.append({"id": f"74{_digits(10, *key)}{n:05d}", "create_time": int(created.timestamp()),
                       "title": f"Sandbox clip {n + 1}", "view_count": views, "like_count": views // 12,
                       "comment_count": views // 180, "share_count": views // 140})
        n += 1
    return videos[::-1]


def _tiktok(sb: Sandbox, method: str, path: str, query: dict[str, str], form: dict[str, str],
            headers: dict[str, str], body: bytes) -> Reply:
    if method == "POST" and path == "/v2/oauth/token/":
        account, error = sb.token_grant("tiktok", form, headers)
        if error is not None:
            assert isinstance(error.body, dict)
            return _json({**error.body, "log_id": LOG_ID}, error.status)
        assert account is not None
        # Rotated: a refresh answer's refresh token replaces the one sent.
        return _json({"access_token": issue("tiktok", account, "access"), "expires_in": ACCESS_TTL["tiktok"],
                      "open_id": tiktok_open_id(account), "refresh_expires_in": 15552000,
                      "refresh_token": issue("tiktok", account, "refresh"),
                      "scope": "user.info.basic,user.info.stats,video.list", "token_type": "Bearer"})
    if method == "POST" and path == "/v2/oauth/revoke/":
        if form.get("client_key") != sandbox_client_id("tiktok") or \
                form.get("client_secret") != sandbox_client_secret("tiktok"):
            return _json({"error": "invalid_client", "error_description": "unknown client", "log_id": LOG_ID}, 401)
        return Reply(200)  # an empty body
    token = sb.bearer(headers, "tiktok")
    if token is None:
        return _tt_error(401, "access_token_invalid", "The access token is invalid or not found in the request.")
    open_id = tiktok_open_id(token.account)
    now = sb.now()
    videos = tiktok_videos(open_id, now)
    if method == "GET" and path == "/v2/user/info/":
        key = ("tiktok", open_id)
        user = {"open_id": open_id, "union_id": f"sbx-{open_id[4:20]}", "display_name": f"sandbox.{token.account}",
                "follower_count": running_total(key, "followers", now.date(), 5_000, 120_000, 60),
                "following_count": 100 + _between(0, 400, *key, "following"),
                "likes_count": sum(v["like_count"] for v in videos), "video_count": len(videos)}
        fields = [f for f in query.get("fields", "").split(",") if f]
        return _json({"data": {"user": {k: v for k, v in user.items() if k in fields}}, "error": TT_OK})
    if method == "POST" and path == "/v2/video/list/":
        try:
            request = json.loads(body or b"{}")
            max_count = int(request.get("max_count", 20))
            cursor = request.get("cursor")
        except (ValueError, TypeError, AttributeError):
            return _tt_error(400, "invalid_params", "The request body is not valid JSON.")
        if not 1 <= max_count <= 20:
            return _tt_error(400, "invalid_params", "max_count must be between 1 and 20")
        older = [v for v in videos if cursor is None or v["create_time"] * 1000 < int(cursor)]
        page = older[:max_count]
        fields = [f for f in query.get("fields", "").split(",") if f] or list(TT_VIDEO_FIELDS)
        next_cursor = page[-1]["create_time"] * 1000 if page else int(now.timestamp() * 1000)
        return _json({"data": {"videos": [{k: v for k, v in video.items() if k in fields} for video in page],
                               "cursor": next_cursor, "has_more": len(older) > len(page)}, "error": TT_OK})
    return _tt_error(404, "invalid_params", f"unknown endpoint {path}")


Route = Callable[[Sandbox, str, str, dict[str, str], dict[str, str], dict[str, str], bytes], Reply]
ROUTES: dict[str, Route] = {
    "accounts.spotify.com": _spotify_accounts,
    "api.spotify.com": _spotify,
    "oauth2.googleapis.com": _google_oauth,
    "www.googleapis.com": _youtube_data,
    "youtubeanalytics.googleapis.com": _youtube_analytics,
    "api.instagram.com": _instagram_api,
    "graph.instagram.com": _instagram_graph,
    "secure.soundcloud.com": _soundcloud_secure,
    "api.soundcloud.com": _soundcloud_api,
    "open.tiktokapis.com": _tiktok,
}
"""The providers' hosts the clients call (arti/providers/*.py, handlers/provider_revoke.py) → their sandbox."""


# --------------------------------------------------------------------------------------------- the server


def make_server(sandbox: Sandbox, port: int) -> ThreadingHTTPServer:
    """The sandbox on 127.0.0.1:`port` (0: any free port). Loopback only: there is no other address to give."""

    class Handler(BaseHTTPRequestHandler):
        server_version = "arti-provider-sandbox"
        sys_version = ""

        def log_message(self, format: str, *args: Any) -> None:
            return  # requests carry codes and tokens in their URLs: nothing is logged per request

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(min(length, 1 << 20)) if length else b""
            original = self.headers.get(ORIGINAL_URL_HEADER)
            headers = {k.lower(): v for k, v in self.headers.items()}
            try:
                reply = sandbox.api(self.command, original, headers, body) if original \
                    else sandbox.browser(self.command, self.path)
            except Exception:  # a bug here must look like a provider's 500, not a dropped connection
                log.exception("sandbox error on %s %s", self.command, (original or self.path).split("?")[0])
                reply = _json({"error": "server_error", "message": "the sandbox failed"}, 500)
            self._send(reply)

        def _send(self, reply: Reply) -> None:
            if reply.location is not None:
                raw, kind = b"", None
            elif reply.html is not None:
                raw, kind = reply.html.encode(), "text/html; charset=utf-8"
            elif reply.body is None:
                raw, kind = b"", None
            else:
                raw, kind = json.dumps(reply.body).encode(), "application/json"
            self.send_response(reply.status)
            if reply.location is not None:
                self.send_header("Location", reply.location)
            if kind:
                self.send_header("Content-Type", kind)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = _handle
        do_POST = _handle

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    """`python -m arti.sandbox [--port P]`: what the supervisor runs in sandbox mode."""
    from arti.errors import ArtiError
    from arti.settings import get_settings

    parser = argparse.ArgumentParser(prog="python -m arti.sandbox", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, help="loopback port (default ARTI_SANDBOX_PORT, 8090)")
    args = parser.parse_args(argv)
    settings = get_settings()
    try:
        settings.check_edge_security()
        if not settings.provider_sandbox:
            raise ArtiError("the provider sandbox runs only with ARTI_PROVIDER_SANDBOX=1 (embedded mode)")
    except ArtiError as exc:
        print(f"arti sandbox: error: {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    port = args.port if args.port is not None else settings.sandbox_port
    server = make_server(Sandbox(entry_point=f"http://localhost:{settings.http_port}"), port)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    log.info("provider sandbox on http://127.0.0.1:%s (fake providers; embedded mode, loopback only)",
             server.server_address[1])
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
