"""The edge refuses hostile input with a JSON 4xx on every route, never a 5xx (issue 14, item 5).

Driven by tests/handlers/edge_catalog.py, which must list exactly the routes handlers.app.routes()
serves. Also here: no redirect ever takes its Location from the Host header (trailing slashes are a
JSON 404), and a 405 lists every method of its path in Allow.
"""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from typing import Any
from unittest.mock import ANY

import httpx
import psycopg
import pytest
import respx

from handlers.errors import to_response
from handlers.settings import HandlerSettings
from tests.factories import World
from tests.handlers.conftest import SERVICE_KEY, SUPABASE_URL, make_settings, running
from tests.handlers.edge_catalog import CATALOG, GOTRUE_USER_ID, PREFIX, run_matrix, served, world_ids

AUTH = f"{SUPABASE_URL}/auth/v1"
CASES = {case.key: case for case in CATALOG}
PROBED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def gotrue_user(user_id: str = GOTRUE_USER_ID) -> dict[str, Any]:
    return {"id": user_id, "aud": "authenticated", "role": "authenticated", "email": "new.user@example.test",
            "app_metadata": {"provider": "email"}, "user_metadata": {"full_name": "New User"},
            "created_at": "2026-11-20T10:00:00Z"}


def mock_gotrue(router: respx.MockRouter) -> None:
    """GoTrue's admin API answering success: whatever gets past our validation is visible as a 2xx."""
    router.get(f"{AUTH}/admin/users").respond(200, json={"users": [gotrue_user()], "aud": "authenticated"})
    router.post(f"{AUTH}/admin/users").respond(200, json=gotrue_user())
    router.post(f"{AUTH}/invite").respond(200, json=gotrue_user())
    router.route(url__regex=rf"^{re.escape(AUTH)}/admin/users/[^/?]+$", method__in=["GET", "PUT"]).respond(
        200, json=gotrue_user())
    router.route(url__regex=rf"^{re.escape(AUTH)}/admin/users/[^/?]+$", method="DELETE").respond(200, json={})


@pytest.fixture
def edge_settings(database_url: str) -> HandlerSettings:
    """Every route reachable: Auth admin configured (GoTrue faked), providers configured."""
    return make_settings(database_url, supabase_url=SUPABASE_URL, service_role_key=SERVICE_KEY)


@pytest.fixture
async def edge_client(edge_settings: HandlerSettings,
                      provider_api: respx.MockRouter) -> AsyncIterator[httpx.AsyncClient]:
    mock_gotrue(provider_api)
    settings = edge_settings
    async with httpx.AsyncClient() as outbound, running(settings, outbound) as client:
        yield client


def test_the_catalog_lists_exactly_the_served_routes() -> None:
    expected: dict[str, set[str]] = {}
    for case in CATALOG:
        expected.setdefault(PREFIX + case.path, set()).add(case.method)
        if case.method == "GET":
            expected[PREFIX + case.path].add("HEAD")
    assert served() == expected


@pytest.mark.parametrize("key", list(CASES))
async def test_hostile_input_is_a_json_4xx(key: str, edge_client: httpx.AsyncClient, edge_settings: HandlerSettings,
                                           world: World) -> None:
    secret = edge_settings.jwt_secret
    assert secret
    assert await run_matrix(edge_client, CASES[key], world_ids(world), world.users, secret) > 0


@pytest.mark.parametrize("path", sorted(served()))
async def test_trailing_slash_is_a_json_404_never_a_host_derived_redirect(path: str,
                                                                         edge_client: httpx.AsyncClient) -> None:
    concrete = path.replace("{provider}", "youtube").replace("{user_id}", GOTRUE_USER_ID)
    for variant in (concrete + "/", concrete + "//"):
        for method in sorted(served()[path]):
            response = await edge_client.request(method, variant, headers={"Host": "evil.example"})
            assert response.status_code == 404, (method, variant, response.status_code)
            assert "location" not in response.headers
            assert response.headers["x-request-id"]
            if method != "HEAD":
                assert response.json()["error"] == "not_found"


@pytest.mark.parametrize("path", sorted(served()))
async def test_a_405_lists_every_method_of_the_path(path: str, edge_client: httpx.AsyncClient) -> None:
    allowed = {case.method for case in CATALOG if PREFIX + case.path == path}
    if "GET" in allowed:
        allowed.add("HEAD")
    concrete = path.replace("{provider}", "youtube").replace("{user_id}", GOTRUE_USER_ID)
    refused = [m for m in PROBED_METHODS if m not in allowed]
    assert refused
    for method in refused:
        response = await edge_client.request(method, concrete)
        assert response.status_code == 405, (method, path)
        assert response.headers["x-request-id"]
        if method != "HEAD":
            assert response.json()["error"] == "method_not_allowed"
        assert {m.strip() for m in response.headers["allow"].split(",")} == allowed, (method, path)


@pytest.mark.parametrize("error", [
    psycopg.DataError("PostgreSQL text fields cannot contain NUL (0x00) bytes"),
    psycopg.errors.InvalidTextRepresentation("invalid input syntax for type uuid"),
    psycopg.errors.NumericValueOutOfRange("value out of range"),
])
def test_a_value_postgres_refuses_is_a_400_not_a_500(error: psycopg.Error) -> None:
    """The net under the input checks: whatever still reaches Postgres unstorable is the client's 400."""
    response = to_response(error, "req-1")
    assert response.status_code == 400
    assert json.loads(bytes(response.body)) == {"error": "invalid_request", "message": ANY}
