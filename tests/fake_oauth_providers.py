"""The providers' OAuth endpoints faked on loopback, for a handlers process reached through ARTI_PROVIDER_GATEWAY.

Requests arrive with their original URL in the X-Arti-Original-Url header (see arti/http.py). `connect(name)`
declares what a connect flow calls at that provider (token exchange, identity, and the revocation endpoint
where the provider documents one), answered with the payloads the unit tests use, shaped as the providers
document them. Every request is recorded; one nothing was declared for answers 404 and is recorded too.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from arti.http import ORIGINAL_URL_HEADER
from tests.unit.providers import payloads as p


@dataclass(frozen=True)
class Recorded:
    """One request the handlers sent to a provider."""

    method: str
    url: str
    body: bytes

    @property
    def form(self) -> dict[str, str]:
        return {k: v[0] for k, v in parse_qs(self.body.decode()).items()}


def _endpoint(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


CONNECT_ROUTES: dict[str, list[tuple[str, str, Any]]] = {
    "spotify": [("POST", "https://accounts.spotify.com/api/token", p.spotify_token()),
                ("GET", f"https://api.spotify.com/v1/artists/{p.SPOTIFY_ARTIST_ID}", p.spotify_artist())],
    "youtube": [("POST", "https://oauth2.googleapis.com/token", p.google_token()),
                ("GET", "https://www.googleapis.com/youtube/v3/channels", p.yt_channels()),
                ("POST", "https://oauth2.googleapis.com/revoke", {})],
    "instagram": [("POST", "https://api.instagram.com/oauth/access_token", p.ig_short_token()),
                  ("GET", "https://graph.instagram.com/access_token", p.ig_long_token()),
                  ("GET", "https://graph.instagram.com/me", p.ig_me())],
    "soundcloud": [("POST", "https://secure.soundcloud.com/oauth/token", p.sc_token()),
                   ("GET", "https://api.soundcloud.com/me", p.sc_me()),
                   ("POST", "https://secure.soundcloud.com/sign-out", {})],
    "tiktok": [("POST", "https://open.tiktokapis.com/v2/oauth/token/", p.tt_token()),
               ("GET", "https://open.tiktokapis.com/v2/user/info/", p.tt_user()),
               ("POST", "https://open.tiktokapis.com/v2/oauth/revoke/", {})],
}
"""What connecting an account calls at each provider, with the documented answers."""


class FakeOAuthProviders:
    """A loopback HTTP server standing in for the providers behind ARTI_PROVIDER_GATEWAY."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], tuple[int, Any]] = {}
        self.requests: list[Recorded] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def _route(self) -> None:
                original = self.headers.get(ORIGINAL_URL_HEADER, "")
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                with fake._lock:
                    fake.requests.append(Recorded(self.command, original, body))
                    missing = (404, {"error": "not_found", "message": f"no fake for {original}"})
                    status, answer = fake.routes.get((self.command, _endpoint(original)), missing)
                raw = json.dumps(answer).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            do_GET = _route
            do_POST = _route

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, method: str, url: str, body: Any, status: int = 200) -> None:
        with self._lock:
            self.routes[(method, _endpoint(url))] = (status, body)

    def connect(self, provider: str) -> FakeOAuthProviders:
        """Declare the endpoints a connect flow (and a revocation) uses at `provider`."""
        for method, url, body in CONNECT_ROUTES[provider]:
            self.answer(method, url, body)
        return self

    def calls(self, method: str, url: str) -> list[Recorded]:
        """The recorded requests to one endpoint (query ignored)."""
        with self._lock:
            return [r for r in self.requests if r.method == method and _endpoint(r.url) == _endpoint(url)]

    def __enter__(self) -> FakeOAuthProviders:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
