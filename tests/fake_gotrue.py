"""A fake of Supabase Auth's (GoTrue's) HTTP API on loopback: the JWKS and the admin users endpoints.

Shaped as GoTrue documents them: `GET /auth/v1/.well-known/jwks.json` publishes the project's asymmetric
signing key (ES256, with `kid`, `alg`, `use`), `GET /auth/v1/admin/users` answers `{"users": [...], "aud"}`
and `POST /auth/v1/admin/users` answers the created user. Admin calls need the service-role key as both
`apikey` and bearer, as GoTrue (behind the API gateway) requires. Every request is recorded.

It also signs user tokens with its private key, as a project with asymmetric JWT signing keys does.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm


class FakeGoTrue:
    """`url` is the project's SUPABASE_URL; `sign(sub, **claims)` issues an ES256 access token."""

    def __init__(self, service_role_key: str) -> None:
        self.service_role_key = service_role_key
        self.kid = f"fake-{uuid.uuid4().hex[:8]}"
        self._key = ec.generate_private_key(ec.SECP256R1())
        self.requests: list[tuple[str, str]] = []
        self.created: list[dict[str, Any]] = []
        public = json.loads(ECAlgorithm.to_jwk(self._key.public_key()))
        self.jwks = {"keys": [{**public, "kid": self.kid, "alg": "ES256", "use": "sig", "key_ops": ["verify"]}]}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                return

            def _send(self, status: int, body: Any) -> None:
                raw = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def _admin(self) -> bool:
                ok = (self.headers.get("apikey") == fake.service_role_key
                      and self.headers.get("Authorization") == f"Bearer {fake.service_role_key}")
                if not ok:
                    self._send(401, {"code": 401, "error_code": "no_authorization",
                                     "msg": "This endpoint requires a Bearer token"})
                return ok

            def do_GET(self) -> None:
                fake.requests.append(("GET", self.path))
                if self.path == "/auth/v1/.well-known/jwks.json":
                    self._send(200, fake.jwks)
                elif self.path.startswith("/auth/v1/admin/users"):
                    if self._admin():
                        self._send(200, {"users": fake.created, "aud": "authenticated"})
                else:
                    self._send(404, {"code": 404, "error_code": "not_found", "msg": "Not found"})

            def do_POST(self) -> None:
                fake.requests.append(("POST", self.path))
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                if self.path == "/auth/v1/admin/users":
                    if self._admin():
                        user = {"id": str(uuid.uuid4()), "aud": "authenticated", "role": "authenticated",
                                "email": body.get("email"), "app_metadata": body.get("app_metadata") or {},
                                "user_metadata": body.get("user_metadata") or {},
                                "created_at": "2026-11-30T00:00:00Z"}
                        fake.created.append(user)
                        self._send(200, user)
                else:
                    self._send(404, {"code": 404, "error_code": "not_found", "msg": "Not found"})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def sign(self, sub: str, **claims: Any) -> str:
        """An access token as GoTrue issues it with an asymmetric signing key."""
        now = int(time.time())
        payload = {"iss": f"{self.url}/auth/v1", "sub": sub, "aud": "authenticated", "role": "authenticated",
                   "iat": now, "exp": now + 600, "email": "", "app_metadata": {}, "user_metadata": {}, **claims}
        return jwt.encode(payload, self._key, algorithm="ES256", headers={"kid": self.kid})

    def admin_calls(self) -> list[tuple[str, str]]:
        return [(method, path) for method, path in self.requests if "/admin/" in path]

    def __enter__(self) -> FakeGoTrue:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
