"""Every answer is JSON `{"error", "message"}` with the right status; an unexpected failure is a logged 500."""

from __future__ import annotations

import logging
from typing import Any

import httpx
import psycopg
import pytest

import handlers.health
from handlers.redirects import RedirectAllowList, with_query
from handlers.settings import HandlerSettings
from tests.factories import World
from tests.handlers.conftest import bearer, make_settings, running


async def test_unknown_route_and_method_are_json(client: httpx.AsyncClient) -> None:
    missing = await client.get("/functions/v1/nope")
    assert missing.status_code == 404 and missing.json()["error"] == "not_found"
    wrong = await client.delete("/functions/v1/health")
    assert wrong.status_code == 405 and wrong.json()["error"] == "method_not_allowed"


async def test_unexpected_error_is_a_logged_500_without_trace(client: httpx.AsyncClient,
                                                              monkeypatch: pytest.MonkeyPatch,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    async def explode(*args: object) -> dict[str, object]:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr(handlers.health, "_queue", explode)
    with caplog.at_level(logging.ERROR, logger="handlers"):
        response = await client.get("/functions/v1/health", headers={"X-Request-Id": "req-123"})
    assert response.status_code == 500
    body = response.json()
    assert body["error"] == "internal" and "req-123" in body["message"]
    assert "secret internal detail" not in response.text and "Traceback" not in response.text
    assert response.headers["x-request-id"] == "req-123"
    assert any("req-123" in r.getMessage() and r.exc_info for r in caplog.records), "logged with its traceback"


def test_settings_parse_the_frontend_allow_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ARTI_FRONTEND_URLS", "https://app.example.com, http://localhost:3000/app")
    monkeypatch.setenv("ARTI_OAUTH_REDIRECT_BASE", "https://api.example.com/functions/v1/oauth/")
    settings = HandlerSettings(_env_file=None)  # type: ignore[call-arg]
    assert settings.frontend_urls == ["https://app.example.com", "http://localhost:3000/app"]
    assert settings.oauth_callback_url("youtube") == "https://api.example.com/functions/v1/oauth/youtube/callback"
    monkeypatch.setenv("ARTI_FRONTEND_URLS", "app.example.com")
    with pytest.raises(ValueError, match="ARTI_FRONTEND_URLS"):
        HandlerSettings(_env_file=None)  # type: ignore[call-arg]


def test_allow_list_matches_on_path_segments() -> None:
    allow = RedirectAllowList(["https://app.example.com/app"])
    assert allow.allows("https://app.example.com/app")
    assert allow.allows("https://app.example.com/app/settings?x=1")
    assert not allow.allows("https://app.example.com/application")
    assert not allow.allows("https://app.example.com/")
    assert allow.resolve(None) == "https://app.example.com/app"
    assert with_query("https://app.example.com/app?tab=a&status=old", status="connected") == \
        "https://app.example.com/app?tab=a&status=connected"


@pytest.mark.parametrize(("overrides", "code"), [
    ({"encryption_keys": None}, "encryption_unavailable"),
    ({"youtube_client_id": None}, "provider_not_configured"),
])
async def test_missing_configuration_is_a_503_before_anything_is_stored(
        overrides: dict[str, object], code: str, database_url: str, world: World,
        conn: psycopg.Connection[Any]) -> None:
    async with running(make_settings(database_url, **overrides)) as client:
        response = await client.get(
            "/functions/v1/oauth/youtube/start", headers=bearer(world.users["manager"]),
            params={"org_id": str(world.ids["org_a"]), "artist_id": str(world.ids["artist_a"])})
    assert response.status_code == 503 and response.json()["error"] == code
    row = conn.execute("select count(*) as n from private.oauth_states where org_id = %s",
                       (world.ids["org_a"],)).fetchone()
    assert row == {"n": 0}
