"""The OAuth handlers refuse forged, replayed, expired and stolen states, foreign redirects and bad tokens.

Every refusal is checked for its status and error code, and for having written nothing: no account,
no tokens, no sync run, and no provider call.
"""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from typing import Any

import httpx
import jwt
import psycopg
import pytest
import respx

from tests.factories import World
from tests.handlers.conftest import (
    RETURN_TO,
    TEST_JWT_SECRET,
    bearer,
    callback,
    complete,
    fakes,
    parked,
    query_of,
    sha256,
    snapshot,
    start_flow,
)

OTHER_SECRET = "another-projects-secret-that-is-also-32-chars-or-more"


def assert_nothing_written(conn: psycopg.Connection[Any], world: World, before: dict[str, int]) -> None:
    after = snapshot(conn, world)
    assert (after["accounts"], after["tokens"], after["runs"]) == (before["accounts"], before["tokens"],
                                                                   before["runs"])


# --------------------------------------------------------------------------------------------- states


async def test_forged_state_is_refused(client: httpx.AsyncClient, provider_api: respx.MockRouter, world: World,
                                       conn: psycopg.Connection[Any]) -> None:
    fake = fakes()["spotify"]
    fake.install(provider_api)
    await start_flow(client, world, "spotify")  # a real state exists, but is not the one presented
    before = snapshot(conn, world)
    for forged in (secrets.token_urlsafe(32), "", "x" * 600):
        response = await callback(client, "spotify", code="c", state=forged)
        assert response.status_code == 400, forged
        assert response.json()["error"] in ("invalid_state", "invalid_request")
        assert "Traceback" not in response.text
    assert not fake.token_route or not fake.token_route.called
    assert_nothing_written(conn, world, before)
    assert snapshot(conn, world)["used_states"] == before["used_states"]


async def test_replayed_state_is_refused(client: httpx.AsyncClient, provider_api: respx.MockRouter, world: World,
                                         conn: psycopg.Connection[Any]) -> None:
    fake = fakes()["youtube"]
    fake.install(provider_api)
    state = await start_flow(client, world, "youtube")
    first = await callback(client, "youtube", code="c", state=state)
    assert query_of(first.headers["location"])["status"] == "pending"
    before = snapshot(conn, world)
    replay = await callback(client, "youtube", code="c", state=state)
    assert replay.status_code == 400 and replay.json()["error"] == "state_used"
    assert fake.token_route is not None and fake.token_route.call_count == 1, "the code is not exchanged twice"
    assert_nothing_written(conn, world, before)
    assert parked(conn, world) == 1, "only the first callback parked a connection"


async def test_concurrent_callbacks_consume_a_state_once(client: httpx.AsyncClient, provider_api: respx.MockRouter,
                                                         world: World, conn: psycopg.Connection[Any]) -> None:
    fake = fakes()["soundcloud"]
    fake.install(provider_api)
    state = await start_flow(client, world, "soundcloud")
    before = snapshot(conn, world)
    answers = await asyncio.gather(*(callback(client, "soundcloud", code="c", state=state) for _ in range(5)))
    assert sorted(r.status_code for r in answers) == [302, 400, 400, 400, 400]
    assert {r.json()["error"] for r in answers if r.status_code == 400} == {"state_used"}
    assert fake.token_route is not None and fake.token_route.call_count == 1
    assert parked(conn, world) == 1
    winner = next(r for r in answers if r.status_code == 302)
    await complete(client, "soundcloud", query_of(winner.headers["location"])["completion"], world.users["manager"])
    after = snapshot(conn, world)
    assert (after["accounts"], after["tokens"], after["runs"]) == (before["accounts"] + 1, before["tokens"] + 1,
                                                                   before["runs"] + 1)


async def test_expired_state_is_refused(client: httpx.AsyncClient, provider_api: respx.MockRouter, world: World,
                                        conn: psycopg.Connection[Any]) -> None:
    fake = fakes()["soundcloud"]
    fake.install(provider_api)
    state = await start_flow(client, world, "soundcloud")
    conn.execute("update private.oauth_states set expires_at = now() - interval '1 second' where state_hash = %s",
                 (sha256(state),))
    before = snapshot(conn, world)
    response = await callback(client, "soundcloud", code="c", state=state)
    assert response.status_code == 400 and response.json()["error"] == "state_expired"
    assert fake.token_route is not None and not fake.token_route.called
    assert_nothing_written(conn, world, before)


async def test_state_of_another_provider_is_refused(client: httpx.AsyncClient, provider_api: respx.MockRouter,
                                                    world: World, conn: psycopg.Connection[Any]) -> None:
    fakes()["youtube"].install(provider_api)
    state = await start_flow(client, world, "spotify")
    before = snapshot(conn, world)
    response = await callback(client, "youtube", code="c", state=state)
    assert response.status_code == 400 and response.json()["error"] == "provider_mismatch"
    assert_nothing_written(conn, world, before)
    assert snapshot(conn, world)["used_states"] == before["used_states"]


@pytest.mark.parametrize("intruder", ["admin", "owner_b", "outsider"])
async def test_state_from_another_user_is_refused(intruder: str, client: httpx.AsyncClient,
                                                  provider_api: respx.MockRouter, world: World,
                                                  conn: psycopg.Connection[Any]) -> None:
    """User A starts; the callback arrives with user B's token: refused, and A's flow stays usable."""
    fake = fakes()["youtube"]
    fake.install(provider_api)
    state = await start_flow(client, world, "youtube", user="manager")
    before = snapshot(conn, world)
    response = await callback(client, "youtube", headers=bearer(world.users[intruder]), code="c", state=state)
    assert response.status_code == 403 and response.json()["error"] == "state_user_mismatch"
    assert fake.token_route is not None and not fake.token_route.called
    assert_nothing_written(conn, world, before)
    unused = conn.execute("select used_at from private.oauth_states where state_hash = %s", (sha256(state),))
    assert unused.fetchone() == {"used_at": None}

    # The owner of the flow (with or without their own token) still completes it.
    owner = await callback(client, "youtube", headers=bearer(world.users["manager"]), code="c", state=state)
    back = query_of(owner.headers["location"])
    assert back["status"] == "pending"
    done = await complete(client, "youtube", back["completion"], world.users["manager"])
    assert done.status_code == 200 and done.json()["status"] == "connected"


async def test_callback_with_an_invalid_token_is_refused(client: httpx.AsyncClient, provider_api: respx.MockRouter,
                                                         world: World, conn: psycopg.Connection[Any]) -> None:
    fakes()["youtube"].install(provider_api)
    state = await start_flow(client, world, "youtube")
    before = snapshot(conn, world)
    forged = bearer(world.users["manager"])["Authorization"] + "x"
    response = await callback(client, "youtube", headers={"Authorization": forged}, code="c", state=state)
    assert response.status_code == 401
    assert_nothing_written(conn, world, before)
    assert snapshot(conn, world)["used_states"] == before["used_states"]


async def test_banned_user_cannot_finish_a_flow(client: httpx.AsyncClient, provider_api: respx.MockRouter,
                                                world: World, conn: psycopg.Connection[Any]) -> None:
    fake = fakes()["soundcloud"]
    fake.install(provider_api)
    state = await start_flow(client, world, "soundcloud")
    conn.execute("update auth.users set banned_until = now() + interval '1 day' where id = %s",
                 (world.users["manager"],))
    before = snapshot(conn, world)
    response = await callback(client, "soundcloud", code="c", state=state)
    assert query_of(response.headers["location"])["reason"] == "user_inactive"
    assert fake.token_route is not None and not fake.token_route.called
    assert_nothing_written(conn, world, before)


# --------------------------------------------------------------------------------------------- start


@pytest.mark.parametrize("redirect_to", [
    "https://evil.test/settings",
    "https://app.arti.test.evil.test/",
    "https://app.arti.test@evil.test/",
    "https://evil.test\\@app.arti.test/",
    "http://app.arti.test/settings",
    "https://app.arti.test:8443/",
    "//evil.test/",
    "/settings",
    "javascript:alert(1)",
    "https://app.arti.test/settings/%2e%2e/%2e%2e/admin",
    "https://app.arti.test/settings#fragment",
    "http://localhost:3000.evil.test/",
])
async def test_redirect_to_must_be_allow_listed(redirect_to: str, client: httpx.AsyncClient, world: World,
                                                conn: psycopg.Connection[Any]) -> None:
    states_before = count_states(conn, world)
    response = await client.get(
        "/functions/v1/oauth/soundcloud/start", headers=bearer(world.users["manager"]),
        params={"org_id": str(world.ids["org_a"]), "artist_id": str(world.ids["artist_a"]),
                "redirect_to": redirect_to})
    assert response.status_code == 400, redirect_to
    assert response.json()["error"] == "redirect_not_allowed"
    assert count_states(conn, world) == states_before


@pytest.mark.parametrize("redirect_to", [RETURN_TO, "https://app.arti.test", "https://APP.arti.test:443/x?tab=2",
                                         "http://localhost:3000/"])
async def test_allow_listed_redirects_are_accepted(redirect_to: str, client: httpx.AsyncClient,
                                                   world: World) -> None:
    response = await client.get(
        "/functions/v1/oauth/soundcloud/start", headers=bearer(world.users["manager"]),
        params={"org_id": str(world.ids["org_a"]), "artist_id": str(world.ids["artist_a"]),
                "redirect_to": redirect_to})
    assert response.status_code == 200, response.text


@pytest.mark.parametrize(("persona", "status", "code"), [
    ("viewer", 403, "forbidden"), ("analyst", 403, "forbidden"), ("outsider", 403, "forbidden"),
    ("owner_b", 403, "forbidden"), ("platform_admin", 403, "forbidden"),
])
async def test_start_needs_accounts_connect(persona: str, status: int, code: str, client: httpx.AsyncClient,
                                            world: World, conn: psycopg.Connection[Any]) -> None:
    states_before = count_states(conn, world)
    response = await client.get(
        "/functions/v1/oauth/youtube/start", headers=bearer(world.users[persona]),
        params={"org_id": str(world.ids["org_a"]), "artist_id": str(world.ids["artist_a"])})
    assert (response.status_code, response.json()["error"]) == (status, code)
    assert count_states(conn, world) == states_before


async def test_start_refuses_an_artist_of_another_org(client: httpx.AsyncClient, world: World,
                                                      conn: psycopg.Connection[Any]) -> None:
    states_before = count_states(conn, world)
    response = await client.get(
        "/functions/v1/oauth/youtube/start", headers=bearer(world.users["manager"]),
        params={"org_id": str(world.ids["org_a"]), "artist_id": str(world.ids["artist_b"])})
    assert (response.status_code, response.json()["error"]) == (404, "artist_not_found")
    assert count_states(conn, world) == states_before


async def test_start_validates_its_input(client: httpx.AsyncClient, world: World) -> None:
    headers = bearer(world.users["manager"])
    base = {"org_id": str(world.ids["org_a"]), "artist_id": str(world.ids["artist_a"])}
    not_uuid = await client.get("/functions/v1/oauth/youtube/start", params={**base, "org_id": "1 or 1=1"},
                                headers=headers)
    assert not_uuid.status_code == 400 and not_uuid.json()["error"] == "invalid_request"
    unknown = await client.get("/functions/v1/oauth/myspace/start", params=base, headers=headers)
    assert unknown.status_code == 404 and unknown.json()["error"] == "unknown_provider"
    no_artist = await client.get("/functions/v1/oauth/spotify/start", params=base, headers=headers)
    assert no_artist.status_code == 400 and "external_id" in no_artist.json()["message"]
    not_used = await client.get("/functions/v1/oauth/youtube/start", params={**base, "external_id": "x"},
                                headers=headers)
    assert not_used.status_code == 400


# --------------------------------------------------------------------------------------------- tokens


def _b64(data: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def bad_tokens(user_id: str) -> dict[str, str | None]:
    now = int(time.time())
    claims = {"sub": user_id, "role": "authenticated", "aud": "authenticated", "exp": now + 600, "iat": now}
    return {
        "missing": None,
        "expired": jwt.encode({**claims, "iat": now - 7200, "exp": now - 3600}, TEST_JWT_SECRET, algorithm="HS256"),
        "wrong_audience": jwt.encode({**claims, "aud": "some-other-api"}, TEST_JWT_SECRET, algorithm="HS256"),
        "no_audience": jwt.encode({k: v for k, v in claims.items() if k != "aud"}, TEST_JWT_SECRET,
                                  algorithm="HS256"),
        "alg_none": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}.",
        "other_key": jwt.encode(claims, OTHER_SECRET, algorithm="HS256"),
        "anon_role": jwt.encode({**claims, "role": "anon"}, TEST_JWT_SECRET, algorithm="HS256"),
        "service_role": jwt.encode({"role": "service_role", "exp": now + 600}, TEST_JWT_SECRET, algorithm="HS256"),
        "no_sub": jwt.encode({k: v for k, v in claims.items() if k != "sub"}, TEST_JWT_SECRET, algorithm="HS256"),
        "garbage": "not.a.jwt",
    }


@pytest.mark.parametrize("kind", list(bad_tokens("00000000-0000-0000-0000-000000000000")))
async def test_bad_tokens_are_refused_everywhere(kind: str, client: httpx.AsyncClient,
                                                 provider_api: respx.MockRouter, world: World,
                                                 conn: psycopg.Connection[Any]) -> None:
    manager = str(world.users["manager"])
    token = bad_tokens(manager)[kind]
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    fakes()["youtube"].install(provider_api)
    account_id = world.ids["account_a"]
    states_before = count_states(conn, world)
    before = snapshot(conn, world)

    start = await client.get("/functions/v1/oauth/youtube/start", headers=headers,
                             params={"org_id": str(world.ids["org_a"]), "artist_id": str(world.ids["artist_a"])})
    assert start.status_code == 401, (kind, start.text)
    assert start.headers["www-authenticate"].startswith("Bearer")
    expected = {"missing": "missing_token", "expired": "expired_token", "wrong_audience": "invalid_audience",
                "no_audience": "invalid_audience", "anon_role": "invalid_role", "service_role": "invalid_role"}
    assert start.json()["error"] == expected.get(kind, "invalid_token")
    assert token is None or token not in start.text, "the token is never echoed"

    disconnect = await client.post("/functions/v1/oauth/spotify/disconnect", json={"account_id": str(account_id)},
                                   headers=headers)
    assert disconnect.status_code == 401
    admin = await client.get("/functions/v1/admin/users", headers=headers)
    assert admin.status_code == 401

    assert count_states(conn, world) == states_before
    assert_nothing_written(conn, world, before)
    row = conn.execute("select status::text from public.connected_accounts where id = %s", (account_id,)).fetchone()
    assert row == {"status": "active"}


def count_states(conn: psycopg.Connection[Any], world: World) -> int:
    row = conn.execute("select count(*) as n from private.oauth_states where org_id = any(%s)",
                       ([world.ids["org_a"], world.ids["org_b"]],)).fetchone()
    assert row is not None
    return int(row["n"])
