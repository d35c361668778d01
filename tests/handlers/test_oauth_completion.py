"""An OAuth flow completes only for the user who started it (issue 14, item 3; RFC 9700 4.7).

The callback carries no JWT, so it parks what it obtained and hands the browser that went through the
provider's consent a one-time completion secret; `POST /oauth/{provider}/complete` with that secret and the
JWT of the user who started the flow connects the account. The attack: an attacker (manager of org B) starts
a flow and lures a victim into consenting with the attacker's state. The victim's code arrives at the callback
with the attacker's state; before, the victim's provider account and tokens were stored in org B.

The attack itself runs through the real edge (Caddy in front of uvicorn, separate processes), with the
providers faked at their HTTP boundary through ARTI_PROVIDER_GATEWAY; the finer cases run in-process (ASGI,
respx). Pruning of old flows is checked on the database.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest
import respx

from tests.edge_stack import EdgeStack
from tests.factories import World, add_member
from tests.fake_oauth_providers import FakeOAuthProviders
from tests.handlers.conftest import (
    RETURN_TO,
    bearer,
    callback,
    complete,
    fakes,
    park,
    parked,
    query_of,
    sha256,
    snapshot,
    start_flow,
)
from tests.harness import TestDB

PROVIDERS = ("spotify", "youtube", "instagram", "soundcloud", "tiktok")
REVOCATION = {
    "youtube": ("https://oauth2.googleapis.com/revoke", "token", "1//0google-refresh"),
    "soundcloud": ("https://secure.soundcloud.com/sign-out", "access_token", "2-290000-123456789-access1"),
    "tiktok": ("https://open.tiktokapis.com/v2/oauth/revoke/", "token", "act.tiktok-access-1"),
}
"""Where a refused flow's grant is revoked: endpoint, field, and the victim's token that must be sent."""


def org_rows(conn: psycopg.Connection[Any], org_id: uuid.UUID) -> dict[str, int]:
    """What a connection writes in one organization."""
    def n(sql: str) -> int:
        row = conn.execute(sql, (org_id,)).fetchone()
        assert row is not None
        return int(row["n"])
    return {
        "accounts": n("select count(*) as n from public.connected_accounts where org_id = %s"),
        "tokens": n("select count(*) as n from private.provider_tokens t join public.connected_accounts a "
                    "on a.id = t.account_id where a.org_id = %s"),
        "runs": n("select count(*) as n from public.sync_runs where org_id = %s"),
    }


def pending_row(conn: psycopg.Connection[Any], completion: str) -> dict[str, Any]:
    row = conn.execute("select * from private.oauth_pending_connections where completion_hash = %s",
                       (sha256(completion),)).fetchone()
    assert row is not None
    return dict(row)


@pytest.fixture
def attacker(world: World, conn: psycopg.Connection[Any]) -> uuid.UUID:
    """A manager of org B (deleted with the world)."""
    user = TestDB(conn).create_user(f"attacker-{uuid.uuid4().hex[:6]}@example.test")
    world.users["attacker"] = user
    add_member(TestDB(conn), world.ids["org_b"], user, "manager")
    return user


@pytest.fixture
def gateway() -> Iterator[FakeOAuthProviders]:
    with FakeOAuthProviders() as fake:
        yield fake


# --------------------------------------------------------------------------------------------- the attack


@pytest.mark.parametrize("provider", PROVIDERS)
def test_a_hijacked_flow_cannot_be_completed(provider: str, edge_factory: Callable[..., EdgeStack],
                                             gateway: FakeOAuthProviders, world: World, attacker: uuid.UUID,
                                             conn: psycopg.Connection[Any]) -> None:
    fake = fakes()[provider]
    gateway.connect(provider)
    edge = edge_factory(ARTI_PROVIDER_GATEWAY=gateway.url)
    victim = world.users["manager"]  # manager of org A, and no member of org B
    org_b = world.ids["org_b"]
    before_b = org_rows(conn, org_b)

    with edge.client() as http:
        # The attacker starts a flow for their own organization and keeps the state.
        start = http.get(f"/functions/v1/oauth/{provider}/start", headers=bearer(attacker), params={
            "org_id": str(org_b), "artist_id": str(world.ids["artist_b"]), "redirect_to": RETURN_TO,
            **fake.start_params})
        assert start.status_code == 200, start.text
        state = query_of(start.json()["authorize_url"])["state"]

        # The victim, lured to the authorize URL, consents; the provider sends the victim's browser back with
        # the victim's code and the attacker's state (no Authorization header: a top-level navigation).
        back = http.get(f"/functions/v1/oauth/{provider}/callback", params={"code": "victims-code", "state": state})
        assert back.status_code == 302, back.text
        landing = query_of(back.headers["location"])
        assert landing["status"] == "pending", f"the callback must not connect anything by itself: {landing}"
        completion = landing["completion"]
        assert org_rows(conn, org_b) == before_b

        # (a) The attacker has the state, not the completion secret: guessing and replaying get nothing.
        for guess in (state, secrets.token_urlsafe(32), completion[:-1]):
            refused = http.post(f"/functions/v1/oauth/{provider}/complete", json={"completion": guess},
                                headers=bearer(attacker))
            assert refused.status_code == 400, (guess, refused.text)
            assert refused.json()["error"] == "invalid_completion"
        replayed = http.get(f"/functions/v1/oauth/{provider}/callback", params={"code": "c", "state": state})
        assert replayed.status_code == 400 and replayed.json()["error"] == "state_used"

        # (b) The victim's frontend completes with the victim's JWT: refused, and the tokens destroyed.
        refused = http.post(f"/functions/v1/oauth/{provider}/complete", json={"completion": completion},
                            headers=bearer(victim))
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"] == "state_user_mismatch"
        row = pending_row(conn, completion)
        assert row["consumed_at"] is not None
        assert (row["tokens_encrypted"], row["outcome"]) == (None, "state_user_mismatch")
        if provider in REVOCATION:
            url, field, token = REVOCATION[provider]
            calls = gateway.calls("POST", url)
            assert len(calls) == 1, "the hijacked grant is revoked at the provider"
            sent = calls[0].form if field == "token" else json.loads(calls[0].body)
            assert sent[field] == token

        # Not even the secret helps the attacker afterwards: it was used up by the refusal.
        late = http.post(f"/functions/v1/oauth/{provider}/complete", json={"completion": completion},
                         headers=bearer(attacker))
        assert late.status_code == 400 and late.json()["error"] == "completion_used"

    # (c) Nothing of the victim's reached org B.
    assert org_rows(conn, org_b) == before_b
    stolen = conn.execute("select count(*) as n from public.connected_accounts where org_id = %s and provider = %s "
                          "and external_id = %s", (org_b, provider, fake.external_id)).fetchone()
    assert stolen == {"n": 0}
    assert parked(conn, world) == 0


# --------------------------------------------------------------------------------------------- in process


async def test_another_member_of_the_org_cannot_complete(
        client: httpx.AsyncClient, provider_api: respx.MockRouter, world: World,
        conn: psycopg.Connection[Any]) -> None:
    """Having accounts.connect in the same organization is not enough: the flow is the starter's."""
    fakes()["youtube"].install(provider_api)
    revoke = provider_api.post("https://oauth2.googleapis.com/revoke").respond(200)
    state = await start_flow(client, world, "youtube", user="manager")
    completion = await park(client, "youtube", state)
    before = snapshot(conn, world)
    response = await complete(client, "youtube", completion, world.users["admin"])
    assert response.status_code == 403 and response.json()["error"] == "state_user_mismatch"
    assert snapshot(conn, world) == before
    assert parked(conn, world) == 0 and revoke.called
    again = await complete(client, "youtube", completion, world.users["manager"])
    assert again.status_code == 400 and again.json()["error"] == "completion_used"


async def test_a_completion_is_single_use(client: httpx.AsyncClient, provider_api: respx.MockRouter, world: World,
                                          conn: psycopg.Connection[Any]) -> None:
    fakes()["soundcloud"].install(provider_api)
    state = await start_flow(client, world, "soundcloud")
    completion = await park(client, "soundcloud", state)
    before = snapshot(conn, world)
    answers = await asyncio.gather(*(complete(client, "soundcloud", completion, world.users["manager"])
                                     for _ in range(5)))
    assert sorted(r.status_code for r in answers) == [200, 400, 400, 400, 400]
    assert {r.json()["error"] for r in answers if r.status_code == 400} == {"completion_used"}
    after = snapshot(conn, world)
    assert (after["accounts"], after["tokens"], after["runs"]) == (before["accounts"] + 1, before["tokens"] + 1,
                                                                   before["runs"] + 1)
    replay = await complete(client, "soundcloud", completion, world.users["manager"])
    assert replay.status_code == 400 and replay.json()["error"] == "completion_used"


async def test_an_expired_completion_is_refused(client: httpx.AsyncClient, provider_api: respx.MockRouter,
                                                world: World, conn: psycopg.Connection[Any]) -> None:
    fakes()["youtube"].install(provider_api)
    state = await start_flow(client, world, "youtube")
    completion = await park(client, "youtube", state)
    conn.execute("update private.oauth_pending_connections set expires_at = now() - interval '1 second' "
                 "where completion_hash = %s", (sha256(completion),))
    before = snapshot(conn, world)
    response = await complete(client, "youtube", completion, world.users["manager"])
    assert response.status_code == 400 and response.json()["error"] == "completion_expired"
    assert snapshot(conn, world) == before


async def test_a_completion_for_another_provider_is_refused(
        client: httpx.AsyncClient, provider_api: respx.MockRouter, world: World,
        conn: psycopg.Connection[Any]) -> None:
    fakes()["youtube"].install(provider_api)
    state = await start_flow(client, world, "youtube")
    completion = await park(client, "youtube", state)
    before = snapshot(conn, world)
    response = await complete(client, "soundcloud", completion, world.users["manager"])
    assert response.status_code == 400 and response.json()["error"] == "provider_mismatch"
    assert snapshot(conn, world) == before
    assert pending_row(conn, completion)["consumed_at"] is None, "still there for the right provider"
    right = await complete(client, "youtube", completion, world.users["manager"])
    assert right.status_code == 200 and right.json()["provider"] == "youtube"


async def test_a_banned_user_cannot_complete(client: httpx.AsyncClient, provider_api: respx.MockRouter,
                                             world: World, conn: psycopg.Connection[Any]) -> None:
    fakes()["instagram"].install(provider_api)
    state = await start_flow(client, world, "instagram")
    completion = await park(client, "instagram", state)
    conn.execute("update auth.users set banned_until = now() + interval '1 day' where id = %s",
                 (world.users["manager"],))
    before = snapshot(conn, world)
    response = await complete(client, "instagram", completion, world.users["manager"])  # a JWT issued before
    assert response.status_code == 403 and response.json()["error"] == "user_inactive"
    assert snapshot(conn, world) == before
    assert parked(conn, world) == 0


async def test_revocation_spares_a_grant_another_connection_uses(
        client: httpx.AsyncClient, provider_api: respx.MockRouter, world: World,
        conn: psycopg.Connection[Any]) -> None:
    """Google revokes the whole grant: refusing a hijacked flow must not disconnect the victim's own account."""
    fakes()["youtube"].install(provider_api)
    revoke = provider_api.post("https://oauth2.googleapis.com/revoke").respond(200)
    # The victim connected their channel in their own organization.
    own = await complete(client, "youtube", await park(client, "youtube", await start_flow(client, world, "youtube")),
                         world.users["manager"])
    assert own.status_code == 200
    # Someone else's flow, consented to by the victim with the same channel, is refused at completion.
    state = await start_flow(client, world, "youtube", user="admin")
    completion = await park(client, "youtube", state)
    response = await complete(client, "youtube", completion, world.users["manager"])
    assert response.status_code == 403
    assert not revoke.called, "the channel's grant is still used by the victim's own connection"
    tokens = conn.execute("select count(*) as n from private.provider_tokens where account_id = %s",
                          (own.json()["account_id"],)).fetchone()
    assert tokens == {"n": 1}


async def test_complete_validates_its_input(client: httpx.AsyncClient, provider_api: respx.MockRouter,
                                            world: World, conn: psycopg.Connection[Any]) -> None:
    fakes()["youtube"].install(provider_api)
    completion = await park(client, "youtube", await start_flow(client, world, "youtube"))
    url = "/functions/v1/oauth/youtube/complete"
    headers = bearer(world.users["manager"])
    no_jwt = await client.post(url, json={"completion": completion})
    assert no_jwt.status_code == 401
    junk = await client.post(url, content=b"{", headers=headers)
    assert junk.status_code == 400 and junk.json()["error"] == "invalid_json"
    for body in ({}, {"completion": ""}, {"completion": 5}, {"completion": "x" * 600},
                 {"completion": completion, "org_id": "x"}, [completion]):
        refused = await client.post(url, json=body, headers=headers)
        assert refused.status_code == 400, body
        assert "Traceback" not in refused.text
    unknown = await client.post("/functions/v1/oauth/myspace/complete", json={"completion": completion},
                                headers=headers)
    assert unknown.status_code == 404
    get = await client.get(url, headers=headers)
    assert get.status_code == 405
    assert pending_row(conn, completion)["consumed_at"] is None, "no refusal above consumed it"
    done = await complete(client, "youtube", completion, world.users["manager"])
    assert done.status_code == 200


async def test_callback_error_outcomes_park_nothing(client: httpx.AsyncClient, world: World,
                                                    conn: psycopg.Connection[Any]) -> None:
    state = await start_flow(client, world, "youtube")
    response = await callback(client, "youtube", error="server_error", state=state)
    assert query_of(response.headers["location"]) == {"status": "error", "provider": "youtube",
                                                      "reason": "server_error"}
    assert parked(conn, world) == 0


# --------------------------------------------------------------------------------------------- pruning


def test_old_flows_are_pruned(world: World, conn: psycopg.Connection[Any]) -> None:
    def state(expired_ago: str | None) -> uuid.UUID:
        expires = "now() + interval '5 minutes'" if expired_ago is None else f"now() - interval '{expired_ago}'"
        row = conn.execute(
            "insert into private.oauth_states (state_hash, provider, user_id, org_id, artist_id, redirect_to, "
            f"expires_at) values (%s, 'youtube', %s, %s, %s, %s, {expires}) returning id",
            (secrets.token_bytes(32), world.users["manager"], world.ids["org_a"], world.ids["artist_a"], RETURN_TO),
        ).fetchone()
        assert row is not None
        return uuid.UUID(str(row["id"]))

    def park_row(state_id: uuid.UUID, expires: str, consumed: bool = False) -> uuid.UUID:
        tokens, consumed_at, outcome = (None, "now()", "'connected'") if consumed else ("'v1.k.x'", "null", "null")
        row = conn.execute(
            "insert into private.oauth_pending_connections (state_id, completion_hash, external_id, "
            f"tokens_encrypted, expires_at, consumed_at, outcome) values (%s, %s, 'UCx', %s, {expires}, "
            f"{consumed_at}, {outcome}) returning id",
            (state_id, secrets.token_bytes(32), tokens)).fetchone()
        assert row is not None
        return uuid.UUID(str(row["id"]))

    old_state, recent_state, live_state = state("2 days"), state("1 hour"), state(None)
    parked_states = [state("20 minutes"), state("20 minutes"), state("2 days")]
    expired = park_row(parked_states[0], "now() - interval '1 second'")
    expired_consumed = park_row(parked_states[1], "now() - interval '1 minute'", consumed=True)
    live = park_row(parked_states[2], "now() + interval '5 minutes'")

    removed = conn.execute("select private.prune_oauth_flows() as n").fetchone()
    assert removed is not None and removed["n"] >= 3

    def exists(table: str, row_id: uuid.UUID) -> bool:
        return conn.execute(f"select 1 from private.{table} where id = %s", (row_id,)).fetchone() is not None

    assert not exists("oauth_pending_connections", expired), "expired parked tokens are gone"
    assert not exists("oauth_pending_connections", expired_consumed)
    assert exists("oauth_pending_connections", live)
    assert not exists("oauth_states", old_state), "states expired for more than a day are gone"
    assert all(exists("oauth_states", s) for s in (recent_state, live_state, *parked_states))

    job = conn.execute("select schedule, command from cron.job where jobname = 'arti-prune-oauth-flows'").fetchone()
    assert job == {"schedule": "*/5 * * * *", "command": "select private.prune_oauth_flows()"}


def test_parked_connections_are_out_of_the_api_roles_reach(conn: psycopg.Connection[Any]) -> None:
    for role in ("anon", "authenticated"):
        for privilege in ("select", "insert", "update", "delete"):
            row = conn.execute("select has_table_privilege(%s, 'private.oauth_pending_connections', %s) as ok",
                               (role, privilege)).fetchone()
            assert row == {"ok": False}, (role, privilege)
        row = conn.execute("select has_function_privilege(%s, 'private.prune_oauth_flows(interval)', 'execute') "
                           "as ok", (role,)).fetchone()
        assert row == {"ok": False}, role
