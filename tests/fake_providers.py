"""A fake of the providers' HTTP APIs on loopback, for worker processes (ARTI_PROVIDER_GATEWAY).

Requests arrive with their original URL in the X-Arti-Original-Url header; answers are shaped as
the providers document them (the same payloads the unit tests use).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from arti.http import ORIGINAL_URL_HEADER
from tests.unit.providers import payloads


class FakeProviders:
    """Serve Spotify's API on a loopback port; `delay` slows the artist endpoint (to catch a job mid-flight)."""

    def __init__(self) -> None:
        self.delay = 0.0
        self.requests: list[tuple[str, str]] = []
        self.artist_status = 200
        self.followers = 10245
        self.in_artist_call = threading.Event()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(raw)

            def _route(self) -> None:
                original = self.headers.get(ORIGINAL_URL_HEADER, "")
                parts = urlsplit(original)
                fake.requests.append((self.command, original))
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                if parts.netloc == "accounts.spotify.com" and parts.path == "/api/token":
                    self._send(200, payloads.spotify_token(refresh_token=f"AQDrotated-{len(fake.requests)}"))
                elif parts.netloc == "api.spotify.com" and parts.path.endswith("/albums"):
                    self._send(200, payloads.spotify_albums_page(offset=0, count=3, total=3, next_url=None))
                elif parts.netloc == "api.spotify.com" and parts.path.startswith("/v1/artists/"):
                    fake.in_artist_call.set()
                    if fake.delay:
                        time.sleep(fake.delay)
                    if fake.artist_status != 200:
                        self._send(fake.artist_status, payloads.spotify_error(fake.artist_status, "fake error"),
                                   {"Retry-After": "1"} if fake.artist_status == 429 else None)
                        return
                    body = payloads.spotify_artist()
                    body["followers"]["total"] = fake.followers
                    self._send(200, body)
                else:
                    self._send(404, payloads.spotify_error(404, f"no fake for {original}"))

            do_GET = _route
            do_POST = _route

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeProviders:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
