"""User administration: platform admins only, through GoTrue's admin API (faked at the HTTP boundary)."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import jwt
import pytest
import respx
from cryptography.hazmat.primitives.asymmetric import ec
from jwt.algorithms import ECAlgorithm

from tests.factories import World
from tests.handlers.conftest import SERVICE_KEY, SUPABASE_URL, admin_bearer, bearer, make_settings, running

AUTH = f"{SUPABASE_URL}/auth/v1"
USER_ID = "a9c6f5d2-1c2e-4a4b-9a53-3d1e6b2f9c10"


def gotrue_user(user_id: str = USER_ID, email: str = "new.artist.manager@example.test", *,
                platform_admin: bool = False, full_name: str | None = "New Manager") -> dict[str, Any]:
    """A user object as GoTrue returns it (GET/PUT /admin/users/{id}, POST /admin/users, POST /invite)."""
    app_metadata: dict[str, Any] = {"provider": "email", "providers": ["email"]}
    if platform_admin:
        app_metadata["platform_admin"] = True
    return {
        "id": user_id,
        "aud": "authenticated",
        "role": "authenticated",
        "email": email,
        "email_confirmed_at": "2026-11-20T10:00:00.000000Z",
        "phone": "",
        "confirmed_at": "2026-11-20T10:00:00.000000Z",
        "last_sign_in_at": None,
        "app_metadata": app_metadata,
        "user_metadata": {"full_name": full_name} if full_name else {},
        "identities": [{"identity_id": str(uuid.uuid4()), "id": user_id, "user_id": user_id,
                        "identity_data": {"email": email, "sub": user_id}, "provider": "email",
                        "last_sign_in_at": None, "created_at": "2026-11-20T10:00:00Z",
                        "updated_at": "2026-11-20T10:00:00Z", "email": email}],
        "created_at": "2026-11-20T10:00:00.000000Z",
        "updated_at": "2026-11-20T10:00:00.000000Z",
        "is_anonymous": False,
    }


@pytest.fixture
async def cloud_client(database_url: str, provider_api: respx.MockRouter) -> AsyncIterator[httpx.AsyncClient]:
    """The app with an Auth server configured (SUPABASE_URL + service-role key)."""
    settings = make_settings(database_url, supabase_url=SUPABASE_URL, service_role_key=SERVICE_KEY)
    async with httpx.AsyncClient() as outbound, running(settings, outbound) as client:
        yield client


def sent_json(route: respx.Route) -> Any:
    return json.loads(route.calls.last.request.content)


def assert_service_auth(route: respx.Route) -> None:
    request = route.calls.last.request
    assert request.headers["apikey"] == SERVICE_KEY
    assert request.headers["authorization"] == f"Bearer {SERVICE_KEY}"
    assert request.headers["x-supabase-api-version"] == "2024-01-01"


ENDPOINTS = [("GET", "/functions/v1/admin/users", None), ("POST", "/functions/v1/admin/users", {"email": "x@y.test"}),
             ("GET", f"/functions/v1/admin/users/{USER_ID}", None),
             ("PATCH", f"/functions/v1/admin/users/{USER_ID}", {"platform_admin": True}),
             ("DELETE", f"/functions/v1/admin/users/{USER_ID}", None)]


@pytest.mark.parametrize("persona", ["owner", "admin", "manager", "viewer", "outsider"])
async def test_non_admins_are_refused(persona: str, cloud_client: httpx.AsyncClient, provider_api: respx.MockRouter,
                                      world: World) -> None:
    gotrue = provider_api.route(url__startswith=AUTH).respond(500)
    for method, path, body in ENDPOINTS:
        response = await cloud_client.request(method, path, json=body, headers=bearer(world.users[persona]))
        assert response.status_code == 403, (method, path)
        assert response.json()["error"] == "forbidden"
    assert not gotrue.called, "nothing reaches GoTrue for a non-admin"


async def test_user_metadata_cannot_make_an_admin(cloud_client: httpx.AsyncClient, provider_api: respx.MockRouter,
                                                  world: World) -> None:
    """Only app_metadata (service-role writable) counts, and only the JSON boolean true."""
    gotrue = provider_api.route(url__startswith=AUTH).respond(500)
    for claims in ({"user_metadata": {"platform_admin": True}},
                   {"app_metadata": {"platform_admin": "true"}},
                   {"app_metadata": {"platform_admin": 1}}):
        response = await cloud_client.get("/functions/v1/admin/users", headers=bearer(world.users["owner"], **claims))
        assert response.status_code == 403
    assert not gotrue.called


async def test_embedded_mode_answers_503(client: httpx.AsyncClient, world: World) -> None:
    for method, path, body in ENDPOINTS:
        response = await client.request(method, path, json=body, headers=admin_bearer(world.users["platform_admin"]))
        assert response.status_code == 503, (method, path)
        payload = response.json()
        assert payload["error"] == "auth_unavailable"
        assert "embedded mode" in payload["message"] and "arti users create/list" in payload["message"]


async def test_list_users(cloud_client: httpx.AsyncClient, provider_api: respx.MockRouter, world: World) -> None:
    route = provider_api.get(f"{AUTH}/admin/users").respond(
        200, json={"users": [gotrue_user(), gotrue_user(str(uuid.uuid4()), "ops@arti.test", platform_admin=True)],
                   "aud": "authenticated"},
        headers={"X-Total-Count": "2", "Link": f'<{AUTH}/admin/users?page=1&per_page=2>; rel="last"'})
    response = await cloud_client.get("/functions/v1/admin/users", params={"page": "1", "per_page": "2"},
                                      headers=admin_bearer(world.users["platform_admin"]))
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == 2 and body["page"] == 1 and body["per_page"] == 2
    assert [u["platform_admin"] for u in body["users"]] == [False, True]
    assert body["users"][0]["full_name"] == "New Manager"
    assert "identities" not in body["users"][0]
    assert dict(route.calls.last.request.url.params) == {"page": "1", "per_page": "2"}
    assert_service_auth(route)


async def test_create_user_with_password(cloud_client: httpx.AsyncClient, provider_api: respx.MockRouter,
                                         world: World) -> None:
    route = provider_api.post(f"{AUTH}/admin/users").respond(200, json=gotrue_user(platform_admin=True))
    response = await cloud_client.post(
        "/functions/v1/admin/users", headers=admin_bearer(world.users["platform_admin"]),
        json={"email": "New.Artist.Manager@Example.test", "password": "correct horse", "full_name": "New Manager",
              "platform_admin": True})
    assert response.status_code == 201, response.text
    assert response.json()["user"]["id"] == USER_ID and response.json()["invited"] is False
    assert sent_json(route) == {"email": "new.artist.manager@example.test", "password": "correct horse",
                                "email_confirm": True, "user_metadata": {"full_name": "New Manager"},
                                "app_metadata": {"platform_admin": True}}
    assert_service_auth(route)


async def test_invite_user(cloud_client: httpx.AsyncClient, provider_api: respx.MockRouter, world: World) -> None:
    invite = provider_api.post(f"{AUTH}/invite").respond(200, json=gotrue_user(full_name=None))
    response = await cloud_client.post("/functions/v1/admin/users", json={"email": "invitee@example.test"},
                                       headers=admin_bearer(world.users["platform_admin"]))
    assert response.status_code == 201
    assert response.json()["invited"] is True
    assert sent_json(invite) == {"email": "invitee@example.test", "data": {}}


async def test_gotrue_422_is_passed_on(cloud_client: httpx.AsyncClient, provider_api: respx.MockRouter,
                                       world: World) -> None:
    provider_api.post(f"{AUTH}/admin/users").respond(
        422, json={"code": "email_exists", "message": "A user with this email address has already been registered"},
        headers={"X-Supabase-Api-Version": "2024-01-01"})
    response = await cloud_client.post("/functions/v1/admin/users", headers=admin_bearer(world.users["platform_admin"]),
                                       json={"email": "taken@example.test", "password": "secret-1"})
    assert response.status_code == 422
    assert response.json() == {"error": "email_exists",
                               "message": "A user with this email address has already been registered"}


async def test_legacy_gotrue_errors_and_outages(cloud_client: httpx.AsyncClient, provider_api: respx.MockRouter,
                                                world: World) -> None:
    headers = admin_bearer(world.users["platform_admin"])
    provider_api.get(f"{AUTH}/admin/users/{USER_ID}").respond(
        404, json={"code": 404, "error_code": "user_not_found", "msg": "User not found"})
    missing = await cloud_client.get(f"/functions/v1/admin/users/{USER_ID}", headers=headers)
    assert missing.status_code == 404 and missing.json() == {"error": "user_not_found", "message": "User not found"}

    provider_api.get(f"{AUTH}/admin/users").mock(side_effect=httpx.ConnectError("refused"))
    down = await cloud_client.get("/functions/v1/admin/users", headers=headers)
    assert down.status_code == 502 and down.json()["error"] == "auth_unreachable"

    provider_api.put(f"{AUTH}/admin/users/{USER_ID}").respond(500, json={"code": 500, "msg": "Database error"})
    failed = await cloud_client.patch(f"/functions/v1/admin/users/{USER_ID}", json={"ban_duration": "24h"},
                                      headers=headers)
    assert failed.status_code == 502 and failed.json()["error"] == "auth_upstream_error"


async def test_update_role_and_ban(cloud_client: httpx.AsyncClient, provider_api: respx.MockRouter,
                                   world: World) -> None:
    route = provider_api.put(f"{AUTH}/admin/users/{USER_ID}").respond(200, json=gotrue_user(platform_admin=True))
    headers = admin_bearer(world.users["platform_admin"])
    promoted = await cloud_client.patch(f"/functions/v1/admin/users/{USER_ID}", json={"platform_admin": True},
                                        headers=headers)
    assert promoted.status_code == 200 and promoted.json()["user"]["platform_admin"] is True
    assert sent_json(route) == {"app_metadata": {"platform_admin": True}}

    await cloud_client.patch(f"/functions/v1/admin/users/{USER_ID}", json={"platform_admin": False}, headers=headers)
    assert sent_json(route) == {"app_metadata": {"platform_admin": None}}, "null removes the key in GoTrue"

    await cloud_client.patch(f"/functions/v1/admin/users/{USER_ID}", json={"ban_duration": "720h"}, headers=headers)
    assert sent_json(route) == {"ban_duration": "720h"}
    await cloud_client.patch(f"/functions/v1/admin/users/{USER_ID}", json={"ban_duration": "none"}, headers=headers)
    assert sent_json(route) == {"ban_duration": "none"}
    assert route.call_count == 4

    bad = await cloud_client.patch(f"/functions/v1/admin/users/{USER_ID}", json={"ban_duration": "forever"},
                                   headers=headers)
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_request"
    empty = await cloud_client.patch(f"/functions/v1/admin/users/{USER_ID}", json={}, headers=headers)
    assert empty.status_code == 400
    sneaky = await cloud_client.patch(f"/functions/v1/admin/users/{USER_ID}", json={"app_metadata": {"x": 1}},
                                      headers=headers)
    assert sneaky.status_code == 400
    not_uuid = await cloud_client.patch("/functions/v1/admin/users/../../x", json={"platform_admin": True},
                                        headers=headers)
    assert not_uuid.status_code in (400, 404)
    assert route.call_count == 4


async def test_delete_user(cloud_client: httpx.AsyncClient, provider_api: respx.MockRouter, world: World) -> None:
    route = provider_api.delete(f"{AUTH}/admin/users/{USER_ID}").respond(200, json={})
    response = await cloud_client.delete(f"/functions/v1/admin/users/{USER_ID}",
                                         headers=admin_bearer(world.users["platform_admin"]))
    assert response.status_code == 200 and response.json() == {"deleted": USER_ID}
    assert sent_json(route) == {"should_soft_delete": False}
    assert_service_auth(route)


async def test_admins_cannot_lock_themselves_out(cloud_client: httpx.AsyncClient, provider_api: respx.MockRouter,
                                                 world: World) -> None:
    gotrue = provider_api.route(url__startswith=AUTH).respond(500)
    me = str(world.users["platform_admin"])
    headers = admin_bearer(me)
    for method, body in (("PATCH", {"platform_admin": False}), ("PATCH", {"ban_duration": "1h"}), ("DELETE", None)):
        response = await cloud_client.request(method, f"/functions/v1/admin/users/{me}", json=body, headers=headers)
        assert response.status_code == 409 and response.json()["error"] == "cannot_change_self"
    assert not gotrue.called


async def test_asymmetric_tokens_are_checked_against_the_projects_jwks(
        cloud_client: httpx.AsyncClient, provider_api: respx.MockRouter, world: World) -> None:
    """With SUPABASE_URL set, ES256 tokens verify against {SUPABASE_URL}/auth/v1/.well-known/jwks.json."""
    published, unpublished = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    jwk = {**ECAlgorithm.to_jwk(published.public_key(), as_dict=True), "kid": "k1", "alg": "ES256", "use": "sig"}
    jwks = provider_api.get(f"{AUTH}/.well-known/jwks.json").respond(200, json={"keys": [jwk]})
    provider_api.get(f"{AUTH}/admin/users").respond(200, json={"users": [], "aud": "authenticated"})
    now = int(time.time())
    claims = {"sub": str(world.users["platform_admin"]), "role": "authenticated", "aud": "authenticated",
              "exp": now + 600, "iat": now, "app_metadata": {"platform_admin": True}}

    def es256(key: ec.EllipticCurvePrivateKey) -> dict[str, str]:
        return {"Authorization": "Bearer " + jwt.encode(claims, key, algorithm="ES256", headers={"kid": "k1"})}

    ok = await cloud_client.get("/functions/v1/admin/users", headers=es256(published))
    assert ok.status_code == 200, ok.text
    forged = await cloud_client.get("/functions/v1/admin/users", headers=es256(unpublished))
    assert forged.status_code == 401 and forged.json()["error"] == "invalid_token"
    assert jwks.called
