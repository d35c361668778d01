"""A newcomer's first run, for real: `ARTI_PROVIDER_SANDBOX=1 ./start-platform.sh --demo`, then connect → sync →
dashboard → ask through Caddy, with the provider sandbox the supervisor started (no fake from the tests)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import psycopg
import pytest
from psycopg.rows import dict_row

from arti.db import as_role, user_claims
from arti.localdb import port_owner
from arti.settings import DEFAULT_PORTS, PROJECT_ROOT, embedded_url
from tests.edge_stack import descendants, free_port, listening_sockets
from tests.harness import child_env

PORTS = {"ARTI_HTTP_PORT": str(free_port()), "ARTI_HANDLERS_PORT": str(free_port()),
         "ARTI_STUDIO_PORT": str(free_port()), "ARTI_SANDBOX_PORT": str(free_port()),
         "ARTI_DB_PORT": str(DEFAULT_PORTS["e2e_sandbox_database"])}
ENTRY = f"http://127.0.0.1:{PORTS['ARTI_HTTP_PORT']}"
SANDBOX = f"http://127.0.0.1:{PORTS['ARTI_SANDBOX_PORT']}"
DB = embedded_url(int(PORTS["ARTI_DB_PORT"]))
ORG = "00000000-0000-4000-b000-000000000001"
DJ_KOA = "00000000-0000-4000-c000-000000000003"
MANAGER = "00000000-0000-4000-a000-000000000003"
SPOTIFY_ARTIST = "1sandboxDjKoa0000000000"


@pytest.fixture(scope="module")
def platform() -> Iterator[dict[str, str]]:
    """A first run: the data folder of an earlier run is removed (its platform stopped first)."""
    data = PROJECT_ROOT / ".arti" / "e2e-sandbox"
    env = child_env(**PORTS, ARTI_PROVIDER_SANDBOX="1", ARTI_DATA_DIR=str(data))
    subprocess.run(["./stop-platform.sh"], cwd=PROJECT_ROOT, env=env, capture_output=True, timeout=180)
    shutil.rmtree(data, ignore_errors=True)
    try:
        started = subprocess.run(["./start-platform.sh", "--demo"], cwd=PROJECT_ROOT, env=env, capture_output=True,
                                 text=True, timeout=420)
        assert started.returncode == 0, started.stdout + started.stderr
        assert f"provider sandbox {SANDBOX}" in started.stdout, started.stdout
        yield env
    finally:
        # Stopped as a newcomer would, without the setting: the sandbox stops with the rest.
        plain = {k: v for k, v in env.items() if k != "ARTI_PROVIDER_SANDBOX"}
        stopped = subprocess.run(["./stop-platform.sh"], cwd=PROJECT_ROOT, env=plain, capture_output=True, text=True,
                                 timeout=180)
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr
        assert "sandbox     stopped" in stopped.stdout, stopped.stdout
        for name in PORTS:
            assert port_owner(int(PORTS[name])) is None, f"{name} still has a listener"


def token(env: dict[str, str], email: str) -> str:
    result = subprocess.run([sys.executable, "-m", "arti.cli", "token", "--user", email, "--quiet"], cwd=PROJECT_ROOT,
                            env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def ask(jwt: str, question: str) -> dict[str, Any]:
    answer = httpx.post(f"{ENTRY}/functions/v1/insights/ask", json={"org_id": ORG, "question": question},
                        headers={"Authorization": f"Bearer {jwt}"}, timeout=30)
    assert answer.status_code == 200, answer.text
    return answer.json()  # type: ignore[no-any-return]


def wait_for(query: str, params: tuple[Any, ...], done: Any, timeout: float = 120.0) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    rows: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        with psycopg.connect(DB, row_factory=dict_row) as conn:
            rows = conn.execute(query, params).fetchall()
        if done(rows):
            return rows
        time.sleep(0.5)
    raise AssertionError(f"timed out: {query} gave {rows}")


def test_the_demo_answers_at_once(platform: dict[str, str]) -> None:
    """Issue 17: --demo answered "No facts match"; its seed now has anomalies and documents."""
    answer = ask(token(platform, "analyst@northstar.test"), "How did Luna Vale's followers change?")
    assert answer["mode"] == "extractive" and len(answer["citations"]) >= 3, answer
    assert all("Luna Vale" in c["content"] for c in answer["citations"]), answer
    with psycopg.connect(DB) as conn:
        assert conn.execute("select count(*) from public.insights where org_id = %s and kind = 'anomaly'",
                            (ORG,)).fetchone()[0] > 0  # type: ignore[index]


def test_connect_sync_dashboard_ask_through_the_sandbox(platform: dict[str, str]) -> None:
    manager = token(platform, "manager@northstar.test")
    auth = {"Authorization": f"Bearer {manager}"}
    accounts: dict[str, str] = {}
    with httpx.Client(timeout=30) as http:
        for provider in ("youtube", "spotify", "instagram", "soundcloud", "tiktok"):
            params = {"org_id": ORG, "artist_id": DJ_KOA}
            if provider == "spotify":
                params["external_id"] = SPOTIFY_ARTIST
            started = http.get(f"{ENTRY}/functions/v1/oauth/{provider}/start", params=params, headers=auth)
            assert started.status_code == 200, started.text
            authorize = started.json()["authorize_url"]
            assert authorize.startswith(f"{SANDBOX}/{provider}/authorize?"), authorize  # never the real provider

            consent = http.get(authorize)  # the browser at the sandbox's consent page: straight back with a code
            assert consent.status_code == 302, consent.text
            callback = consent.headers["location"]
            assert callback.startswith(f"http://localhost:{PORTS['ARTI_HTTP_PORT']}/functions/v1/oauth/{provider}/"
                                       "callback?")
            back = http.get(callback.replace("http://localhost:", "http://127.0.0.1:", 1))  # through Caddy
            assert back.status_code == 302, back.text
            landing = back.headers["location"]
            assert landing.startswith(f"{SANDBOX}/connected?"), landing  # the sandbox's page: no frontend needed
            query = parse_qs(urlsplit(landing).query)
            assert query["status"] == ["pending"], landing
            page = http.get(landing)
            assert page.status_code == 200 and query["completion"][0] in page.text

            done = http.post(f"{ENTRY}/functions/v1/oauth/{provider}/complete",
                             json={"completion": query["completion"][0]}, headers=auth)
            assert done.status_code == 200, done.text
            assert done.json()["status"] == "connected"
            accounts[provider] = done.json()["account_id"]

    # Completing queued each account's backfill: the worker syncs it from the sandbox.
    ids = list(accounts.values())
    runs = wait_for("select account_id::text, status::text, error from public.sync_runs where account_id = any(%s)",
                    (ids,), lambda rows: len(rows) == 5 and all(r["status"] in ("succeeded", "failed") for r in rows))
    assert all(r["status"] == "succeeded" for r in runs), runs

    # The dashboard, as the manager reads it (RLS): every new account has numbers.
    with psycopg.connect(DB, row_factory=dict_row) as conn, \
            as_role(conn, "authenticated", user_claims(MANAGER, email="manager@northstar.test")):
        summary = conn.execute("select account_id::text, provider::text, metric, latest_value from "
                               "public.metrics_summary(%s, current_date - 40, current_date)", (ORG,)).fetchall()
        days = conn.execute("select count(*) as count from public.metrics_timeseries(%s, 'views', "
                            "current_date - 40, current_date) where value_last is not null",
                            ([accounts["youtube"]],)).fetchone()
    by_account = {r["account_id"] for r in summary if r["latest_value"] is not None}
    assert set(ids) <= by_account, summary
    assert days is not None and days["count"] >= 28  # YouTube's daily history: the 28-day backfill

    # The insights job wrote DJ Koa's new chunks; the analyst's question is answered from them.
    wait_for("select 1 from public.documents where artist_id = %s and content like 'YouTube subscribers for DJ Koa%%'",
             (DJ_KOA,), bool)
    answer = ask(token(platform, "analyst@northstar.test"), "How did DJ Koa's YouTube subscribers change?")
    assert answer["mode"] == "extractive" and answer["citations"], answer
    assert any(c["content"].startswith("YouTube subscribers for DJ Koa") for c in answer["citations"]), answer

    # Disconnecting revokes the grant at the (sandbox) provider.
    revoked = httpx.post(f"{ENTRY}/functions/v1/oauth/youtube/disconnect", json={"account_id": accounts["youtube"]},
                         headers=auth, timeout=30)
    assert revoked.status_code == 200 and revoked.json()["provider_revocation"] == "revoked", revoked.text
    plain = {k: v for k, v in platform.items() if k != "ARTI_PROVIDER_SANDBOX"}  # asked without the setting
    status = subprocess.run([sys.executable, "-m", "arti.cli", "platform", "status", "--json"], cwd=PROJECT_ROOT,
                            env=plain, capture_output=True, text=True, timeout=60)
    sandbox = json.loads(status.stdout)["processes"]["sandbox"]
    assert sandbox["state"] == "running"
    assert listening_sockets(descendants(sandbox["pid"])) == [("127.0.0.1", int(PORTS["ARTI_SANDBOX_PORT"]),
                                                                sandbox["pid"])]  # loopback only
