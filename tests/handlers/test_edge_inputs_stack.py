"""Issue 14, item 5, through the real edge (uvicorn + Caddy on loopback): the route catalog's hostile inputs,
host-derived redirects, Allow on a 405, and the request id a browser may read.

The same catalog as tests/handlers/test_edge_inputs.py, sent as a client sends it: Caddy forwards the Host
header and the raw path, uvicorn parses and decodes them. GoTrue is a permissive fake on loopback (every
admin call succeeds), so whatever got past the handlers' validation would show as a 2xx.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.edge_stack import EdgeStack
from tests.factories import World
from tests.handlers.edge_catalog import CATALOG, GOTRUE_USER_ID, PREFIX, run_matrix, served, world_ids

CORS_ORIGIN = "http://localhost:3000"  # in the Caddyfile's default ARTI_CORS_ORIGINS


@pytest.fixture
def permissive_gotrue() -> Iterator[str]:
    """GoTrue's admin API answering every call with a user (or {} for DELETE); its SUPABASE_URL."""

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            return

        def _answer(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            user = {"id": GOTRUE_USER_ID, "aud": "authenticated", "email": "new.user@example.test",
                    "app_metadata": {}, "user_metadata": {}, "created_at": "2026-11-30T00:00:00Z"}
            body = {} if self.command == "DELETE" else \
                {"users": [user], "aud": "authenticated"} if self.path.startswith("/auth/v1/admin/users?") else user
            raw = json.dumps(body).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(raw)))
            self.end_headers()
            self.wfile.write(raw)

        do_GET = do_POST = do_PUT = do_DELETE = _answer

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def stack(edge_factory: Callable[..., EdgeStack], permissive_gotrue: str) -> EdgeStack:
    """The real edge with every route reachable (Auth admin configured against the permissive fake)."""
    return edge_factory(SUPABASE_URL=permissive_gotrue, SUPABASE_SERVICE_ROLE_KEY=f"service-key-{uuid.uuid4().hex}")


def concrete(path: str) -> str:
    return path.replace("{provider}", "youtube").replace("{user_id}", GOTRUE_USER_ID)


async def test_hostile_input_through_caddy_is_a_json_4xx(stack: EdgeStack, world: World) -> None:
    secret = stack.env["SUPABASE_JWT_SECRET"]
    async with httpx.AsyncClient(base_url=stack.url(""), timeout=30.0) as client:
        for case in CATALOG:
            assert await run_matrix(client, case, world_ids(world), world.users, secret) > 0, case.key


def test_no_redirect_through_caddy_takes_the_host_header(stack: EdgeStack) -> None:
    with stack.client() as http:
        for path, methods in served().items():
            for method in sorted(methods - {"HEAD"}):
                for host in ("evil.example", "evil.example:8443"):
                    response = http.request(method, concrete(path) + "/", headers={"Host": host})
                    assert response.status_code == 404, (method, path, host, response.status_code)
                    assert "location" not in response.headers
                    assert response.json()["error"] == "not_found"


def test_a_405_through_caddy_lists_every_method_of_the_path(stack: EdgeStack) -> None:
    with stack.client() as http:
        for path, methods in served().items():
            for method in {"GET", "POST", "PUT", "PATCH", "DELETE"} - methods:
                response = http.request(method, concrete(path))
                assert response.status_code == 405, (method, path)
                assert {m.strip() for m in response.headers["allow"].split(",")} == methods, (method, path)
                assert response.json()["error"] == "method_not_allowed"


def test_a_listed_origin_may_read_the_request_id(stack: EdgeStack) -> None:
    with stack.client() as http:
        for method, path in (("GET", f"{PREFIX}/health/live"), ("GET", f"{PREFIX}/nope"),
                             ("POST", f"{PREFIX}/insights/ask")):  # a 200, a 404 and a 401
            response = http.request(method, path, headers={"Origin": CORS_ORIGIN, "X-Request-Id": "trace-1"})
            assert response.headers["access-control-allow-origin"] == CORS_ORIGIN, path
            exposed = {h.strip().lower() for h in response.headers["access-control-expose-headers"].split(",")}
            assert "x-request-id" in exposed, (path, exposed)
            assert response.headers["x-request-id"] == "trace-1", path
        other = http.get(f"{PREFIX}/health/live", headers={"Origin": "https://evil.example"})
        assert "access-control-expose-headers" not in other.headers
        assert "access-control-allow-origin" not in other.headers
