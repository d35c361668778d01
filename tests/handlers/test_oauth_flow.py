"""Connecting accounts end to end: start -> provider (faked) -> callback (parks the result) -> completion by the
user who started the flow -> tokens, account, backfill job."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import httpx
import psycopg
import pytest
import respx

from arti.providers import code_challenge_s256
from tests.factories import World
from tests.handlers.conftest import (
    RETURN_TO,
    bearer,
    callback,
    cipher,
    complete,
    fakes,
    finish_flow,
    park,
    parked,
    query_of,
    sha256,
    snapshot,
    start_flow,
)

PROVIDERS = ("spotify", "youtube", "instagram", "soundcloud", "tiktok")


@pytest.mark.parametrize("provider", PROVIDERS)
async def test_full_connect_flow(provider: str, client: httpx.AsyncClient, provider_api: respx.MockRouter,
                                 world: World, conn: psycopg.Connection[Any]) -> None:
    fake = fakes()[provider]
    manager = world.users["manager"]
    response = await client.get(
        f"/functions/v1/oauth/{provider}/start",
        params={"org_id": str(world.ids["org_a"]), "artist_id": str(world.ids["artist_a"]), "redirect_to": RETURN_TO,
                **fake.start_params},
        headers=bearer(manager),
    )
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    authorize = query_of(response.json()["authorize_url"])
    state = authorize["state"]
    assert len(state) >= 43, "32 random bytes, urlsafe"
    assert authorize["redirect_uri"] == f"https://api.arti.test/functions/v1/oauth/{provider}/callback"
    if fake.pkce:
        assert authorize["code_challenge_method"] == "S256"
    else:
        assert "code_challenge" not in authorize

    stored = conn.execute("select * from private.oauth_states where state_hash = %s", (sha256(state),)).fetchone()
    assert stored is not None
    assert stored["user_id"] == manager and stored["org_id"] == world.ids["org_a"]
    assert stored["used_at"] is None and stored["redirect_to"] == RETURN_TO
    ttl = conn.execute("select extract(epoch from %s::timestamptz - now()) as s", (stored["expires_at"],)).fetchone()
    assert ttl is not None and 590 < ttl["s"] <= 600
    assert state not in str(stored), "only the hash of the state is stored"
    if fake.pkce:
        assert stored["code_verifier_encrypted"].startswith("v1.ktest.")

    fake.install(provider_api)
    before = snapshot(conn, world)
    response = await callback(client, provider, code="auth-code-1", state=state)
    assert response.status_code == 302, response.text
    location = response.headers["location"]
    assert location.startswith(RETURN_TO + "?")
    back = query_of(location)
    assert set(back) == {"status", "provider", "completion"}
    assert back["status"] == "pending" and back["provider"] == provider
    completion = back["completion"]
    assert len(completion) >= 43, "32 random bytes, urlsafe"

    # The callback connected nothing yet: it parked the result for the user who started the flow.
    after = snapshot(conn, world)
    assert (after["accounts"], after["tokens"], after["runs"]) == (before["accounts"], before["tokens"],
                                                                   before["runs"])
    pending = conn.execute("select * from private.oauth_pending_connections where completion_hash = %s",
                           (sha256(completion),)).fetchone()
    assert pending is not None and pending["state_id"] == stored["id"]
    assert (pending["external_id"], pending["display_name"]) == (fake.external_id, fake.display_name)
    assert pending["consumed_at"] is None and pending["outcome"] is None
    assert completion not in str(pending), "only the hash of the completion secret is stored"
    assert pending["tokens_encrypted"].startswith("v1.ktest.")
    assert fake.access_token not in pending["tokens_encrypted"]
    ttl = conn.execute("select extract(epoch from %s::timestamptz - now()) as s", (pending["expires_at"],)).fetchone()
    assert ttl is not None and 590 < ttl["s"] <= 600

    no_jwt = await complete(client, provider, completion, None)
    assert no_jwt.status_code == 401
    response = await complete(client, provider, completion, manager)
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["status"] == "connected" and body["provider"] == provider
    account_id = body["account_id"]

    form = fake.token_form()
    assert form["code"] == "auth-code-1"
    if fake.pkce:
        assert code_challenge_s256(form["code_verifier"]) == authorize["code_challenge"], "PKCE verifier matches"

    account = conn.execute("select * from public.connected_accounts where id = %s", (account_id,)).fetchone()
    assert account is not None
    assert (account["org_id"], account["artist_id"]) == (world.ids["org_a"], world.ids["artist_a"])
    assert account["provider"] == provider and account["external_id"] == fake.external_id
    assert account["display_name"] == fake.display_name
    assert account["status"] == "active" and account["connected_by"] == manager

    tokens = conn.execute("select * from private.provider_tokens where account_id = %s", (account_id,)).fetchone()
    assert tokens is not None
    assert tokens["access_token_encrypted"] != fake.access_token
    assert fake.access_token not in tokens["access_token_encrypted"]
    assert cipher().decrypt(tokens["access_token_encrypted"], f"{account_id}:access") == fake.access_token
    if fake.refresh_token:
        assert fake.refresh_token not in tokens["refresh_token_encrypted"]
        assert cipher().decrypt(tokens["refresh_token_encrypted"], f"{account_id}:refresh") == fake.refresh_token
    assert tokens["expires_at"] is not None

    run = conn.execute("select * from public.sync_runs where account_id = %s", (account_id,)).fetchone()
    assert run is not None and run["trigger"] == "connect" and run["status"] == "queued"
    assert run["requested_by"] == manager
    job = conn.execute("select * from procrastinate.procrastinate_jobs where queueing_lock = %s",
                       (f"sync:{account_id}",)).fetchone()
    assert job is not None and job["status"] == "todo" and job["task_name"] == "sync_account"
    assert job["args"] == {"sync_run_id": str(run["id"])}

    used = conn.execute("select used_at from private.oauth_states where state_hash = %s", (sha256(state),)).fetchone()
    assert used is not None and used["used_at"] is not None
    consumed = conn.execute("select consumed_at, tokens_encrypted, outcome from private.oauth_pending_connections "
                            "where id = %s", (pending["id"],)).fetchone()
    assert consumed is not None and consumed["consumed_at"] is not None
    assert (consumed["tokens_encrypted"], consumed["outcome"]) == (None, "connected"), "the parked tokens are gone"


async def test_start_can_redirect(client: httpx.AsyncClient, world: World) -> None:
    response = await client.get("/functions/v1/oauth/soundcloud/start", headers=bearer(world.users["manager"]),
                                params={"org_id": str(world.ids["org_a"]), "artist_id": str(world.ids["artist_a"]),
                                        "redirect": "1"})
    assert response.status_code == 302
    assert response.headers["location"].startswith("https://secure.soundcloud.com/authorize?")


async def test_default_redirect_is_the_first_frontend(client: httpx.AsyncClient, provider_api: respx.MockRouter,
                                                      world: World) -> None:
    state = await start_flow(client, world, "soundcloud", redirect_to="")
    fakes()["soundcloud"].install(provider_api)
    response = await callback(client, "soundcloud", code="c", state=state)
    assert response.headers["location"].startswith("https://app.arti.test?status=pending&provider=soundcloud&")


async def test_denied_consent_redirects_with_status_denied(client: httpx.AsyncClient, world: World,
                                                           conn: psycopg.Connection[Any]) -> None:
    state = await start_flow(client, world, "youtube")
    before = snapshot(conn, world)
    response = await callback(client, "youtube", error="access_denied", state=state)
    assert response.status_code == 302
    assert query_of(response.headers["location"]) == {"status": "denied", "provider": "youtube"}
    after = snapshot(conn, world)
    assert after["accounts"] == before["accounts"] and after["tokens"] == before["tokens"]
    assert parked(conn, world) == 0


async def test_provider_failure_redirects_with_an_error(client: httpx.AsyncClient, provider_api: respx.MockRouter,
                                                        world: World, conn: psycopg.Connection[Any]) -> None:
    state = await start_flow(client, world, "soundcloud")
    provider_api.post("https://secure.soundcloud.com/oauth/token").respond(
        401, json={"error": "invalid_grant", "error_description": "code expired"})
    before = snapshot(conn, world)
    response = await callback(client, "soundcloud", code="stale", state=state)
    assert response.status_code == 302
    assert query_of(response.headers["location"])["reason"] == "provider_error"
    assert snapshot(conn, world)["accounts"] == before["accounts"]
    assert parked(conn, world) == 0


async def test_reconnect_reactivates_a_needs_reauth_account(client: httpx.AsyncClient, provider_api: respx.MockRouter,
                                                           world: World, conn: psycopg.Connection[Any]) -> None:
    fake = fakes()["youtube"]
    fake.install(provider_api)
    state = await start_flow(client, world, "youtube")
    account_id = await finish_flow(client, world, "youtube", state, code="c1")
    conn.execute("update public.connected_accounts set status = 'needs_reauth', last_error = 'refused' where id = %s",
                 (account_id,))
    conn.execute("update public.sync_runs set status = 'failed', finished_at = now() where account_id = %s",
                 (account_id,))
    conn.execute("delete from procrastinate.procrastinate_jobs where queueing_lock = %s", (f"sync:{account_id}",))

    state = await start_flow(client, world, "youtube", user="admin")
    again = await finish_flow(client, world, "youtube", state, user="admin", code="c2")
    assert again == account_id, "same account, upserted"
    account = conn.execute("select status, last_error from public.connected_accounts where id = %s",
                           (account_id,)).fetchone()
    assert account == {"status": "active", "last_error": None}
    runs = conn.execute("select trigger::text, status::text, requested_by from public.sync_runs "
                        "where account_id = %s order by queued_at", (account_id,)).fetchall()
    assert [(r["trigger"], r["status"]) for r in runs] == [("connect", "failed"), ("connect", "queued")]
    assert runs[-1]["requested_by"] == world.users["admin"]


async def test_permission_lost_before_the_completion_is_refused(
        client: httpx.AsyncClient, provider_api: respx.MockRouter, world: World,
        conn: psycopg.Connection[Any]) -> None:
    state = await start_flow(client, world, "soundcloud")
    fakes()["soundcloud"].install(provider_api)
    completion = await park(client, "soundcloud", state)
    conn.execute("update public.memberships set role = 'viewer' where org_id = %s and user_id = %s",
                 (world.ids["org_a"], world.users["manager"]))
    sign_out = provider_api.post("https://secure.soundcloud.com/sign-out").respond(200, json={})
    before = snapshot(conn, world)
    response = await complete(client, "soundcloud", completion, world.users["manager"])
    assert response.status_code == 403 and response.json()["error"] == "forbidden"
    after = snapshot(conn, world)
    assert (after["accounts"], after["tokens"], after["runs"]) == (before["accounts"], before["tokens"], before["runs"])
    assert parked(conn, world) == 0, "tokens that will never be used are not kept"
    assert sign_out.called, "and their grant is revoked at the provider"


# --------------------------------------------------------------------------------------------- disconnect


async def connect(client: httpx.AsyncClient, provider_api: respx.MockRouter, world: World, provider: str) -> str:
    fakes()[provider].install(provider_api)
    state = await start_flow(client, world, provider)
    return await finish_flow(client, world, provider, state)


async def test_disconnect_revokes_at_google_and_forgets_tokens(
        client: httpx.AsyncClient, provider_api: respx.MockRouter, world: World,
        conn: psycopg.Connection[Any]) -> None:
    account_id = await connect(client, provider_api, world, "youtube")
    revoke = provider_api.post("https://oauth2.googleapis.com/revoke").respond(200)
    response = await client.post("/functions/v1/oauth/youtube/disconnect", json={"account_id": account_id},
                                 headers=bearer(world.users["manager"]))
    assert response.status_code == 200, response.text
    assert response.json() == {"account_id": account_id, "status": "revoked", "provider_revocation": "revoked"}
    assert revoke.called and revoke.calls.last.request.content == b"token=1%2F%2F0google-refresh"
    assert count_tokens(conn, account_id) == 0
    status = conn.execute("select status::text from public.connected_accounts where id = %s", (account_id,))
    assert status.fetchone() == {"status": "revoked"}


async def test_disconnect_signs_out_at_soundcloud(client: httpx.AsyncClient, provider_api: respx.MockRouter,
                                                  world: World) -> None:
    account_id = await connect(client, provider_api, world, "soundcloud")
    sign_out = provider_api.post("https://secure.soundcloud.com/sign-out").respond(200, json={})
    response = await client.post("/functions/v1/oauth/soundcloud/disconnect", json={"account_id": account_id},
                                 headers=bearer(world.users["admin"]))
    assert response.json()["provider_revocation"] == "revoked"
    assert sign_out.calls.last.request.read() == b'{"access_token":"2-290000-123456789-access1"}'


async def test_disconnect_revokes_at_tiktok_with_the_apps_credentials(
        client: httpx.AsyncClient, provider_api: respx.MockRouter, world: World,
        conn: psycopg.Connection[Any]) -> None:
    account_id = await connect(client, provider_api, world, "tiktok")
    revoke = provider_api.post("https://open.tiktokapis.com/v2/oauth/revoke/").respond(200, json={})
    response = await client.post("/functions/v1/oauth/tiktok/disconnect", json={"account_id": account_id},
                                 headers=bearer(world.users["manager"]))
    assert response.json()["provider_revocation"] == "revoked"
    sent = {k: v[0] for k, v in parse_qs(revoke.calls.last.request.content.decode()).items()}
    assert sent == {"client_key": "tiktok-client_id-value", "client_secret": "tiktok-client_secret-value",
                    "token": "act.tiktok-access-1"}
    assert count_tokens(conn, account_id) == 0


async def test_a_tiktok_revocation_error_is_reported_not_raised(client: httpx.AsyncClient,
                                                                provider_api: respx.MockRouter, world: World) -> None:
    account_id = await connect(client, provider_api, world, "tiktok")
    provider_api.post("https://open.tiktokapis.com/v2/oauth/revoke/").respond(
        200, json={"error": {"code": "access_token_invalid", "message": "Access token is invalid.", "log_id": "x"}})
    response = await client.post("/functions/v1/oauth/tiktok/disconnect", json={"account_id": account_id},
                                 headers=bearer(world.users["manager"]))
    assert response.status_code == 200
    assert response.json() == {"account_id": account_id, "status": "revoked", "provider_revocation": "failed"}


async def test_disconnect_without_provider_revocation(client: httpx.AsyncClient, provider_api: respx.MockRouter,
                                                      world: World, conn: psycopg.Connection[Any]) -> None:
    account_id = await connect(client, provider_api, world, "instagram")
    response = await client.post("/functions/v1/oauth/instagram/disconnect", json={"account_id": account_id},
                                 headers=bearer(world.users["owner"]))
    assert response.json()["provider_revocation"] == "unsupported"
    assert count_tokens(conn, account_id) == 0


@pytest.mark.parametrize(("persona", "status"), [("viewer", 403), ("analyst", 403), ("outsider", 404),
                                                 ("owner_b", 404)])
async def test_disconnect_needs_accounts_connect(persona: str, status: int, client: httpx.AsyncClient,
                                                 provider_api: respx.MockRouter, world: World,
                                                 conn: psycopg.Connection[Any]) -> None:
    account_id = await connect(client, provider_api, world, "youtube")
    revoke = provider_api.post("https://oauth2.googleapis.com/revoke").respond(200)
    response = await client.post("/functions/v1/oauth/youtube/disconnect", json={"account_id": account_id},
                                 headers=bearer(world.users[persona]))
    assert response.status_code == status, response.text
    assert not revoke.called
    assert count_tokens(conn, account_id) == 1
    row = conn.execute("select status::text from public.connected_accounts where id = %s", (account_id,)).fetchone()
    assert row == {"status": "active"}


async def test_disconnect_checks_the_provider_and_the_body(client: httpx.AsyncClient, provider_api: respx.MockRouter,
                                                           world: World) -> None:
    account_id = await connect(client, provider_api, world, "youtube")
    headers = bearer(world.users["manager"])
    wrong = await client.post("/functions/v1/oauth/spotify/disconnect", json={"account_id": account_id},
                              headers=headers)
    assert wrong.status_code == 404
    bad = await client.post("/functions/v1/oauth/youtube/disconnect", json={"account_id": "nope"}, headers=headers)
    assert bad.status_code == 400 and bad.json()["error"] == "invalid_request"
    extra = await client.post("/functions/v1/oauth/youtube/disconnect",
                              json={"account_id": account_id, "org_id": "x"}, headers=headers)
    assert extra.status_code == 400
    junk = await client.post("/functions/v1/oauth/youtube/disconnect", content=b"{", headers=headers)
    assert junk.status_code == 400 and junk.json()["error"] == "invalid_json"


def count_tokens(conn: psycopg.Connection[Any], account_id: str) -> int:
    row = conn.execute("select count(*) as n from private.provider_tokens where account_id = %s",
                       (account_id,)).fetchone()
    assert row is not None
    return int(row["n"])
